"""A ticket's life: its requester's list, its history, its delivery facts, its state changes.

Session keyword-only, no commits, as everywhere in :mod:`storage`. State changes that two requests
may race on (close, reopen, the SLA breach) are conditional ``UPDATE``s that report whether they
changed anything, so the caller acts once. The figures of ``/handoff report`` are in
:mod:`storage.ticket_report`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Incident, OutboxRow, Ticket, TicketEvent

#: Statuses in which a ticket still needs someone's work (``/handoff status`` lists these).
OPEN_STATUSES = ("open", "in_progress", "waiting")
#: Statuses after which nobody owes the employee a first response.
DONE_STATUSES = ("resolved", "closed")

_OUTBOX = cast(Table, OutboxRow.__table__)


@dataclass(frozen=True, slots=True)
class DeliveryFact:
    """One outbox row of a ticket, as its history shows it (no ORM state)."""

    kind: str
    status: str
    event: str | None
    action: str | None
    attempts: int
    created_at: datetime
    delivered_at: datetime | None
    dead_at: datetime | None
    remote_id: str | None


async def open_tickets(
    *, session: AsyncSession, platform: str, user_id: str, limit: int
) -> tuple[list[Ticket], int]:
    """A requester's open tickets, newest first (at most ``limit``), and how many there are in all."""
    where = (Ticket.platform == platform, Ticket.user_id == user_id, Ticket.status.in_(OPEN_STATUSES))
    total = int(await session.scalar(select(func.count()).select_from(Ticket).where(*where)) or 0)
    if total == 0:
        return [], 0
    query = select(Ticket).where(*where).order_by(Ticket.id.desc()).limit(limit)
    return list((await session.scalars(query)).all()), total


async def ticket_in_thread(
    *, session: AsyncSession, platform: str, channel_id: str, thread_ref: str
) -> Ticket | None:
    """The ticket whose conversation lives in this thread (the newest, should there be several)."""
    query = (
        select(Ticket)
        .where(Ticket.platform == platform, Ticket.channel_id == channel_id, Ticket.thread_ref == thread_ref)
        .order_by(Ticket.id.desc())
        .limit(1)
    )
    return (await session.scalars(query)).first()


async def lock_ticket(*, session: AsyncSession, ticket_id: int) -> Ticket | None:
    """The ticket, row-locked until the transaction ends (PostgreSQL ``FOR UPDATE``; SQLite holds
    the database write lock from ``BEGIN IMMEDIATE`` anyway). Always read fresh from the database."""
    query = select(Ticket).where(Ticket.id == ticket_id).with_for_update().execution_options(populate_existing=True)
    return (await session.scalars(query)).first()


async def add_event(
    *,
    session: AsyncSession,
    ticket_id: int,
    kind: str,
    now: datetime,
    actor: str = "",
    text: str = "",
    detail: dict[str, Any] | None = None,
) -> TicketEvent:
    """Append a line to a ticket's history (flushed, so its id is known)."""
    event = TicketEvent(ticket_id=ticket_id, at=now, kind=kind, actor=actor[:255], text=text, detail=detail or {})
    session.add(event)
    await session.flush()
    return event


async def closed_by_requester(*, session: AsyncSession, ticket_id: int) -> bool:
    """Whether the requester's own ``close`` is the ticket's latest close or reopen (an MSP's status
    updates are ``msp_update`` lines, so a ticket the MSP closed answers False)."""
    query = (select(TicketEvent.kind).where(TicketEvent.ticket_id == ticket_id,
                                            TicketEvent.kind.in_(("closed", "reopened")))
             .order_by(TicketEvent.id.desc()).limit(1))
    return (await session.scalars(query)).first() == "closed"


async def list_events(*, session: AsyncSession, ticket_id: int, limit: int = 50) -> list[TicketEvent]:
    """The last ``limit`` lines of a ticket's history, oldest first."""
    query = select(TicketEvent).where(TicketEvent.ticket_id == ticket_id).order_by(TicketEvent.id.desc()).limit(limit)
    return list(reversed((await session.scalars(query)).all()))


async def delivery_facts(*, session: AsyncSession, ticket_id: int, limit: int = 100) -> list[DeliveryFact]:
    """The outbox rows of a ticket, oldest first: what was sent where, and when."""
    t = _OUTBOX.c
    query = (
        select(t.kind, t.status, t.payload, t.attempts, t.created_at, t.delivered_at, t.dead_at, t.remote_id)
        .where(t.ticket_id == ticket_id)
        .order_by(t.id)
        .limit(limit)
    )
    facts: list[DeliveryFact] = []
    for kind, status, payload, attempts, created_at, delivered_at, dead_at, remote_id in await session.execute(query):
        data = payload if isinstance(payload, dict) else {}
        event, action = data.get("event"), data.get("event_action") or data.get("action")
        facts.append(DeliveryFact(
            kind=kind, status=status, event=event if isinstance(event, str) else None,
            action=action if isinstance(action, str) else None, attempts=int(attempts), created_at=created_at,
            delivered_at=delivered_at, dead_at=dead_at, remote_id=remote_id,
        ))
    return facts


async def get_incident(*, session: AsyncSession, incident_id: int) -> Incident | None:
    """The incident a page-route ticket belongs to."""
    return await session.get(Incident, incident_id)


async def close(*, session: AsyncSession, ticket_id: int, now: datetime) -> bool:
    """Close a ticket; False (and nothing changes) when it was already closed."""
    result = await session.execute(
        update(Ticket)
        .where(Ticket.id == ticket_id, Ticket.status != "closed")
        .values(status="closed", closed_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def reopen(*, session: AsyncSession, ticket_id: int, now: datetime) -> bool:
    """Reopen a resolved or closed ticket (``closed_at`` and ``resolved_at`` cleared); False otherwise."""
    result = await session.execute(
        update(Ticket)
        .where(Ticket.id == ticket_id, Ticket.status.in_(DONE_STATUSES))
        .values(status="open", closed_at=None, resolved_at=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def mark_sla_breached(*, session: AsyncSession, ticket_id: int, now: datetime) -> bool:
    """Record the SLA breach of a ticket still waiting for a first response at ``now``.

    True once: False when the ticket has had a first response, is resolved or closed, was already
    marked, has no due time, or is not due yet (``sla_due_at > now``).
    """
    result = await session.execute(
        update(Ticket)
        .where(
            Ticket.id == ticket_id,
            Ticket.sla_breached_at.is_(None),
            Ticket.first_response_at.is_(None),
            Ticket.status.not_in(DONE_STATUSES),
            Ticket.sla_due_at.is_not(None),
            Ticket.sla_due_at <= now,
        )
        .values(sla_breached_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def enqueue_once(
    *,
    session: AsyncSession,
    rows: Sequence[tuple[str, dict[str, Any], str]],
    now: datetime,
    ticket_id: int | None = None,
    due: datetime | None = None,
) -> int:
    """Insert outbox rows ``(kind, payload, idempotency_key)``, skipping keys that exist already.

    ``INSERT … ON CONFLICT (idempotency_key) DO NOTHING``: a job that runs twice after a crash
    enqueues its follow-ups once, without aborting the transaction. Returns how many were new.
    ``due`` (default ``now``) is when the worker may deliver them.
    """
    if not rows:
        return 0
    dialect = (await session.connection()).dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    values = [
        {"ticket_id": ticket_id, "kind": kind, "payload": payload, "idempotency_key": key, "status": "pending",
         "attempts": 0, "created_at": now, "next_attempt_at": due or now}
        for kind, payload, key in rows
    ]
    stmt = insert(_OUTBOX).values(values).on_conflict_do_nothing(index_elements=["idempotency_key"])
    result = await session.execute(stmt.returning(_OUTBOX.c.id))
    return len(result.all())
