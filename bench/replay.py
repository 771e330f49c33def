"""Replay cost: stored requests re-classified through a draft and the live rules (``rules replay``).

Run from anywhere: ``python bench/replay.py [--rows N]``. Needs nothing outside the repository: a
temporary SQLite database is migrated and filled with N generated chat requests (``bench/_common.py``)
spread evenly over the last 4 days, so the windows of 1, 2 and 4 days hold N/4, N/2 and N requests.
The live rules are ``app.yaml``'s; the draft adds a page rule, adds terms to a rule and moves one.

Printed: seconds and rows/s for each window (cost should grow linearly with the rows), for the
typical draft (only messages a changed rule could match are classified twice) and for a draft that
sends the default rule elsewhere (every message classified by both sets, the worst case).
Target: <= 10 s for 100,000 requests on SQLite.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import yaml  # noqa: E402
from sqlalchemy import insert  # noqa: E402
from _common import REPO, chat_messages, verdict  # noqa: E402
from handlers.rules_edit import add_rule, diff, edit_rule, move_rule, normalise  # noqa: E402
from handlers.rules_grammar import parse  # noqa: E402
from handlers.rules_replay import ReplayReport, decisive_changes, replay  # noqa: E402
from routing.rules import ruleset_from_dict  # noqa: E402
from storage.db import make_engine, make_sessionmaker, upgrade  # noqa: E402
from storage.models import Ticket  # noqa: E402

TARGET_SECONDS = 10.0


def _draft(live: dict) -> dict:
    p = parse('add datacenter-fire --route page --any "fire alarm, smoke in the server room, down for anyone else"')
    d = add_rule(live, p.rule_id or "", p.change)
    p = parse('edit hardware --add-any "docking station, usb hub" --remove-any "mouse"')
    d = edit_rule(d, p.rule_id or "", p.change)
    return move_rule(d, "vpn-and-wifi", before="email-and-calendar", after=None)


def _worst(live: dict) -> dict:
    p = parse("edit default --route internal")  # the default decides differently: every request is replayed
    return edit_rule(live, p.rule_id or "", p.change)


async def _fill(sessionmaker, n: int, now: datetime) -> None:  # type: ignore[no-untyped-def]
    texts = chat_messages(n, seed=7)
    span = timedelta(days=4)
    batch: list[dict] = []
    for i, text in enumerate(texts):
        at = now - span + span * ((i + 0.5) / n)
        batch.append({
            "platform": "slack", "user_id": f"U{i % 500:05d}", "user_name": "", "channel_id": "D0DM", "thread_ref": None,
            "text": text, "route": "msp", "severity": "normal", "queue": "msp-service-desk", "rule_id": "default",
            "ruleset_version": 1, "why": "", "terms": [], "redactions": [], "fail_closed": False, "status": "open",
            "created_at": at, "updated_at": at, "conversation": None,
        })
        if len(batch) == 5_000 or i == n - 1:
            async with sessionmaker.begin() as session:
                await session.execute(insert(Ticket), batch)
            batch = []


def _line(label: str, rows: int, r: ReplayReport) -> str:
    rate = r.replayed / r.seconds if r.seconds else float("inf")
    return (f"  {label:<26} {rows:>7,} rows  {r.seconds:6.2f} s  {rate:>9,.0f} rows/s  "
            f"classified twice {r.screened_in:>6,}  route changed {r.route_changed:>5,}  "
            f"newly paging {r.newly_paging_count:>4,}  stop paging {r.stopped_paging_count:>4,}")


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args(argv)
    n = args.rows
    live_content = normalise(yaml.safe_load((REPO / "app.yaml").read_text(encoding="utf-8"))["routing"])
    live = ruleset_from_dict(live_content, version=1)
    drafts = {"typical draft": _draft(live_content), "default changed (worst)": _worst(live_content)}
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        await upgrade(url)
        engine = make_engine(url)
        sessionmaker = make_sessionmaker(engine)
        now = datetime.now(UTC)
        t0 = time.perf_counter()
        await _fill(sessionmaker, n, now)
        print(f"stored {n:,} generated requests in {time.perf_counter() - t0:.1f} s (SQLite, {url.rsplit('/', 1)[-1]})")
        worst_100k = 0.0
        for label, content in drafts.items():
            draft = ruleset_from_dict(content, version=2)
            d = diff(live_content, content)
            changed = decisive_changes(d.added, d.removed, d.moved, (i for i, _ in d.changed), live, draft)
            print(f"{label}: changed rules {sorted(changed)}")
            for days in (1, 2, 4):
                report = await replay(sessionmaker=sessionmaker, live=live, draft=draft, changed=changed,
                                      since=now - timedelta(days=days), days=days)
                print(_line(f"last {days} day(s)", report.total, report))
                if days == 4:
                    worst_100k = max(worst_100k, report.seconds)
        await engine.dispose()
    scaled = worst_100k * 100_000 / max(n, 1)
    print(f"slowest full window: {worst_100k:.2f} s for {n:,} rows (~{scaled:.2f} s per 100,000); "
          f"target <= {TARGET_SECONDS:.0f} s per 100,000: {verdict(scaled <= TARGET_SECONDS)}")
    return 0 if scaled <= TARGET_SECONDS else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
