"""Slack intake throughput and ack latency: handoff against a bare slack-bolt app in the same run.

Run from anywhere: ``python bench/slack_intake.py [--events N] [--warmup N] [--concurrency C]``.

Requirement: signed message events/s through the whole intake path (verify, dedupe, classify,
redact, persist on SQLite, ack) against a bare slack-bolt ``AsyncApp`` with a no-op listener under
the same load. Targets: ratio >= 0.5, p99 ack latency <= 100 ms at 50 concurrent requests.

Set-up, the same for both sides:

* the server runs in this process, served by aiohttp on a real TCP socket (``AppRunner`` +
  ``TCPSite`` on 127.0.0.1 port 0), logging at INFO to a file (``handoff serve`` logs INFO);
* a fake Slack Web API (``tests.fakes.slack_api.FakeSlackApi``) runs in its own process; it
  answers ``auth.test`` (both sides) and the ``chat.postMessage`` replies handoff's outbox worker
  delivers during and after the run (real background load, kept);
* the load generator is a separate process: 50 aiohttp workers (keep-alive) send distinct DM
  events (unique event ids, varied generated texts), signed as Slack signs them; first a warm-up,
  then the measured events; each request's latency is the time until its response is read.

handoff is ``create_app`` with the shipped ``app.yaml`` and a temporary SQLite file. The bare side
is ``AsyncApp(signing_secret=..., client=AsyncWebClient(token=..., base_url=fake))`` (the token is
given through the client, as handoff does, to avoid bolt's "token skipped" warning) with a no-op
``message`` listener and bolt's defaults (``process_before_response=False``: it acks, then runs the
listener; handoff acks only after its transaction committed), mounted with bolt's own
``slack_bolt.adapter.aiohttp`` functions.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing as mp
import os
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO, chat_messages, percentile, recv_from, summarise_log, verdict, warm_then_measure  # noqa: E402

SIGNING_SECRET = "bench-signing-secret-5f2b7c0e9d"
BOT_TOKEN = "xoxb-bench-0000-token"
JSON = "application/json"


# --- fake Slack Web API (own process) ----------------------------------------------------------

def fake_slack_main(conn: Connection) -> None:
    """Serve ``FakeSlackApi`` until told to stop; answer ``stats`` with what it received."""
    from tests.fakes.slack_api import FakeSlackApi

    async def serve() -> None:
        async with FakeSlackApi(token=BOT_TOKEN) as fake:
            conn.send(fake.api_base)
            while True:
                command = await asyncio.to_thread(conn.recv)
                conn.send({"posts": len(fake.posts), "auth_test": len(fake.calls("auth.test")),
                           "requests": len(fake.requests), "cpu": time.process_time()})
                if command == "stop":
                    return

    asyncio.run(serve())


# --- load generator (own process) --------------------------------------------------------------

def _signed_events(label: str, count: int, start: int, texts: list[str], rng: random.Random) -> list[tuple[bytes, dict[str, str]]]:
    from slack_sdk.signature import SignatureVerifier

    from tests.helpers import event_body

    verifier = SignatureVerifier(SIGNING_SECRET)
    out = []
    for i in range(start, start + count):
        user = f"U0{rng.randint(0, 9999):04d}EMP"
        body = event_body(
            texts[i % len(texts)], event_id=f"Ev{label}{i:07d}", user=user, channel=f"D0{user[2:6]}DM",
            ts=f"{1_726_000_000 + i}.{rng.randint(0, 999_999):06d}",
        )
        ts = str(int(time.time()))
        headers = {"Content-Type": JSON, "X-Slack-Request-Timestamp": ts,
                   "X-Slack-Signature": verifier.generate_signature(timestamp=ts, body=body) or ""}
        out.append((body.encode(), headers))
    return out


def loadgen_main(conn: Connection, url: str, label: str, events: int, warmup: int, concurrency: int) -> None:
    """Warm up, tell the parent, wait for its go, send the measured events, report."""

    async def run() -> None:

        rng = random.Random(label)
        texts = chat_messages(800, seed=11)
        warm = _signed_events(label, warmup, 0, texts, rng)
        measured = _signed_events(label, events, warmup, texts, rng)
        await warm_then_measure(conn, url, warm, measured, concurrency)

    asyncio.run(run())


# --- the two servers (this process) ------------------------------------------------------------

def _bare_app(api_base: str) -> Any:
    from aiohttp import web
    from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
    from slack_bolt.async_app import AsyncApp
    from slack_sdk.web.async_client import AsyncWebClient

    bolt = AsyncApp(signing_secret=SIGNING_SECRET, client=AsyncWebClient(token=BOT_TOKEN, base_url=api_base))

    @bolt.event("message")
    async def noop() -> None:
        return None

    async def events(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await bolt.async_dispatch(await to_bolt_request(request)))

    app = web.Application()
    app.router.add_post("/slack/events", events)
    return app


def _handoff_app(api_base: str, db_file: Path) -> Any:
    from bot.app import create_app
    from bot.config import load_settings

    settings = load_settings(env={
        "HANDOFF_DATABASE_URL": f"sqlite+aiosqlite:///{db_file}", "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_API_URL": api_base,
    }, path=REPO / "app.yaml")
    return create_app(settings)


async def _handoff_counts(app: Any) -> dict[str, Any]:
    from sqlalchemy import func, select

    from bot.app import CORE
    from storage.models import InboundEvent, OutboxRow, Ticket

    async with app[CORE].sessionmaker() as session:
        async def count(model: Any) -> int:
            return int((await session.execute(select(func.count()).select_from(model))).scalar_one())

        rows = await session.execute(select(OutboxRow.kind, OutboxRow.status, func.count()).group_by(OutboxRow.kind, OutboxRow.status))
        return {"tickets": await count(Ticket), "inbound": await count(InboundEvent),
                "outbox": {f"{k}:{s}": n for k, s, n in rows.all()}}


_FAKE: list[Any] = []  # the fake Slack API process, for _ask


async def _ask(conn: Connection, message: Any) -> Any:
    conn.send(message)
    return await recv_from(conn, _FAKE[0], timeout=30)


async def run_side(label: str, app: Any, fake: Connection, args: argparse.Namespace,
                   after: Callable[[Any, dict[str, Any]], Awaitable[dict[str, Any]]] | None = None) -> dict[str, Any]:
    """Serve ``app`` on a real socket and drive it from a load-generator process."""
    from aiohttp import web

    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    from bot.core import tune_gc

    tune_gc()  # what `handoff serve` does after start-up; applied to both sides alike
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"
        parent, child = mp.Pipe()
        proc = mp.get_context("spawn").Process(
            target=loadgen_main, args=(child, url, label, args.events, args.warmup, args.concurrency),
            name="load generator", daemon=True)
        proc.start()
        await recv_from(parent, proc)  # warm-up done
        fake0 = await _ask(fake, "stats")
        cpu0 = time.process_time()
        parent.send("go")
        _, payload = await recv_from(parent, proc)
        result: dict[str, Any] = dict(payload)
        result["server_cpu"] = time.process_time() - cpu0
        fake1 = await _ask(fake, "stats")
        result["fake_cpu"] = fake1["cpu"] - fake0["cpu"]
        result["fake_posts_during"] = fake1["posts"] - fake0["posts"]
        await asyncio.to_thread(proc.join, 10)
        if after is not None:
            result.update(await after(app, result))
        return result
    finally:
        await runner.cleanup()


async def _drain(app: Any, fake: Connection, expected_posts: int, limit: float) -> dict[str, Any]:
    """Wait (at most ``limit`` s) until the fake received every reply; report counts."""
    started = time.perf_counter()
    stats = await _ask(fake, "stats")
    while stats["posts"] < expected_posts and time.perf_counter() - started < limit:
        await asyncio.sleep(0.25)
        stats = await _ask(fake, "stats")
    counts = await _handoff_counts(app)
    return {**counts, "posts": stats["posts"], "drain_seconds": time.perf_counter() - started}


def _row(label: str, r: dict[str, Any]) -> str:
    ok = [lat for lat, st in zip(r["latency"], r["status"]) if st == 200]
    lat = sorted(r["latency"])
    n = len(r["status"])
    return (f"{label:<22} | {n / r['elapsed']:>8,.0f} | {percentile(lat, 50) * 1e3:>6.1f} | {percentile(lat, 95) * 1e3:>6.1f} | "
            f"{percentile(lat, 99) * 1e3:>6.1f} | {lat[-1] * 1e3:>6.1f} | {n - len(ok):>7} | "
            f"{r['server_cpu'] / n * 1e3:>10.2f} | {r['cpu'] / n * 1e3:>11.2f} | {r['fake_cpu'] / n * 1e3:>8.2f}")


async def main_async(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="handoff-bench-") as tmp:
        logging.basicConfig(level=logging.INFO, filename=os.path.join(tmp, "server.log"),
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        logging.getLogger("alembic").setLevel(logging.WARNING)
        parent, child = mp.Pipe()
        fake_proc = mp.get_context("spawn").Process(target=fake_slack_main, args=(child,), name="fake Slack API", daemon=True)
        fake_proc.start()
        _FAKE[:] = [fake_proc]
        api_base = await recv_from(parent, fake_proc, timeout=60)
        try:
            results: dict[str, list[dict[str, Any]]] = {"bare": [], "handoff": []}
            for rnd in range(args.rounds):
                results["bare"].append(await run_side(f"B{rnd}", _bare_app(api_base), parent, args))
                db_file = Path(tmp) / f"handoff-{rnd}.db"
                posts_before = (await _ask(parent, "stats"))["posts"]

                async def after(app: Any, load: dict[str, Any], before: int = posts_before) -> dict[str, Any]:
                    accepted = load["warm_ok"] + load["status"].count(200)
                    return await _drain(app, parent, before + accepted, args.drain_seconds)

                r = await run_side(f"H{rnd}", _handoff_app(api_base, db_file), parent, args, after)
                r["posts"] -= posts_before
                results["handoff"].append(r)
            log_summary = summarise_log(Path(tmp) / "server.log")
        finally:
            await _ask(parent, "stop")
            fake_proc.join(5)
    return report(args, results, log_summary)


def report(args: argparse.Namespace, results: dict[str, list[dict[str, Any]]], log_summary: str) -> int:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {os.cpu_count()} cores (load average {load:.2f} after the run). The server (this process), the load "
          "generator and the fake Slack API (two other processes) all compete for these cores: same conditions for "
          "both sides, but absolute figures are lower than on a machine where the load comes from elsewhere.")
    print(f"load: {args.concurrency} concurrent closed-loop workers (aiohttp keep-alive), {args.warmup} warm-up + "
          f"{args.events} measured distinct signed DM events per side and round; {args.rounds} round(s), bare first.")
    print(f"note: closed loop, so mean latency ~ {args.concurrency} / throughput (Little's law): p99 <= 100 ms needs "
          f"well over {args.concurrency / 0.1:.0f} events/s.\n")
    header = (f"{'side':<22} | {'events/s':>8} | {'p50 ms':>6} | {'p95 ms':>6} | {'p99 ms':>6} | {'max ms':>6} | {'non-200':>7} | "
              f"{'server CPU':>10} | {'loadgen CPU':>11} | {'fake CPU':>8}")
    print(header)
    print(f"{'':<22} | {'':>8} | {'':>6} | {'':>6} | {'':>6} | {'':>6} | {'':>7} | {'ms/event':>10} | {'ms/event':>11} | {'ms/event':>8}")
    print("-" * len(header))
    for i in range(args.rounds):
        print(_row(f"bare bolt (round {i + 1})", results["bare"][i]))
        print(_row(f"handoff (round {i + 1})", results["handoff"][i]))
    for side in ("bare", "handoff"):
        for i, r in enumerate(results[side]):
            codes: dict[int, int] = {}
            for st in r["status"]:
                codes[st] = codes.get(st, 0) + 1
            shown = ", ".join(f"{'connection error' if c == -1 else c}: {n}" for c, n in sorted(codes.items()))
            print(f"  {side} round {i + 1}: {len(r['status'])} measured events in {r['elapsed']:.1f} s; statuses {shown}")

    def rate(r: dict[str, Any]) -> float:
        return float(len(r["status"]) / r["elapsed"])

    bare = max(results["bare"], key=rate)
    best = max(results["handoff"], key=rate)
    ratio = rate(best) / rate(bare)
    p99 = percentile(sorted(best["latency"]), 99) * 1e3
    print()
    print(f"throughput: handoff {rate(best):,.0f} events/s, bare bolt {rate(bare):,.0f} events/s (best round of each)")
    print(f"target: ratio handoff/bare >= 0.5: {ratio:.2f}  {verdict(ratio >= 0.5)}")
    print(f"target: handoff p99 ack latency <= 100 ms at {args.concurrency} concurrent: {p99:.1f} ms  {verdict(p99 <= 100)}")

    sane = True
    for i, r in enumerate(results["handoff"]):
        accepted = r["status"].count(200) + r["warm_ok"]
        ok = r["tickets"] == accepted == r["inbound"]
        sane &= ok
        outbox = ", ".join(f"{k}={v}" for k, v in sorted(r["outbox"].items()))
        print(f"sanity round {i + 1}: accepted (200) {accepted} incl. warm-up, tickets written {r['tickets']}, inbound events "
              f"{r['inbound']}: {verdict(ok)}; replies delivered to the fake Slack API: {r['fake_posts_during']} during the "
              f"measured window, {r['posts']} in all ({r['drain_seconds']:.1f} s to drain after the load); outbox: {outbox}")
    print(log_summary)
    return 0 if (ratio >= 0.5 and p99 <= 100 and sane) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=3000, help="measured events per side and round")
    parser.add_argument("--warmup", type=int, default=300, help="warm-up events per side and round")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=1, help="bare, handoff, bare, handoff, ...")
    parser.add_argument("--drain-seconds", type=float, default=40.0, help="wait for the outbox after the load")
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
