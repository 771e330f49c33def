"""The MSP misbehaves, then recovers: 500s, then 429 with ``Retry-After``, then it hangs longer than
the connector's timeout, then it answers normally (issue 6, "Faults").

Events are acknowledged during the outage (the MSP is never on the request path). Some tickets get
follow-up rows (``ticket.comment`` updates, written to the outbox as the handlers do) so per-ticket
order can be checked; some texts carry a marker the MSP refuses with 422. :func:`msp_outage_run`
returns an :class:`OutageReport`: everything delivered afterwards, once per ticket, in order, dead
letters exactly for the 4xx rows, each reported to the admin channel.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from tests.replica_db import Snapshot, snapshot, wait_drained
from tests.replica_harness import (
    ALERT_CHANNEL,
    FAST_DELIVERY,
    Fakes,
    Replica,
    start_first_then_rest,
    write_config,
)
from tests.replica_traffic import Event, count_msp, make_events, marker, post_event

REJECT = "REJECTED-BY-PSA"
KINDS = ("msp", "pagerduty", "slack.post", "admin.alert")


@dataclass
class OutageReport:
    """What an outage run counted; ``problems`` must be empty."""

    name: str
    acked: int = 0
    events: int = 0
    max_ack_seconds: float = 0.0
    answers: Counter[int] = field(default_factory=Counter)
    hung: int = 0
    msp_requests: int = 0
    msp_distinct_keys: int = 0
    msp_tickets: int = 0
    followups: int = 0
    dead: int = 0
    rejected_rows: int = 0
    alerts_posted: int = 0
    retry_after_checked: int = 0
    problems: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        answers = ", ".join(f"{s}: {n}" for s, n in sorted(self.answers.items()))
        return [
            (f"{self.name}: {self.acked}/{self.events} events acknowledged during the outage (slowest ack "
             f"{self.max_ack_seconds * 1e3:.0f} ms)"),
            f"  MSP answers by status: {answers}; requests held past the connector timeout: {self.hung}",
            (f"  fake MSP: {self.msp_requests} deliveries received, {self.msp_distinct_keys} distinct idempotency "
             f"keys, {self.msp_tickets} distinct new tickets, {self.followups} follow-up rows (comments) created once "
             "each"),
            f"  Retry-After honoured on {self.retry_after_checked} retried 429s",
            (f"  dead letters: {self.dead} (rows refused with 4xx: {self.rejected_rows}); admin alerts posted to "
             f"{ALERT_CHANNEL}: {self.alerts_posted}"),
            f"  problems: {len(self.problems)} {self.problems[:5]}",
            f"  verdict: {'PASS' if not self.problems else 'FAIL'}",
        ]


async def _add_followups(database_url: str, snap: Snapshot, events: list[Event], count: int) -> dict[int, list[str]]:
    """``count`` comment rows for each ticket of ``events``; per ticket, its MSP keys in order."""
    from storage import service
    from storage.db import make_engine, make_sessionmaker

    ticket_of = {marker(t["text"]): t["id"] for t in snap.tickets}
    order: dict[int, list[str]] = {}
    engine = make_engine(database_url, pool_size=1)
    try:
        async with make_sessionmaker(engine).begin() as session:
            for e in events:
                tid = ticket_of[e.event_id]
                first = next(r["idempotency_key"] for r in snap.rows("msp") if r["ticket_id"] == tid)
                order[tid] = [first]
                for k in range(1, count + 1):
                    key = f"test-{e.event_id}-comment-{k}"
                    await service.enqueue(session=session, kind="msp", ticket_id=tid, idempotency_key=key,
                                          now=datetime.now(UTC), payload={
                                              "event": "ticket.comment", "id": f"IT-{tid}", "seq": k,
                                              "text": f"comment {k} (ref {e.event_id})"})
                    order[tid].append(key)
    finally:
        await engine.dispose()
    return order


def _check_order(report: OutageReport, fakes: Fakes, order: dict[int, list[str]]) -> None:
    """Row k+1 of a ticket is first sent only after row k got a 2xx, and tickets are created in order."""
    arrivals: dict[str, list[float]] = defaultdict(list)
    for r in fakes.msp.requests:
        arrivals[r.header("Idempotency-Key") or ""].append(r.received_at)
    ok_at: dict[str, float] = {}
    for key, status, at in fakes.msp.answers:
        if 200 <= status < 300:
            ok_at[key] = min(at, ok_at.get(key, at))
    created = list(fakes.msp._by_key)  # insertion order = creation order
    for tid, keys in order.items():
        for before, after in itertools.pairwise(keys):
            if before not in ok_at or not arrivals[after] or min(arrivals[after]) < ok_at[before]:
                report.problems.append(f"ticket {tid}: {after} sent before {before} succeeded")
        if [k for k in created if k in keys] != keys:
            report.problems.append(f"ticket {tid}: created out of order")


def _check_retry_after(report: OutageReport, fakes: Fakes) -> None:
    arrivals: dict[str, list[float]] = defaultdict(list)
    for r in fakes.msp.requests:
        arrivals[r.header("Idempotency-Key") or ""].append(r.received_at)
    for key, status, at in fakes.msp.answers:
        if status != 429:
            continue
        later = [t for t in arrivals[key] if t > at]
        if later:
            report.retry_after_checked += 1
            if min(later) < at + fakes.msp.retry_after - 0.05:
                report.problems.append(f"{key}: retried {min(later) - at:.2f} s after a 429 with Retry-After "
                                       f"{fakes.msp.retry_after}")


async def msp_outage_run(database_url: str, tmp: Path, *, replicas: int = 1, events: int = 30,
                         phases: tuple[tuple[str, float], ...] = (("500", 2.0), ("429", 2.0), ("hang", 2.5)),
                         hang_seconds: float = 3.0, msp_timeout: float = 1.0, threads: int = 5, followups: int = 3,
                         drain: float = 40.0) -> OutageReport:
    """Run the MSP through ``phases`` (mode, seconds), then let it recover; check what arrived."""
    report = OutageReport(f"MSP outage ({' -> '.join(f'{m} {s:g}s' for m, s in phases)} -> ok; {replicas} replica(s), "
                          f"connector timeout {msp_timeout:g} s, hang {hang_seconds:g} s)")
    # the worker's own limit on a call is 0.8 x lease: keep it above the connector's timeout
    lease = max(5.0, 2 * msp_timeout)
    config = write_config(tmp, {**FAST_DELIVERY, "msp": {"timeout_seconds": msp_timeout},
                                "delivery": {**FAST_DELIVERY["delivery"], "lease_seconds": lease}})
    async with Fakes() as fakes, aiohttp.ClientSession() as http:
        fakes.msp.reject_marker, fakes.msp.hang_seconds = REJECT, hang_seconds
        group = [Replica(f"m{i}", config, database_url, fakes.env(), tmp) for i in range(replicas)]
        try:
            await start_first_then_rest(group)
            evs = make_events(events, prefix="MSP", page_every=15, reject_every=10, reject_marker=REJECT)
            fakes.msp.mode = phases[0][0]
            started = time.monotonic()

            async def send(i: int, e: Event) -> tuple[int, float]:
                t = time.monotonic()
                return await post_event(http, group[i % replicas].events_url, e), time.monotonic() - t

            sent = await asyncio.gather(*(send(i, e) for i, e in enumerate(evs)))
            report.events, report.acked = len(evs), sum(s == 200 for s, _ in sent)
            report.max_ack_seconds = max(t for _, t in sent)
            threaded = [e for e in evs if not e.critical and REJECT not in e.text][:threads]
            order = await _add_followups(database_url, await snapshot(database_url), threaded, followups)
            until = started
            for mode, seconds in phases:
                fakes.msp.mode = mode
                until += seconds
                await asyncio.sleep(max(0.0, until - time.monotonic()))
                if mode == "hang":
                    report.hung = sum(1 for r in fakes.msp.requests if r.received_at >= time.time() - seconds)
            fakes.msp.mode = "ok"
            snap = await wait_drained(database_url, KINDS, drain)
        finally:
            for r in group:
                r.stop()
        _verify(report, snap, fakes, evs, order)
    return report


def _verify(report: OutageReport, snap: Snapshot, fakes: Fakes, evs: list[Event], order: dict[int, list[str]]) -> None:
    if report.acked != report.events:
        report.problems.append(f"only {report.acked} of {report.events} events acknowledged")
    report.answers = Counter(status for _, status, _ in fakes.msp.answers)
    msp = count_msp(fakes.msp.requests, fakes.msp.tickets.values())
    report.msp_requests, report.msp_distinct_keys, report.msp_tickets = msp.requests, msp.distinct_keys, msp.tickets
    for e in evs:
        want = 0 if e.critical or REJECT in e.text else 1
        if msp.tickets_per_event[e.event_id] != want:
            report.problems.append(f"{e.event_id}: {msp.tickets_per_event[e.event_id]} MSP tickets, expected {want}")
    follow_keys = [k for keys in order.values() for k in keys[1:]]
    report.followups = sum(fakes.msp.ticket_for(k) is not None for k in follow_keys)
    if report.followups != len(follow_keys):
        report.problems.append(f"{len(follow_keys) - report.followups} follow-up rows never reached the MSP")
    rejected = {r["id"] for r in snap.rows("msp") if REJECT in str(r["payload"].get("text", ""))}
    dead = {r["id"] for r in snap.outbox if r["status"] == "dead"}
    report.dead, report.rejected_rows = len(dead), len(rejected)
    if dead != rejected or not rejected:
        report.problems.append(f"dead rows {sorted(dead)} are not exactly the refused rows {sorted(rejected)}")
    if pending := snap.pending(*KINDS):
        report.problems.append(f"{pending} rows still pending")
    bad_4xx = [k for k, s, _ in fakes.msp.answers if 400 <= s < 500 and s != 429
               and not any(r["idempotency_key"] == k for r in snap.rows("msp") if r["id"] in rejected)]
    if bad_4xx:
        report.problems.append(f"4xx answers for rows that were not refused: {bad_4xx[:3]}")
    alerts = {r["payload"].get("dead_row_id"): r for r in snap.rows("admin.alert")}
    posted = [p for p in fakes.slack.posts if p.get("channel") == ALERT_CHANNEL]
    for row_id in rejected:
        alert = alerts.get(row_id)
        if alert is None or alert["status"] != "delivered":
            report.problems.append(f"dead row {row_id}: no delivered admin.alert row")
        if not any(f"row {row_id} " in str(p.get("text", "")) for p in posted):
            report.problems.append(f"dead row {row_id}: no alert posted to {ALERT_CHANNEL}")
    report.alerts_posted = len(posted)
    for mode, status in (("500", 500), ("429", 429)):
        if not report.answers[status]:
            report.problems.append(f"the {mode} phase answered no request: nothing was tested")
    if not report.hung:
        report.problems.append("no request arrived while the MSP hung: nothing was tested")
    _check_order(report, fakes, order)
    _check_retry_after(report, fakes)

