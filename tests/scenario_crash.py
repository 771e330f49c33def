"""Crash scenarios under load: kill -9 of replicas, and a PostgreSQL restart.

Both send signed Slack events at a fixed rate, retrying as Slack does (same event id, another
replica) until each gets a 200, while something is broken on purpose. Afterwards every
acknowledged event must be exactly one ticket in the database and exactly one ticket at the fake
MSP (or one page at the fake PagerDuty for critical texts): :func:`verify` counts what was lost or
doubled. ``tests/test_faults.py`` runs them small and asserts; ``bench/faults.py`` runs them big
and prints the :class:`CrashReport`.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from tests.pg_cluster import PrivateCluster
from tests.replica_db import Snapshot, wait_drained
from tests.replica_harness import (
    FAST_DELIVERY,
    Fakes,
    Replica,
    start_first_then_rest,
    write_config,
)
from tests.replica_traffic import (
    Outcome,
    count_msp,
    deliver,
    make_events,
    marker,
    paced,
)

KINDS = ("msp", "pagerduty", "slack.post")


@dataclass
class CrashReport:
    """What a crash run counted. ``lost`` and ``doubled`` name event ids; both must be empty."""

    name: str
    events: int = 0
    acked: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    faults: list[str] = field(default_factory=list)
    msp_requests: int = 0
    msp_distinct_keys: int = 0
    msp_tickets: int = 0
    critical: int = 0
    incidents: int = 0
    page_rows: int = 0
    pages: int = 0
    page_deliveries: int = 0
    db_tickets: int = 0
    lost: list[str] = field(default_factory=list)
    doubled: list[str] = field(default_factory=list)
    pending_after: int = 0
    notes: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)  # scenario-specific figures, for the tests

    @property
    def ok(self) -> bool:
        return self.acked == self.events and not self.lost and not self.doubled and not self.pending_after \
            and not self.server_errors

    @property
    def server_errors(self) -> int:
        """Answers other than 200, 503 (retry later) and -1 (no answer: the replica died)."""
        return sum(n for status, n in self.statuses.items() if status not in (200, 503, -1))

    def lines(self) -> list[str]:
        shown = ", ".join(f"{'no answer' if s == -1 else s}: {n}" for s, n in sorted(self.statuses.items()))
        return [
            f"{self.name}: {self.events} events sent, {self.acked} acknowledged (200); attempts by answer: {shown}",
            *(f"  fault: {f}" for f in self.faults),
            f"  database: {self.db_tickets} tickets for the acknowledged events",
            (f"  fake MSP: {self.msp_requests} deliveries received, {self.msp_distinct_keys} distinct idempotency "
             f"keys, {self.msp_tickets} distinct tickets ({self.msp_requests - self.msp_distinct_keys} repeated "
             "deliveries, answered as replays)"),
            (f"  pages: {self.critical} critical events -> {self.incidents} incidents (storm control groups "
             f"reports) -> {self.page_rows} PagerDuty trigger rows -> {self.pages} incidents opened at the fake "
             f"PagerDuty ({self.page_deliveries} trigger deliveries received)"),
            (f"  lost: {len(self.lost)} {self.lost[:5]}; doubled: {len(self.doubled)} {self.doubled[:5]}; "
             f"still pending after the drain: {self.pending_after}; 5xx other than 503: {self.server_errors}"),
            *(f"  {n}" for n in self.notes),
            f"  verdict: {'PASS' if self.ok else 'FAIL'}",
        ]


def verify(report: CrashReport, outcomes: list[Outcome], snap: Snapshot, fakes: Fakes) -> CrashReport:
    """Fill ``report`` from the outcomes, the database and the fakes (see :class:`CrashReport`).

    An acknowledged MSP text is lost without a ticket in the database or at the fake MSP, doubled
    with more than one of either. A critical text opens or joins an incident (storm control): it is
    lost without a ticket, or when its incident's PagerDuty trigger never reached the fake; pages
    are doubled when the fake opened more incidents than there are trigger rows.
    """
    report.events = len(outcomes)
    report.acked = sum(o.acked for o in outcomes)
    for o in outcomes:
        report.statuses.update(status for _, status, _ in o.attempts)
    by_event: dict[str | None, list[dict[str, Any]]] = {}
    for t in snap.tickets:
        by_event.setdefault(marker(t["text"]), []).append(t)
    msp = count_msp(fakes.msp.requests, fakes.msp.tickets.values())
    report.msp_requests, report.msp_distinct_keys, report.msp_tickets = msp.requests, msp.distinct_keys, msp.tickets
    dedup_of = {i["id"]: i["dedup_key"] for i in snap.incidents}
    triggers = {r["payload"].get("dedup_key") for r in snap.rows("pagerduty")
                if r["payload"].get("event_action") == "trigger"}
    report.incidents, report.page_rows = len(snap.incidents), len(triggers)
    report.pages, report.page_deliveries = fakes.pd.incidents_opened, fakes.pd.trigger_count
    report.critical = sum(o.acked and o.event.critical for o in outcomes)
    report.db_tickets = sum(len(by_event.get(o.event.event_id, [])) for o in outcomes if o.acked)
    for o in outcomes:
        if not o.acked:
            continue
        eid = o.event.event_id
        mine = by_event.get(eid, [])
        if o.event.critical:
            key = dedup_of.get(mine[0]["incident_id"]) if mine else None
            reached = key is None or key not in triggers or fakes.pd.incident(key) is not None
            out = 1 if mine and reached else 0
        else:
            out = msp.tickets_per_event[eid]
        if not mine or out == 0:
            report.lost.append(eid)
        elif len(mine) > 1 or out > 1:
            report.doubled.append(eid)
    report.lost.extend(f"page {k}" for k in triggers if fakes.pd.incident(k) is None)
    if report.pages > len(triggers):
        report.doubled.append(f"{report.pages - len(triggers)} extra incidents at the fake PagerDuty")
    report.pending_after = snap.pending(*KINDS)
    return report


async def _load(http: aiohttp.ClientSession, group: list[Replica], *, events: int, rate: float, prefix: str,
                page_every: int, patience: float) -> list[Outcome]:
    targets = [(r.name, r.events_url) for r in group]
    evs = make_events(events, prefix=prefix, page_every=page_every)
    deadline = time.monotonic() + events / rate + patience

    async def one(i: int, e: Any) -> Outcome:
        return await deliver(http, targets, e, first=i % len(targets), deadline=deadline)

    return await paced(evs, rate, one)


async def kill9_run(database_url: str, tmp: Path, *, replicas: int = 2, events: int = 300, rate: float = 40.0,
                    kills: int = 3, seed: int = 1, msp_delay: float = 0.05, drain: float = 40.0) -> CrashReport:
    """Kill -9 a random replica at random moments under load, restart it each time."""
    report = CrashReport(f"kill -9 ({replicas} replicas, {events} events at {rate:g}/s, {kills} kills)")
    rng = random.Random(seed)
    config = write_config(tmp, FAST_DELIVERY)
    async with Fakes() as fakes, aiohttp.ClientSession() as http:
        fakes.msp.delay = msp_delay  # deliveries are in flight when the kill comes
        group = [Replica(f"k{i}", config, database_url, fakes.env(), tmp) for i in range(replicas)]
        try:
            await start_first_then_rest(group)
            t0 = time.monotonic()
            duration = events / rate

            restarting: set[str] = set()

            async def restart(victim: Replica, killed: float) -> None:
                restarting.add(victim.name)
                took = await victim.start()
                restarting.discard(victim.name)
                report.faults.append(f"kill -9 {victim.name} at {killed:.1f} s (load ends at {duration:.0f} s), "
                                     f"serving again {took:.1f} s later")

            async def killer() -> None:
                restarts = []
                for at in sorted(rng.uniform(0.1 * duration, 0.9 * duration) for _ in range(kills)):
                    await asyncio.sleep(max(0.0, t0 + at - time.monotonic()))
                    alive = [r for r in group if r.alive() and r.name not in restarting]
                    if not alive:  # every replica is down and restarting already
                        report.notes.append(f"planned kill at {at:.1f} s skipped: no replica was up")
                        continue
                    victim = rng.choice(alive)
                    victim.kill()
                    restarts.append(asyncio.ensure_future(restart(victim, time.monotonic() - t0)))
                await asyncio.gather(*restarts)

            outcomes, _ = await asyncio.gather(
                _load(http, group, events=events, rate=rate, prefix="KILL", page_every=10, patience=30), killer())
            snap = await wait_drained(database_url, KINDS, drain)
        finally:
            for r in group:
                r.stop()
        return verify(report, outcomes, snap, fakes)


async def _readyz(http: aiohttp.ClientSession, url: str) -> int:
    try:
        async with http.get(url + "/readyz", timeout=aiohttp.ClientTimeout(total=5)) as resp:
            return resp.status
    except (TimeoutError, aiohttp.ClientError):
        return -1


async def pg_restart_run(tmp: Path, *, events: int = 240, rate: float = 40.0, down: float = 2.0,
                         mode: str = "fast", drain: float = 40.0) -> CrashReport:
    """Stop a private PostgreSQL under load for ``down`` seconds and start it again; one replica."""
    report = CrashReport(f"PostgreSQL restart ({mode} stop, {down:g} s down; {events} events at {rate:g}/s)")
    pg = PrivateCluster()
    config = write_config(tmp, FAST_DELIVERY)
    try:
        pg.init()
        pg.start()
        async with Fakes() as fakes, aiohttp.ClientSession() as http:
            replica = Replica("pg", config, pg.url, fakes.env(), tmp)
            try:
                await replica.start()
                window: dict[str, float] = {}
                probes: list[int] = []

                async def restarter() -> None:
                    await asyncio.sleep(0.3 * events / rate)
                    window["down"] = time.time()
                    await asyncio.to_thread(pg.stop, mode)
                    probes.append(await _readyz(http, replica.url))
                    await asyncio.sleep(down)
                    probes.append(await _readyz(http, replica.url))
                    await asyncio.to_thread(pg.start)
                    window["up"] = time.time()

                outcomes, _ = await asyncio.gather(
                    _load(http, [replica], events=events, rate=rate, prefix="PGR", page_every=10, patience=30),
                    restarter())
                snap = await wait_drained(pg.url, KINDS, drain)
                after = await _readyz(http, replica.url)
            finally:
                alive = replica.alive()
                replica.stop()
            verify(report, outcomes, snap, fakes)
    finally:
        pg.destroy()
    during = Counter(s for o in outcomes for _, s, at in o.attempts if window["down"] <= at <= window["up"])
    first_ok = min((at for o in outcomes for _, s, at in o.attempts if s == 200 and at > window["up"]), default=None)
    report.faults.append(f"PostgreSQL stopped for {window['up'] - window['down']:.1f} s; answers meanwhile: "
                         f"{dict(during)}; /readyz while down: {probes}, after: {after}")
    report.notes.append(f"replica process alive throughout: {alive} (started {replica.starts} time(s)); first 200 "
                        f"{(first_ok - window['up']) if first_ok else float('nan'):.2f} s after PostgreSQL was back")
    report.facts.update(during=during, probes=probes, after=after, alive=alive, starts=replica.starts)
    return report
