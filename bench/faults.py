"""Faults at full size: kill -9 of replicas under load, an MSP outage with a 60 s hang, PostgreSQL
restarts (a clean stop and a crash-like one). Prints what each run counted and PASS/FAIL.

The scenarios are the ones ``tests/test_faults.py`` runs small (``tests/scenario_crash.py``,
``tests/scenario_msp.py``): real ``handoff serve`` processes configured by environment variables,
loopback fakes of the MSP, PagerDuty and Slack in this process, Slack-like retries of every event
that got no 200. PostgreSQL: a private database on ``--pg-url`` (default
``$HANDOFF_TEST_DATABASE_URL``) for the replicas; the restart runs use a private throwaway cluster
(``initdb`` + ``pg_ctl`` in a temporary directory on a free port), never the shared server.

    .venv/bin/python bench/faults.py                 # everything (~4 minutes)
    .venv/bin/python bench/faults.py --only kill --events 3000 --rate 100 --kills 10
    .venv/bin/python bench/faults.py --only msp --hang 60 --msp-timeout 10
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

_BENCH = Path(__file__).resolve().parent
# The repository on sys.path, bench/ itself not: a bench script named like a standard module
# (bench/secrets.py) would shadow it for everything this process imports.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _BENCH]
sys.path.insert(0, str(_BENCH.parent))

from tests.pg_cluster import PrivateCluster, private_database
from tests.scenario_crash import kill9_run, pg_restart_run
from tests.scenario_msp import msp_outage_run


async def main_async(args: argparse.Namespace) -> int:
    results: list[tuple[str, bool]] = []
    pg_url = args.pg_url or os.environ.get("HANDOFF_TEST_DATABASE_URL")
    want = set(args.only or ["kill", "msp", "pg"])
    print(f"machine: {os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f} at the start\n")

    def show(lines: list[str], ok: bool, name: str, seconds: float) -> None:
        print("\n".join(lines) + f"\n  ({seconds:.0f} s)\n", flush=True)
        results.append((name, ok))

    if "kill" in want:
        if not pg_url:
            print("kill -9: skipped (several replicas need PostgreSQL: --pg-url or HANDOFF_TEST_DATABASE_URL)\n")
        else:
            t = time.monotonic()
            async with private_database(pg_url, label="bench_kill") as url:
                with tempfile.TemporaryDirectory(prefix="handoff-faults-") as tmp:
                    r = await kill9_run(url, Path(tmp), replicas=args.replicas, events=args.events, rate=args.rate,
                                        kills=args.kills, seed=args.seed)
            show(r.lines(), r.ok, "kill -9", time.monotonic() - t)
    if "msp" in want:
        phases = (("500", args.phase), ("429", args.phase), ("hang", args.hang + args.msp_timeout))
        t = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="handoff-faults-") as tmp:
            if pg_url:
                async with private_database(pg_url, label="bench_msp") as url:
                    m = await msp_outage_run(url, Path(tmp), replicas=args.replicas, events=args.msp_events,
                                             phases=phases, hang_seconds=args.hang, msp_timeout=args.msp_timeout)
            else:
                m = await msp_outage_run(f"sqlite+aiosqlite:///{tmp}/handoff.db", Path(tmp), replicas=1,
                                         events=args.msp_events, phases=phases, hang_seconds=args.hang,
                                         msp_timeout=args.msp_timeout)
        show(m.lines(), not m.problems, "MSP outage", time.monotonic() - t)
    if "pg" in want:
        reason = PrivateCluster.unavailable_reason()
        if reason:
            print(f"PostgreSQL restart: skipped ({reason})\n")
        else:
            for mode in ("fast", "immediate"):
                t = time.monotonic()
                with tempfile.TemporaryDirectory(prefix="handoff-faults-") as tmp:
                    p = await pg_restart_run(Path(tmp), events=args.pg_events, rate=args.rate, down=args.down, mode=mode)
                during = p.facts["during"]
                ok = p.ok and during[503] > 0 and set(during) <= {200, 503} and p.facts["after"] == 200 \
                    and p.facts["alive"] and p.facts["starts"] == 1
                show(p.lines(), ok, f"PostgreSQL restart ({mode})", time.monotonic() - t)
    print("summary: " + "; ".join(f"{name} {'PASS' if ok else 'FAIL'}" for name, ok in results))
    return 0 if all(ok for _, ok in results) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", choices=["kill", "msp", "pg"], help="run only these (repeatable)")
    parser.add_argument("--pg-url", help="PostgreSQL server for a private database (default $HANDOFF_TEST_DATABASE_URL)")
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--events", type=int, default=1500, help="events of the kill -9 run")
    parser.add_argument("--rate", type=float, default=75.0, help="events/s of the kill -9 and restart runs")
    parser.add_argument("--kills", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--msp-events", type=int, default=200)
    parser.add_argument("--phase", type=float, default=10.0, help="seconds of the 500 phase and of the 429 phase")
    parser.add_argument("--hang", type=float, default=60.0, help="seconds the MSP holds each request when it hangs")
    parser.add_argument("--msp-timeout", type=float, default=10.0, help="msp.timeout_seconds (shipped: 10)")
    parser.add_argument("--pg-events", type=int, default=900)
    parser.add_argument("--down", type=float, default=5.0, help="seconds PostgreSQL stays down")
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
