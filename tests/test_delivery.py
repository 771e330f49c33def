"""handlers/delivery.py: retry policy and the outbox worker against a real database.

The connectors here are small test doubles of the ``Connector`` port; everything else is real.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from handlers.delivery import ALERT_KIND, DeadLetter, OutboxWorker, RetryPolicy
from handlers.ports import DeliveryResult
from storage import service
from storage.models import OutboxRow
from tests.helpers import eventually

NOW = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
SM = async_sessionmaker[AsyncSession]
NO_JITTER = RetryPolicy(base=1.0, factor=2.0, cap=300.0, max_attempts=5, jitter=False)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class ScriptedConnector:
    """Answers each call with the next scripted result (or raises it if it is an exception)."""

    kind: str
    script: list[DeliveryResult | Exception] = field(default_factory=list)
    calls: list[tuple[dict[str, Any], str]] = field(default_factory=list)

    async def deliver(self, *, payload: dict[str, Any], idempotency_key: str) -> DeliveryResult:
        self.calls.append((payload, idempotency_key))
        outcome = self.script.pop(0) if self.script else DeliveryResult(ok=True, detail="200")
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


@dataclass
class RecordingMetrics:
    claims: list[int] = field(default_factory=list)
    attempts: list[tuple[str, str]] = field(default_factory=list)

    def claimed(self, count: int) -> None:
        self.claims.append(count)

    def attempt(self, *, kind: str, outcome: str, seconds: float) -> None:
        assert seconds >= 0
        self.attempts.append((kind, outcome))


async def put(
    sm: SM,
    kind: str = "msp",
    *,
    key: str = "k1",
    ticket_id: int | None = None,
    payload: dict[str, Any] | None = None,
    now: datetime = NOW,
) -> int:
    async with sm() as s, s.begin():
        row = await service.enqueue(
            session=s,
            kind=kind,
            payload=payload or {"summary": "hi"},
            idempotency_key=key,
            now=now,
            ticket_id=ticket_id,
        )
        return row.id


async def get_row(sm: SM, row_id: int) -> OutboxRow:
    async with sm() as s:
        row = await s.get(OutboxRow, row_id)
        assert row is not None
        return row


async def rows_of_kind(sm: SM, kind: str) -> list[OutboxRow]:
    async with sm() as s:
        return list((await s.scalars(select(OutboxRow).where(OutboxRow.kind == kind))).all())


def worker(sm: SM, clock: Clock, *connectors: Any, **kw: Any) -> OutboxWorker:
    kw.setdefault("policy", NO_JITTER)
    return OutboxWorker(
        sessionmaker=sm,
        connectors={c.kind: c for c in connectors},
        clock=clock,
        rng=random.Random(7),
        **kw,
    )


# --- retry policy --------------------------------------------------------------------------------


def test_policy_without_jitter_is_capped_exponential() -> None:
    p = RetryPolicy(base=1.0, factor=2.0, cap=300.0, jitter=False)
    rng = random.Random(1)
    assert [p.delay(n, None, rng) for n in (1, 2, 3, 9, 10, 50, 5000)] == [
        1,
        2,
        4,
        256,
        300,
        300,
        300,
    ]


def test_policy_full_jitter_stays_under_ceiling_and_honours_retry_after() -> None:
    p = RetryPolicy(base=1.0, factor=2.0, cap=60.0)
    rng = random.Random(3)
    samples = [p.delay(4, None, rng) for _ in range(500)]
    assert all(0.0 <= d <= 8.0 for d in samples) and max(samples) > 6 and min(samples) < 2
    assert all(p.delay(4, 30.0, rng) >= 30.0 for _ in range(50))  # Retry-After is a floor
    assert p.delay(9, 0.5, random.Random(3)) == p.delay(9, None, random.Random(3))
    assert p.delay(1, 10 * 86400.0, rng) == p.max_retry_after == 3600.0  # a hostile Retry-After is capped


# --- worker ---------------------------------------------------------------------------------------


async def test_delivered_exactly_once(sessionmaker: SM) -> None:
    msp = ScriptedConnector("msp", [DeliveryResult(ok=True, detail="HTTP 201", remote_id="T-9")])
    metrics = RecordingMetrics()
    rid = await put(sessionmaker, payload={"summary": "printer"}, key="ticket:1:msp")
    w = worker(sessionmaker, Clock(), msp, metrics=metrics)
    assert await w.run_once() == 1
    assert await w.run_once() == 0
    assert msp.calls == [({"summary": "printer"}, "ticket:1:msp")]
    row = await get_row(sessionmaker, rid)
    assert (row.status, row.attempts, row.remote_id, row.detail, row.delivered_at) == (
        "delivered",
        1,
        "T-9",
        "HTTP 201",
        NOW,
    )
    assert metrics.claims == [1] and metrics.attempts == [("msp", "delivered")]


async def test_retryable_failure_honours_retry_after(sessionmaker: SM) -> None:
    clock = Clock()
    msp = ScriptedConnector(
        "msp", [DeliveryResult(ok=False, retryable=True, retry_after=30, detail="HTTP 429")]
    )
    rid = await put(sessionmaker)
    w = worker(sessionmaker, clock, msp)
    assert await w.run_once() == 1
    row = await get_row(sessionmaker, rid)
    assert (row.status, row.attempts, row.last_error) == ("pending", 1, "HTTP 429")
    assert row.next_attempt_at == NOW + timedelta(seconds=30) and row.locked_by is None
    clock.advance(29)
    assert await w.run_once() == 0 and len(msp.calls) == 1  # not before Retry-After
    clock.advance(1)
    assert await w.run_once() == 1
    row = await get_row(sessionmaker, rid)
    assert (row.status, row.attempts, len(msp.calls)) == ("delivered", 2, 2)
    assert msp.calls[0][1] == msp.calls[1][1]  # the same idempotency key on the retry


async def test_backoff_without_retry_after_grows(sessionmaker: SM) -> None:
    clock = Clock()
    fail = DeliveryResult(ok=False, retryable=True, detail="HTTP 503")
    msp = ScriptedConnector("msp", [fail, fail, fail])
    rid = await put(sessionmaker)
    w = worker(sessionmaker, clock, msp)
    delays = []
    for _ in range(3):
        assert await w.run_once() == 1
        row = await get_row(sessionmaker, rid)
        delays.append((row.next_attempt_at - clock.now).total_seconds())
        clock.now = row.next_attempt_at
    assert delays == [1.0, 2.0, 4.0]


async def test_non_retryable_goes_dead_with_admin_alert(sessionmaker: SM) -> None:
    async with sessionmaker() as s, s.begin():
        ticket = await service.create_ticket(
            session=s,
            now=NOW,
            platform="slack",
            user_id="U1",
            text="x",
            route="msp",
            severity="normal",
            queue="msp",
            rule_id="r",
            ruleset_version=1,
        )
    dead_seen: list[DeadLetter] = []

    async def on_dead(d: DeadLetter) -> None:
        dead_seen.append(d)

    msp = ScriptedConnector(
        "msp", [DeliveryResult(ok=False, retryable=False, detail="HTTP 400 bad field")]
    )
    rid = await put(sessionmaker, ticket_id=ticket.id)
    w = worker(sessionmaker, Clock(), msp, on_dead=on_dead)
    assert await w.run_once() == 1
    row = await get_row(sessionmaker, rid)
    assert (row.status, row.attempts, row.dead_at) == ("dead", 1, NOW)
    assert "HTTP 400 bad field" in (row.last_error or "")
    (alert,) = await rows_of_kind(sessionmaker, ALERT_KIND)
    assert alert.idempotency_key == f"alert:dead:{rid}" and alert.status == "pending"
    assert alert.payload["dead_row_id"] == rid and alert.payload["dead_kind"] == "msp"
    assert alert.payload["ticket_id"] == ticket.id and "HTTP 400" in alert.payload["error"]
    assert ticket.key in alert.payload["text"]
    assert dead_seen == [DeadLetter(rid, "msp", ticket.id, row.last_error or "", 1)]


async def test_connector_exception_is_a_retry(
    sessionmaker: SM, caplog: pytest.LogCaptureFixture
) -> None:
    secret_text = "my password is hunter2"
    msp = ScriptedConnector("msp", [ConnectionResetError("peer reset")])
    rid = await put(sessionmaker, payload={"summary": secret_text})
    w = worker(sessionmaker, Clock(), msp)
    with caplog.at_level("DEBUG"):
        assert await w.run_once() == 1
    row = await get_row(sessionmaker, rid)
    assert (row.status, row.attempts) == ("pending", 1)
    assert "ConnectionResetError" in (row.last_error or "")
    assert secret_text not in caplog.text  # payloads are never logged


async def test_gives_up_after_max_attempts(sessionmaker: SM) -> None:
    clock = Clock()
    fail = DeliveryResult(ok=False, retryable=True, detail="HTTP 502")
    msp = ScriptedConnector("msp", [fail, fail, fail])
    rid = await put(sessionmaker)
    w = worker(sessionmaker, clock, msp, policy=RetryPolicy(max_attempts=2, jitter=False))
    assert await w.run_once() == 1
    clock.advance(10)
    assert await w.run_once() == 1
    row = await get_row(sessionmaker, rid)
    assert (row.status, row.attempts, len(msp.calls)) == ("dead", 2, 2)
    assert "after 2 attempts" in (row.last_error or "")
    assert len(await rows_of_kind(sessionmaker, ALERT_KIND)) == 1


async def test_missing_connector_dead_letters_without_alert_loop(sessionmaker: SM) -> None:
    rid = await put(sessionmaker, kind="opsgenie")
    w = worker(sessionmaker, Clock())  # no connectors at all, not even for admin.alert
    assert await w.run_once() == 1  # the row goes dead and spawns one alert
    row = await get_row(sessionmaker, rid)
    assert (
        row.status == "dead"
        and "no connector" in (row.last_error or "")
        and "opsgenie" in (row.last_error or "")
    )
    assert await w.run_once() == 1  # the alert itself has no connector: dead, no new alert
    assert await w.run_once() == 0
    (alert,) = await rows_of_kind(sessionmaker, ALERT_KIND)
    assert alert.status == "dead"


async def test_alert_rows_are_delivered_by_an_alert_connector(sessionmaker: SM) -> None:
    admin = ScriptedConnector(ALERT_KIND)
    await put(sessionmaker, kind="msp")
    w = worker(sessionmaker, Clock(), ScriptedConnector("msp", [DeliveryResult(ok=False)]), admin)
    assert await w.run_once() == 1
    assert await w.run_once() == 1
    assert len(admin.calls) == 1 and admin.calls[0][0]["dead_kind"] == "msp"


async def test_no_transaction_is_open_while_delivering(sessionmaker: SM) -> None:
    """The connector writes to the row being delivered: it would block on a held transaction."""

    outcomes: list[str] = []

    @dataclass
    class WritingConnector:
        kind: str = "msp"

        async def deliver(self, *, payload: dict[str, Any], idempotency_key: str) -> DeliveryResult:
            async def touch() -> None:
                async with sessionmaker() as s, s.begin():
                    await s.execute(
                        update(OutboxRow)
                        .where(OutboxRow.id == payload["id"])
                        .values(remote_id="touched")
                    )

            try:
                await asyncio.wait_for(touch(), timeout=2)
            except Exception as exc:
                outcomes.append(type(exc).__name__)
                raise
            outcomes.append("ok")
            return DeliveryResult(ok=True, remote_id="R1")

    async with sessionmaker() as s, s.begin():
        row = await service.enqueue(session=s, kind="msp", payload={}, idempotency_key="k", now=NOW)
        row.payload = {"id": row.id}
    w = worker(sessionmaker, Clock(), WritingConnector(), deliver_timeout=10)
    assert await w.run_once() == 1
    assert outcomes == ["ok"]
    assert (await get_row(sessionmaker, row.id)).status == "delivered"


async def test_rows_of_one_ticket_go_in_order_others_in_parallel(sessionmaker: SM) -> None:
    async with sessionmaker() as s, s.begin():
        t1 = await service.create_ticket(
            session=s,
            now=NOW,
            platform="slack",
            user_id="U",
            text="x",
            route="msp",
            severity="normal",
            queue="q",
            rule_id="r",
            ruleset_version=1,
        )
    events: list[str] = []

    @dataclass
    class SlowConnector:
        kind: str

        async def deliver(self, *, payload: dict[str, Any], idempotency_key: str) -> DeliveryResult:
            events.append(f"start {idempotency_key}")
            await asyncio.sleep(0.05)
            events.append(f"end {idempotency_key}")
            return DeliveryResult(ok=True)

    await put(sessionmaker, "msp", key="t1-msp", ticket_id=t1.id)
    await put(sessionmaker, "slack.post", key="t1-reply", ticket_id=t1.id)
    await put(sessionmaker, "msp", key="free")
    w = worker(sessionmaker, Clock(), SlowConnector("msp"), SlowConnector("slack.post"))
    assert await w.run_once() == 3
    assert events.index("end t1-msp") < events.index("start t1-reply")  # same ticket: in order
    assert events.index("start free") < events.index("end t1-msp")  # other rows: concurrently


async def test_slow_connector_times_out_as_retry(sessionmaker: SM) -> None:
    @dataclass
    class Hanging:
        kind: str = "msp"

        async def deliver(self, *, payload: dict[str, Any], idempotency_key: str) -> DeliveryResult:
            await asyncio.sleep(30)
            return DeliveryResult(ok=True)

    rid = await put(sessionmaker)
    w = worker(sessionmaker, Clock(), Hanging(), deliver_timeout=0.05)
    assert await w.run_once() == 1
    row = await get_row(sessionmaker, rid)
    assert row.status == "pending" and "timed out" in (row.last_error or "")


async def test_run_loop_wakes_and_stops(sessionmaker: SM) -> None:
    delivered = asyncio.Event()

    @dataclass
    class Signalling:
        kind: str = "msp"

        async def deliver(self, *, payload: dict[str, Any], idempotency_key: str) -> DeliveryResult:
            delivered.set()
            return DeliveryResult(ok=True)

    w = worker(sessionmaker, Clock(), Signalling(), poll_interval=60)
    stop = asyncio.Event()
    task = asyncio.create_task(w.run(stop))
    await asyncio.sleep(0.1)  # the loop found nothing and is now waiting up to 60 s
    await put(sessionmaker)
    w.wake()
    await asyncio.wait_for(delivered.wait(), timeout=5)
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    assert task.exception() is None


async def test_faulty_hooks_do_not_stop_delivery(sessionmaker: SM) -> None:
    class BrokenMetrics(RecordingMetrics):
        def attempt(self, *, kind: str, outcome: str, seconds: float) -> None:
            raise RuntimeError("metrics backend down")

    def on_dead(_: DeadLetter) -> None:
        raise RuntimeError("hook bug")

    ok_id = await put(sessionmaker, "msp", key="a")
    dead_id = await put(sessionmaker, "pager", key="b")
    pager = ScriptedConnector("pager", [DeliveryResult(ok=False, detail="HTTP 400")])
    w = worker(
        sessionmaker,
        Clock(),
        ScriptedConnector("msp"),
        pager,
        metrics=BrokenMetrics(),
        on_dead=on_dead,
    )
    assert await w.run_once() == 2
    assert (await get_row(sessionmaker, ok_id)).status == "delivered"
    assert (await get_row(sessionmaker, dead_id)).status == "dead"
    assert len(await rows_of_kind(sessionmaker, ALERT_KIND)) == 1


# --- the pipelined run loop ------------------------------------------------------------------------


async def test_run_loop_keeps_delivering_while_one_row_hangs(sessionmaker: SM) -> None:
    """A slow call holds one slot, not the worker: rows claimed after it are delivered meanwhile.

    With claim-a-batch-then-wait-for-all, the 30 rows after the hanging one would wait for it.
    """
    release = asyncio.Event()
    delivered: list[str] = []

    @dataclass
    class OneHangs:
        kind: str = "msp"

        async def deliver(self, *, payload: dict[str, Any], idempotency_key: str) -> DeliveryResult:
            if idempotency_key == "k-hang":
                await release.wait()
            delivered.append(idempotency_key)
            return DeliveryResult(ok=True)

    await put(sessionmaker, key="k-hang")
    for i in range(30):
        await put(sessionmaker, key=f"k{i}")
    w = worker(sessionmaker, Clock(), OneHangs(), batch=4, concurrency=4, poll_interval=60)
    stop = asyncio.Event()
    task = asyncio.create_task(w.run(stop))
    try:
        await eventually(lambda: len(delivered) == 30)
        assert sorted(delivered) == sorted(f"k{i}" for i in range(30))  # all but the hanging one
    finally:
        release.set()
        stop.set()
        await asyncio.wait_for(task, timeout=5)
    assert delivered[-1] == "k-hang"  # stop let the row in flight finish ...
    assert (await get_row(sessionmaker, 1)).status == "delivered"  # ... and recorded it


async def test_run_loop_never_exceeds_its_concurrency_and_keeps_ticket_order(sessionmaker: SM) -> None:
    in_flight, peak = 0, 0
    order: list[str] = []

    @dataclass
    class Counting:
        kind: str

        async def deliver(self, *, payload: dict[str, Any], idempotency_key: str) -> DeliveryResult:
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(random.uniform(0, 0.01))
            order.append(idempotency_key)
            in_flight -= 1
            return DeliveryResult(ok=True)

    tickets = []
    async with sessionmaker() as s, s.begin():
        for i in range(10):
            t = await service.create_ticket(session=s, now=NOW, platform="slack", user_id="U", text="x", route="msp",
                                            severity="normal", queue="q", rule_id="r", ruleset_version=1)
            tickets.append(t.id)
    for step in range(4):  # each ticket: created, then three comments, written in that order
        for n, tid in enumerate(tickets):
            await put(sessionmaker, "msp", key=f"t{n}-{step}", ticket_id=tid)
    for i in range(40):
        await put(sessionmaker, "slack.post", key=f"free{i}")
    w = worker(sessionmaker, Clock(), Counting("msp"), Counting("slack.post"), batch=5, concurrency=6,
               poll_interval=0.05)
    stop = asyncio.Event()
    task = asyncio.create_task(w.run(stop))
    try:
        await eventually(lambda: len(order) == 80, timeout=10)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=5)
    assert len(order) == 80 and len(set(order)) == 80  # each once
    assert 1 < peak <= 6
    for n in range(10):
        mine = [k for k in order if k.startswith(f"t{n}-")]
        assert mine == [f"t{n}-{step}" for step in range(4)], mine


async def test_run_loop_never_delivers_a_row_twice_when_its_lease_runs_out_in_flight(sessionmaker: SM) -> None:
    """The clock jumps past the lease while a call is in flight (the storm test's injected clock did:
    40 reports in 2 minutes). The next claim finds the row due again; the worker must not post it twice."""
    clock = Clock()
    release = asyncio.Event()
    calls: list[str] = []

    @dataclass
    class Slow:
        kind: str = "msp"

        async def deliver(self, *, payload: dict[str, Any], idempotency_key: str) -> DeliveryResult:
            calls.append(idempotency_key)
            await release.wait()
            return DeliveryResult(ok=True)

    rid = await put(sessionmaker, key="k-slow")
    w = worker(sessionmaker, clock, Slow(), lease_seconds=60, poll_interval=0.01)
    stop = asyncio.Event()
    task = asyncio.create_task(w.run(stop))
    try:
        await eventually(lambda: calls)
        clock.advance(120)  # the lease has run out; the worker polls and claims again
        w.wake()
        await asyncio.sleep(0.2)
        release.set()
        for _ in range(200):
            if (await get_row(sessionmaker, rid)).status == "delivered":
                break
            await asyncio.sleep(0.01)
    finally:
        release.set()
        stop.set()
        await asyncio.wait_for(task, timeout=5)
    assert calls == ["k-slow"]


@pytest.mark.parametrize("taken", [False, True])
async def test_a_ticket_s_later_row_is_renewed_or_left_to_whoever_holds_it(sessionmaker: SM, taken: bool) -> None:
    """Rows of one ticket go one by one under the lease of their claim; each call may take up to the
    timeout (0.8 x lease), so a slow first row can leave the next one's lease nearly out. The worker
    renews it before the call; when another worker claimed it meanwhile, it is that worker's, and is
    not posted twice (chat posts carry no idempotency key)."""
    clock = Clock()
    release = asyncio.Event()

    @dataclass
    class Blocking:
        kind: str = "msp"
        calls: list[str] = field(default_factory=list)

        async def deliver(self, *, payload: dict[str, Any], idempotency_key: str) -> DeliveryResult:
            self.calls.append(idempotency_key)
            await release.wait()
            return DeliveryResult(ok=True)

    async with sessionmaker() as s, s.begin():
        ticket = await service.create_ticket(session=s, now=NOW, platform="slack", user_id="U1", text="x",
                                             route="msp", severity="normal", queue="q", rule_id="r", ruleset_version=1)
    await put(sessionmaker, "msp", key="k-msp", ticket_id=ticket.id)
    reply = await put(sessionmaker, "slack.post", key="k-reply", ticket_id=ticket.id)
    msp, posts_a, posts_b = Blocking(), ScriptedConnector("slack.post"), ScriptedConnector("slack.post")
    a = worker(sessionmaker, clock, msp, posts_a, lease_seconds=60, worker_id="A")
    b = worker(sessionmaker, clock, ScriptedConnector("msp"), posts_b, lease_seconds=60, worker_id="B")
    first = asyncio.create_task(a.run_once())
    await eventually(lambda: msp.calls)  # A holds both rows and is on the first, which takes its time
    if taken:
        clock.advance(61)  # A's leases ran out: B claims both rows (the first again, under its idempotency key)
        assert await b.run_once() == 2
    else:
        clock.advance(50)  # 10 s of lease left, less than a call may take: A renews it
    release.set()
    assert await first == 2
    assert len(posts_a.calls) + len(posts_b.calls) == 1
    assert (posts_b if taken else posts_a).calls
    row = await get_row(sessionmaker, reply)
    assert row.status == "delivered" and row.attempts == 1 and row.locked_by is None
