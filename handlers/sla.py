"""The SLA watchdog: an MSP ticket with no first response by its due time is escalated in house.

Intake writes, for every ``msp``-route ticket, ``Ticket.sla_due_at`` (the configured business hours
after creation, from :class:`routing.calendar.BusinessCalendar`) and an ``sla.check`` outbox row due
then (:func:`check_row`). The outbox worker runs that row through :class:`SlaWatchdog`, a
:class:`~handlers.ports.Connector` that works in our own database instead of calling a third party.

At the due time, if the ticket has had no first response and is neither resolved nor closed, one
transaction records ``sla_breached_at`` and an ``sla_breach`` history line, and enqueues: an
``internal`` post (the in-house queue takes it over), an ``admin.alert``, an ``msp`` webhook event
``ticket.escalated`` and a message to the requester. Idempotent: the breach is a conditional update,
so a row that runs twice (after a crash) escalates once, and the follow-up rows have deterministic
idempotency keys inserted with ``ON CONFLICT DO NOTHING``.

A row that runs before the ticket is due (the due time was moved later) does not fire: it enqueues
a new check at the new due time (key ``sla:<id>:<due unix seconds>``) and completes. Re-enqueueing,
rather than a retry with ``retry_after``, keeps the worker's attempt count and its one-hour cap on
``Retry-After`` out of a wait that can last a long weekend.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from handlers.notify import requester_row
from handlers.ports import DeliveryResult
from handlers.ticket_views import clip, when
from storage import tickets
from storage.models import Ticket

#: Outbox kind of the watchdog's rows.
SLA_KIND = "sla.check"


def check_row(ticket_id: int, due: datetime) -> dict[str, Any]:
    """The ``sla.check`` outbox row of a new MSP ticket (for ``storage.bulk.enqueue_many``)."""
    return {"kind": SLA_KIND, "payload": {"ticket_id": ticket_id}, "idempotency_key": f"sla:{ticket_id}",
            "ticket_id": ticket_id, "next_attempt_at": due}


@dataclass(frozen=True, slots=True)
class SlaOptions:
    """``first_response_hours`` is ``sla.msp_first_response_hours`` (None: the watchdog is off)."""

    first_response_hours: float | None = 4.0
    internal_channel: str | None = None


class SlaWatchdog:
    """Connector of ``sla.check`` rows (run in-process by the outbox worker)."""

    kind = SLA_KIND

    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Callable[[], datetime],
        options: SlaOptions = SlaOptions(),
        on_commit: Callable[[], None] = lambda: None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._clock = clock
        self._options = options
        self._on_commit = on_commit

    async def deliver(self, *, payload: dict[str, Any], idempotency_key: str) -> DeliveryResult:
        ticket_id = payload.get("ticket_id")
        if not isinstance(ticket_id, int) or isinstance(ticket_id, bool):
            return DeliveryResult(ok=False, retryable=False, detail="sla.check row without an integer ticket_id")
        hours = self._options.first_response_hours
        if hours is None:
            return DeliveryResult(ok=True, detail="SLA watchdog is off (sla.msp_first_response_hours: null)")
        now = self._clock()
        async with self._sessionmaker.begin() as session:
            ticket = await tickets.lock_ticket(session=session, ticket_id=ticket_id)
            if ticket is None:
                return DeliveryResult(ok=True, detail="no such ticket")
            skip = _nothing_to_do(ticket)
            if skip:
                return DeliveryResult(ok=True, detail=skip)
            due = ticket.sla_due_at
            assert due is not None
            if now < due:
                key = f"sla:{ticket_id}:{int(due.timestamp())}"
                if key == idempotency_key:  # this very row, run early (clocks of two replicas disagree)
                    return DeliveryResult(ok=False, retryable=True, retry_after=(due - now).total_seconds(),
                                          detail=f"not due until {due.isoformat()}")
                await tickets.enqueue_once(session=session, rows=[(SLA_KIND, {"ticket_id": ticket_id}, key)],
                                           now=now, ticket_id=ticket_id, due=due)
                return DeliveryResult(ok=True, detail=f"not due until {due.isoformat()}: checked again then")
            if not await tickets.mark_sla_breached(session=session, ticket_id=ticket_id, now=now):
                return DeliveryResult(ok=True, detail="nothing to do")
            await self._escalate(session, ticket, due, hours, now)
        self._on_commit()
        return DeliveryResult(ok=True, detail=f"{ticket.key} escalated in house")

    async def _escalate(self, session: AsyncSession, ticket: Ticket, due: datetime, hours: float, now: datetime) -> None:
        key, n = ticket.key, f"{hours:g}"
        what = f"no first response from the MSP within {n} business hours (due {when(due)}); escalated to in-house IT"
        await tickets.add_event(session=session, ticket_id=ticket.id, kind="sla_breach", now=now, actor="system",
                                text=what, detail={"due": due.isoformat(), "hours": hours})
        internal: dict[str, Any] = {
            "text": f"{key}: the MSP has not responded within {n} business hours; escalated to in-house IT.\n"
                    f"Queue {ticket.queue}, from {ticket.user_name or ticket.platform + ':' + ticket.user_id}: "
                    f"“{clip(ticket.text, 500)}”",
            "ticket": key, "event": "ticket.escalated",
        }
        if self._options.internal_channel:
            internal["channel"] = self._options.internal_channel
        alert = {"text": f"SLA breach: {key} (queue {ticket.queue}) had no first response from the MSP within {n} "
                         f"business hours (due {when(due)}); escalated to in-house IT.", "ticket": key}
        msp = {"event": "ticket.escalated", "id": key, "remote_id": ticket.remote_id, "at": now.isoformat(),
               "sla_due_at": due.isoformat(), "sla_hours": hours,
               "text": f"No first response within {n} business hours (due {when(due)}): handoff escalated {key} "
                       "to in-house IT."}
        kind, told = requester_row(
            platform=ticket.platform, user_id=ticket.user_id, conversation=ticket.conversation, ticket=key,
            text=f"{key}: the service desk has not answered within {n} business hours, so I passed it to in-house IT "
                 "as well. You will hear from them here.",
        )
        rows = [("internal", internal, f"sla:{ticket.id}:internal"), ("admin.alert", alert, f"sla:{ticket.id}:admin"),
                ("msp", msp, f"sla:{ticket.id}:msp"), (kind, told, f"sla:{ticket.id}:requester")]
        await tickets.enqueue_once(session=session, rows=rows, now=now, ticket_id=ticket.id)


def _nothing_to_do(ticket: Ticket) -> str | None:
    """Why the ticket needs no escalation, or None when it does (once due)."""
    if ticket.sla_breached_at is not None:
        return "already escalated"
    if ticket.first_response_at is not None:
        return "the MSP responded"
    if ticket.status in tickets.DONE_STATUSES:
        return f"ticket is {ticket.status}"
    if ticket.sla_due_at is None:
        return "no SLA applies"
    return None
