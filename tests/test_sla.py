"""The SLA watchdog, driven by the outbox worker and an injected clock (no sleeping), across DST changes.

Tickets and their ``sla.check`` rows are written by the real intake with a Europe/Berlin business
calendar (Mon-Fri 08:00-18:00) and a 4-business-hour first-response SLA.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from handlers.delivery import OutboxWorker
from handlers.intake import Intake, IntakeOptions
from handlers.msp_updates import MspUpdate, MspUpdates
from handlers.ports import DeliveryResult
from handlers.sla import SLA_KIND, SlaOptions, SlaWatchdog
from routing.calendar import BusinessCalendar
from storage import bulk
from storage.models import Ticket, ticket_id_from_key
from tests.ticket_env import (
    MSP_TEXT,
    Clock,
    ask,
    events,
    make_intake,
    payloads,
    rows,
    sinks,
    ticket,
)

BERLIN = BusinessCalendar.build(timezone="Europe/Berlin", weekdays=["mon", "tue", "wed", "thu", "fri"],
                                open="08:00", close="18:00")


@dataclass
class Env:
    sm: async_sessionmaker[AsyncSession]
    clock: Clock
    intake: Intake
    watchdog: SlaWatchdog
    worker: OutboxWorker

    async def run_at(self, at: datetime) -> int:
        self.clock.now = at
        return await self.worker.run_once()

    async def escalations(self, key: str) -> list[str]:
        return [r.kind for r in await rows(self.sm, key) if r.idempotency_key.startswith("sla:") and r.kind != SLA_KIND]


@pytest.fixture
async def env(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[Env]:
    clock = Clock()
    intake = await make_intake(sessionmaker, clock, IntakeOptions(calendar=BERLIN, sla_first_response=timedelta(hours=4)))
    watchdog = SlaWatchdog(sessionmaker=sessionmaker, clock=clock, options=SlaOptions(first_response_hours=4))
    worker = OutboxWorker(sessionmaker=sessionmaker, clock=clock, connectors={**sinks(), SLA_KIND: watchdog})
    yield Env(sessionmaker, clock, intake, watchdog, worker)


async def opened_at(env: Env, at: datetime, event_id: str = "Ev1") -> str:
    env.clock.now = at
    key = await ask(env.intake, MSP_TEXT, event_id=event_id)
    await env.worker.run_once()  # the ticket, the reply: everything due now
    return key


@pytest.mark.parametrize(("opened", "due"), [
    # Friday 16:00 CET + 4 business hours = Monday 10:00 CEST, after the spring-forward of 29 March.
    (datetime(2026, 3, 27, 15, 0, tzinfo=UTC), datetime(2026, 3, 30, 8, 0, tzinfo=UTC)),
    # Friday 16:00 CEST + 4 business hours = Monday 10:00 CET, after the fall-back of 25 October.
    (datetime(2026, 10, 23, 14, 0, tzinfo=UTC), datetime(2026, 10, 26, 9, 0, tzinfo=UTC)),
], ids=["spring-forward", "fall-back"])
async def test_watchdog_fires_exactly_at_the_boundary_across_dst(env: Env, opened: datetime, due: datetime) -> None:
    key = await opened_at(env, opened)
    t = await ticket(env.sm, key)
    assert t.sla_due_at == due, "4 business hours in Berlin wall-clock time, not 4 x 3600 s of UTC arithmetic"
    [check] = await rows(env.sm, key, SLA_KIND)
    assert (check.next_attempt_at, check.payload, check.idempotency_key) == (due, {"ticket_id": t.id}, f"sla:{t.id}")

    assert await env.run_at(due - timedelta(seconds=1)) == 0, "one second before: nothing is due"
    assert (await ticket(env.sm, key)).sla_breached_at is None and await env.escalations(key) == []

    assert await env.run_at(due) == 1
    t = await ticket(env.sm, key)
    assert t.sla_breached_at == due
    assert [(e.kind, e.actor) for e in await events(env.sm, key)] == [("sla_breach", "system")]
    assert sorted(await env.escalations(key)) == ["admin.alert", "internal", "msp", "slack.post"]
    [internal] = payloads(await rows(env.sm, key, "internal"))[-1:]
    assert internal["text"].startswith(f"{key}: the MSP has not responded within 4 business hours; escalated to "
                                       "in-house IT")
    [alert] = payloads(await rows(env.sm, key, "admin.alert"))
    assert f"SLA breach: {key}" in alert["text"] and f"due {due:%Y-%m-%d %H:%M} UTC" in alert["text"]
    msp = [p for p in payloads(await rows(env.sm, key, "msp")) if p.get("event") == "ticket.escalated"]
    assert msp == [{"event": "ticket.escalated", "id": key, "remote_id": None, "at": due.isoformat(),
                    "sla_due_at": due.isoformat(), "sla_hours": 4,
                    "text": f"No first response within 4 business hours (due {due:%Y-%m-%d %H:%M} UTC): handoff "
                            f"escalated {key} to in-house IT."}]
    told = payloads(await rows(env.sm, key, "slack.post"))[-1]
    assert "passed it to in-house IT" in told["text"] and told["thread_ts"] == t.thread_ref

    before = await rows(env.sm, key)
    await env.run_at(due + timedelta(hours=1))  # the follow-ups are delivered; nothing new is written
    result = await env.watchdog.deliver(payload={"ticket_id": t.id}, idempotency_key=f"sla:{t.id}")
    assert result.ok and result.detail == "already escalated", "a row that runs twice escalates once"
    assert [r.id for r in await rows(env.sm, key)] == [r.id for r in before]
    assert len(await events(env.sm, key)) == 1


async def test_a_first_response_in_time_stops_the_watchdog(env: Env) -> None:
    key = await opened_at(env, datetime(2026, 3, 27, 15, 0, tzinfo=UTC))
    due = (await ticket(env.sm, key)).sla_due_at
    assert due is not None
    env.clock.now = due - timedelta(minutes=1)
    await MspUpdates(sessionmaker=env.sm, clock=env.clock).apply(
        MspUpdate(event_id="m1", ticket=key, type="status", status="in_progress"))
    assert await env.run_at(due) >= 1
    assert (await ticket(env.sm, key)).sla_breached_at is None and await env.escalations(key) == []
    [check] = await rows(env.sm, key, SLA_KIND)
    assert (check.status, check.detail) == ("delivered", "the MSP responded")


async def test_a_closed_ticket_is_not_escalated(env: Env) -> None:
    key = await opened_at(env, datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    async with env.sm.begin() as session:
        await session.execute(update(Ticket).where(Ticket.id == ticket_id_from_key(key)).values(status="closed"))
    await env.run_at(datetime(2026, 3, 2, 13, 0, tzinfo=UTC))
    assert (await ticket(env.sm, key)).sla_breached_at is None and await env.escalations(key) == []


async def test_a_row_that_runs_before_the_due_time_reschedules_itself(env: Env) -> None:
    key = await opened_at(env, datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    t = await ticket(env.sm, key)
    first_due = datetime(2026, 3, 2, 13, 0, tzinfo=UTC)
    assert t.sla_due_at == first_due
    moved = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)  # e.g. the requester was asked to wait a day
    async with env.sm.begin() as session:
        await session.execute(update(Ticket).where(Ticket.id == t.id).values(sla_due_at=moved))
    assert await env.run_at(first_due) == 1
    assert (await ticket(env.sm, key)).sla_breached_at is None and await env.escalations(key) == []
    old, new = await rows(env.sm, key, SLA_KIND)
    assert old.status == "delivered" and old.detail.startswith("not due until 2026-03-03T09:00")
    assert (new.status, new.next_attempt_at, new.idempotency_key) == ("pending", moved, f"sla:{t.id}:{int(moved.timestamp())}")
    assert await env.run_at(moved - timedelta(seconds=1)) == 0
    assert await env.run_at(moved) == 1
    assert (await ticket(env.sm, key)).sla_breached_at == moved
    # The same early run repeated (a crash before the row was marked) enqueues nothing twice.
    env.clock.now = first_due
    assert (await env.watchdog.deliver(payload={"ticket_id": t.id}, idempotency_key=f"sla:{t.id}")).detail == \
        "already escalated"


async def test_a_rescheduled_row_run_early_by_clock_skew_retries_instead_of_vanishing(env: Env) -> None:
    key = await opened_at(env, datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    t = await ticket(env.sm, key)
    due = t.sla_due_at
    assert due is not None
    env.clock.now = due - timedelta(seconds=30)
    result = await env.watchdog.deliver(payload={"ticket_id": t.id},
                                        idempotency_key=f"sla:{t.id}:{int(due.timestamp())}")
    assert (result.ok, result.retryable, result.retry_after) == (False, True, 30.0)


async def test_bad_payloads_and_a_switched_off_watchdog(env: Env) -> None:
    result = await env.watchdog.deliver(payload={"ticket_id": "IT-1001"}, idempotency_key="sla:x")
    assert (result.ok, result.retryable) == (False, False), "dead-lettered, so an admin sees it"
    off = SlaWatchdog(sessionmaker=env.sm, clock=env.clock, options=SlaOptions(first_response_hours=None))
    assert (await off.deliver(payload={"ticket_id": 1}, idempotency_key="sla:1")).ok
    assert (await env.watchdog.deliver(payload={"ticket_id": 424242}, idempotency_key="sla:424242")).detail == \
        "no such ticket"


async def test_the_msp_s_ticket_number_from_its_answer_is_the_ticket_s_and_goes_out_again(env: Env) -> None:
    @dataclass
    class Msp:
        kind: str = "msp"

        async def deliver(self, *, payload: dict[str, object], idempotency_key: str) -> DeliveryResult:
            return DeliveryResult(ok=True, detail="HTTP 201", remote_id=f"T-{payload['id']}")

    env.worker = OutboxWorker(sessionmaker=env.sm, clock=env.clock,
                              connectors={**sinks(), "msp": Msp(), SLA_KIND: env.watchdog})
    key = await opened_at(env, datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    assert (await ticket(env.sm, key)).remote_id == f"T-{key}"  # learnt from the answer to ticket.created
    due = (await ticket(env.sm, key)).sla_due_at
    assert due is not None
    env.clock.now = due
    for _ in range(3):
        await env.worker.run_once()
    [escalated] = [p for p in payloads(await rows(env.sm, key, "msp")) if p.get("event") == "ticket.escalated"]
    assert escalated["remote_id"] == f"T-{key}"
    # A number a callback gave first is kept: an answer recorded after it does not overwrite it.
    async with env.sm() as session, session.begin():
        await session.execute(update(Ticket).values(remote_id="T-from-callback"))
        await bulk.learn_remote_ids(session=session, pairs=[(ticket_id_from_key(key), "T-late-answer")])
    assert (await ticket(env.sm, key)).remote_id == "T-from-callback"


async def test_a_ticket_closed_before_its_check_and_reopened_after_is_watched_again(env: Env) -> None:
    from handlers.tickets import Tickets
    from tests.ticket_env import EMPLOYEE

    key = await opened_at(env, datetime(2026, 3, 2, 9, 0, tzinfo=UTC))  # Mon 10:00 Berlin: due 13:00 UTC
    life = Tickets(sessionmaker=env.sm, clock=env.clock, sla_due=env.intake.sla_due_from)
    env.clock.now = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    await life.close(EMPLOYEE, f"{key} wrong button")
    await env.run_at(datetime(2026, 3, 2, 13, 0, tzinfo=UTC))  # the check finds it closed and ends
    env.clock.now = datetime(2026, 3, 2, 13, 30, tzinfo=UTC)
    await life.reopen(EMPLOYEE, f"{key} still broken")
    restarted = (await ticket(env.sm, key)).sla_due_at
    assert restarted == datetime(2026, 3, 3, 7, 30, tzinfo=UTC)  # 4 business hours from 14:30 Berlin: Tue 08:30
    await env.run_at(restarted - timedelta(minutes=1))
    assert await env.escalations(key) == []
    await env.run_at(restarted)
    await env.worker.run_once()
    assert (await ticket(env.sm, key)).sla_breached_at == restarted
    assert sorted(await env.escalations(key)) == ["admin.alert", "internal", "msp", "slack.post"]
