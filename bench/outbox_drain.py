"""Outbox worker throughput: rows delivered per second and CPU per row, against a bare HTTP client.

    .venv/bin/python bench/outbox_drain.py [--tickets 3000] [--pg-url URL] [--set delivery.batch=50 ...]

Set-up: a fresh database (SQLite file; also a private PostgreSQL database when ``--pg-url`` or
``$HANDOFF_TEST_DATABASE_URL`` is given) holds ``--tickets`` MSP tickets, each with its two outbox
rows as intake writes them (``msp``: the signed webhook to the MSP; ``slack.post``: the reply in the
employee's thread). The fake MSP and the fake Slack Web API run in a separate process, so their CPU
is not counted. This process then runs the real outbox worker of ``handoff serve`` (``open_core``
with the shipped ``app.yaml``) until every row is delivered, and prints rows/s and this process's
CPU per row.

Baseline, same run, same fakes: a bare ``aiohttp`` client that POSTs the same bodies, with the same
headers and the same number of requests in flight, and does nothing else (no database, no signing,
no bookkeeping): the HTTP floor a Python worker cannot go below. The ratio says how much the
worker's own work (claims, signatures, connectors, outcome records) costs on top of that floor.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

_BENCH = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _BENCH]
sys.path.insert(0, str(_BENCH.parent))

from bench._common import recv_from, verdict


def fakes_main(conn: Connection) -> None:
    """The fake MSP and Slack Web API (own process) until told to stop; answers with their counts."""
    from tests.replica_harness import Fakes

    async def serve() -> None:
        async with Fakes() as fakes:
            conn.send(fakes.env())
            while True:
                command = await asyncio.to_thread(conn.recv)
                conn.send({"msp": len(fakes.msp.requests), "slack": len(fakes.slack.posts)})
                if command == "stop":
                    return

    asyncio.run(serve())


async def _fill(core: Any, tickets: int) -> int:
    """``tickets`` MSP tickets and their outbox rows, written as intake writes them."""
    from handlers.intake import Inbound

    texts = ["outlook keeps crashing when I open a shared calendar", "printer on floor 2 is jammed again",
             "please install visio on my laptop", "my vpn disconnects every 10 minutes"]
    batch = 200
    for start in range(0, tickets, batch):
        await asyncio.gather(*(core.intake.handle(Inbound(
            platform="slack", event_id=f"EvDrain{i:07d}", text=f"{texts[i % len(texts)]} (ref {i})",
            user_id=f"U{i % 500:04d}", channel_id=f"D{i % 500:04d}", channel_type="im", reply_kind="slack.post",
            reply_target={"channel": f"D{i % 500:04d}", "thread_ts": f"1726133700.{i:06d}"},
        )) for i in range(start, min(tickets, start + batch))))
    return await _pending(core)


async def _pending(core: Any) -> int:
    """Pending ``msp`` and ``slack.post`` rows (the ones the worker is timed on)."""
    from sqlalchemy import func, select

    from storage.models import OutboxRow

    async with core.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).where(
            OutboxRow.status == "pending", OutboxRow.kind.in_(("msp", "slack.post")))) or 0)


async def run_worker(url: str, env: dict[str, str], tickets: int, overrides: list[str]) -> dict[str, Any]:
    from bot.config import load_settings
    from bot.core import open_core, tune_gc, utcnow
    from tests.replica_harness import write_config

    with tempfile.TemporaryDirectory(prefix="handoff-drain-") as tmp:
        sets: dict[str, dict[str, Any]] = {}
        for item in overrides:
            key, _, value = item.partition("=")
            section, _, name = key.partition(".")
            sets.setdefault(section, {})[name] = json.loads(value)
        config = write_config(Path(tmp), sets)
        settings = load_settings(env={**env, "HANDOFF_DATABASE_URL": url}, path=config)
        async with open_core(settings, clock=utcnow) as core:
            rows = await _fill(core, tickets)
            tune_gc()
            stop = asyncio.Event()
            cpu0, t0 = time.process_time(), time.perf_counter()
            task = asyncio.create_task(core.worker.run(stop))
            while True:
                await asyncio.sleep(0.2)  # a count every 0.2 s: little CPU, and it is counted in the figure
                if not await _pending(core):
                    break
            elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            stop.set()
            await task
    return {"rows": rows, "elapsed": elapsed, "cpu": cpu}


async def run_bare(env: dict[str, str], tickets: int, concurrency: int) -> dict[str, Any]:
    """The HTTP floor: the same number of POSTs, the same bodies and headers, ``concurrency`` in flight."""
    import aiohttp

    body = json.dumps({"id": "IT-1", "text": "outlook keeps crashing when I open a shared calendar",
                       "queue": "msp-service-desk", "severity": "normal", "route": "msp", "rule": "outlook",
                       "ruleset_version": 1, "requester": {"platform": "slack", "user_id": "U1"},
                       "created_at": "2026-11-28T12:00:00+00:00", "event": "ticket.created"}).encode()
    slack = json.dumps({"channel": "D0001", "thread_ts": "1726133700.000001", "text": "Ticket IT-1 ..."}).encode()
    jobs = [(env["HANDOFF_MSP_URL"], body, {"Content-Type": "application/json", "Idempotency-Key": f"k{i}"})
            for i in range(tickets)]
    jobs += [(env["SLACK_API_URL"].rstrip("/") + "/chat.postMessage", slack,
              {"Content-Type": "application/json; charset=utf-8", "Authorization": f"Bearer {env['SLACK_BOT_TOKEN']}"})
             for _ in range(tickets)]
    queue: asyncio.Queue[tuple[str, bytes, dict[str, str]]] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)
    async with aiohttp.ClientSession() as http:
        async def one() -> None:
            while not queue.empty():
                url, data, headers = queue.get_nowait()
                async with http.post(url, data=data, headers=headers) as resp:
                    await resp.read()

        cpu0, t0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(one() for _ in range(concurrency)))
        return {"rows": len(jobs), "elapsed": time.perf_counter() - t0, "cpu": time.process_time() - cpu0}


async def main_async(args: argparse.Namespace) -> int:
    from tests.pg_cluster import private_database

    parent, child = mp.Pipe()
    proc = mp.get_context("spawn").Process(target=fakes_main, args=(child,), name="fakes", daemon=True)
    proc.start()
    env = await recv_from(parent, proc, timeout=60)
    concurrency = 32
    for item in args.set or []:
        if item.startswith("delivery.concurrency="):
            concurrency = int(item.split("=", 1)[1])
    results: list[tuple[str, dict[str, Any]]] = []
    try:
        results.append(("bare aiohttp client", await run_bare(env, args.tickets, concurrency)))
        if args.only in (None, "sqlite"):
            with tempfile.TemporaryDirectory(prefix="handoff-drain-db-") as tmp:
                results.append(("worker, SQLite", await run_worker(f"sqlite+aiosqlite:///{tmp}/drain.db", env,
                                                                   args.tickets, args.set or [])))
        pg = args.pg_url or os.environ.get("HANDOFF_TEST_DATABASE_URL")
        if pg and args.only in (None, "postgresql"):
            async with private_database(pg, label="drain") as url:
                results.append(("worker, PostgreSQL", await run_worker(url, env, args.tickets, args.set or [])))
        elif not pg:
            print("PostgreSQL skipped: give --pg-url or set HANDOFF_TEST_DATABASE_URL")
    finally:
        parent.send("stop")
        await recv_from(parent, proc, timeout=30)
        proc.join(5)
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; {args.tickets:,} MSP tickets = "
          f"{2 * args.tickets:,} rows (webhook to the MSP + reply in Slack); {concurrency} requests in flight; "
          f"settings: shipped app.yaml{''.join(' + ' + s for s in args.set or [])}\n")
    print(f"{'':<22} | {'rows':>6} | {'rows/s':>7} | {'CPU ms/row':>10} | {'x floor CPU':>11}")
    floor = results[0][1]["cpu"] / results[0][1]["rows"]
    ok = True
    for name, r in results:
        per_row = r["cpu"] / r["rows"]
        print(f"{name:<22} | {r['rows']:>6,} | {r['rows'] / r['elapsed']:>7,.0f} | {per_row * 1e3:>10.3f} | "
              f"{per_row / floor:>10.1f}x")
        ok &= r["rows"] == 2 * args.tickets
    print(f"\nevery row delivered: {verdict(ok)} (the worker sides count their pending rows before and after)")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=3000)
    parser.add_argument("--pg-url", help="PostgreSQL server for a private database (default $HANDOFF_TEST_DATABASE_URL)")
    parser.add_argument("--only", choices=["sqlite", "postgresql"], help="run the worker on this database only")
    parser.add_argument("--set", action="append", metavar="SECTION.KEY=JSON",
                        help="override an app.yaml setting, e.g. --set delivery.batch=50")
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
