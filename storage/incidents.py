"""Incident, ticket-history and on-call override queries (storm control, page actions, escalation).

Session keyword-only, no commits, as everywhere in :mod:`storage`. The caller owns the transaction;
the functions that guard a race say which lock they rely on.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, case, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Incident, OncallOverride, OutboxRow, Ticket, TicketEvent

_OUTBOX = cast(Table, OutboxRow.__table__)
_EVENTS = cast(Table, TicketEvent.__table__)
_TICKETS = cast(Table, Ticket.__table__)
#: Incidents that are still open (a report may join them; on-call may act on them).
OPEN_STATUSES = ("triggered", "acknowledged")


async def _dialect(session: AsyncSession) -> str:
    return (await session.connection()).dialect.name


async def lock_rule(*, session: AsyncSession, rule_id: str) -> None:
    """Serialise incident creation for one page rule until the transaction ends.

    PostgreSQL: ``pg_advisory_xact_lock(hashtext('handoff-incident:' || rule))`` so two replicas never
    both create the incident of one storm, and the per-rule page cap is counted exactly. The lock is
    per rule (not per rule and grouping key): pages are rare, and one lock covers both the lookup and
    the cap. SQLite needs nothing: every transaction starts with ``BEGIN IMMEDIATE``. Callers that
    lock several rules lock them in sorted order (no deadlock between replicas).
    """
    if await _dialect(session) == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"handoff-incident:{rule_id}"})


async def find_open_incidents(
    *, session: AsyncSession, keys: Collection[tuple[str, str]], since: datetime
) -> dict[tuple[str, str], Incident]:
    """For each ``(rule_id, group_key)`` of ``keys``, the newest open incident whose last report is at
    or after ``since`` (keys without one are absent). One query for the whole batch.

    The query asks for the rules and the grouping keys separately (each column an ``IN`` list, which
    every engine serves from ``ix_incidents_rule_id_group_key_status``); pairs that were not asked
    for are dropped here.
    """
    if not keys:
        return {}
    query = (
        select(Incident)
        .where(Incident.rule_id.in_(sorted({r for r, _ in keys})), Incident.group_key.in_(sorted({g for _, g in keys})),
               Incident.status.in_(OPEN_STATUSES), Incident.last_report_at >= since)
        .order_by(Incident.id)
        .execution_options(populate_existing=True)
    )
    found = {}
    for incident in (await session.scalars(query)).all():
        if (incident.rule_id, incident.group_key) in keys:
            found[(incident.rule_id, incident.group_key)] = incident  # ascending ids: the newest wins
    return found


async def count_pages_since(*, session: AsyncSession, rule_id: str, since: datetime) -> int:
    """Incidents of ``rule_id`` created at or after ``since`` that paged (not held back by the cap)."""
    query = select(func.count()).select_from(Incident).where(
        Incident.rule_id == rule_id, Incident.created_at >= since, Incident.pager != "held"
    )
    return int((await session.execute(query)).scalar_one())


async def create_incident(*, session: AsyncSession, now: datetime, **fields: Any) -> Incident:
    """Add an incident (``fields`` are Incident columns) and flush so its id is known."""
    incident = Incident(created_at=now, last_report_at=now, **fields)
    incident.reports = fields.get("reports", 1)
    incident.escalation_level = fields.get("escalation_level", 0)
    incident.detail = fields.get("detail", {})
    session.add(incident)
    await session.flush()
    return incident


_LINK_TICKET = update(_TICKETS).where(_TICKETS.c.id == bindparam("ticket_id")).values(incident_id=bindparam("incident_id"))


async def add_reports(*, session: AsyncSession, counts: Mapping[int, int], now: datetime) -> dict[int, Incident]:
    """``counts[incident_id]`` more reports of each incident still open; returns those incidents as
    stored now, by id (those resolved meanwhile are left out and unchanged).

    One ``UPDATE … RETURNING``: ``reports + count`` in SQL, so concurrent joins all count, and the
    totals come back with the update (a read-back cost the intake transaction a round trip). On
    PostgreSQL an incident that on-call is resolving is waited for, then checked again.
    """
    if not counts:
        return {}
    query = (update(Incident)
             .where(Incident.id.in_(sorted(counts)), Incident.status.in_(OPEN_STATUSES))
             .values(reports=Incident.reports + case(dict(counts), value=Incident.id, else_=0), last_report_at=now)
             .returning(Incident)
             .execution_options(populate_existing=True, synchronize_session=False))
    return {incident.id: incident for incident in (await session.scalars(query)).all()}


async def link_tickets(*, session: AsyncSession, links: Mapping[int, int]) -> None:
    """Set ``Ticket.incident_id`` to ``links[ticket_id]`` for every ticket of ``links`` (one executemany)."""
    if links:
        await (await session.connection()).execute(
            _LINK_TICKET, [{"ticket_id": t, "incident_id": i} for t, i in sorted(links.items())])


async def get_incident(*, session: AsyncSession, incident_id: int, for_update: bool = False) -> Incident | None:
    """One incident; ``for_update`` locks its row on PostgreSQL (SQLite is serialised anyway)."""
    query = select(Incident).where(Incident.id == incident_id)
    if for_update and await _dialect(session) == "postgresql":
        query = query.with_for_update()
    return (await session.scalars(query.execution_options(populate_existing=True))).first()


async def incident_tickets(*, session: AsyncSession, incident_id: int) -> list[Ticket]:
    """Every ticket (report) of an incident, oldest first."""
    query = select(Ticket).where(Ticket.incident_id == incident_id).order_by(Ticket.id)
    return list((await session.scalars(query)).all())


async def list_open_incidents(*, session: AsyncSession, limit: int = 50) -> list[Incident]:
    """Open incidents (held ones included), newest first."""
    query = (select(Incident).where(Incident.status.in_(OPEN_STATUSES))
             .order_by(Incident.id.desc()).limit(limit))
    return list((await session.scalars(query)).all())


async def resolve_tickets(*, session: AsyncSession, incident_id: int, now: datetime) -> None:
    """Mark an incident's tickets ``resolved`` (those not already resolved or closed by their owner)."""
    await session.execute(
        update(Ticket)
        .where(Ticket.incident_id == incident_id, Ticket.status.not_in(("resolved", "closed")))
        .values(status="resolved", resolved_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )


async def add_ticket_events(*, session: AsyncSession, events: Sequence[dict[str, Any]], now: datetime) -> None:
    """Append ticket history lines: dicts of ``ticket_id``, ``kind`` and optionally ``actor``, ``text``,
    ``detail`` (one executemany)."""
    if events:
        rows = [{"actor": "", "text": "", "detail": {}, "at": now, **e} for e in events]
        await (await session.connection()).execute(_EVENTS.insert(), rows)


async def enqueue_ignoring_duplicates(
    *, session: AsyncSession, rows: Sequence[dict[str, Any]], now: datetime
) -> int:
    """Insert outbox rows (``kind``, ``payload``, ``idempotency_key``, optional ``ticket_id`` and
    ``next_attempt_at``), skipping those whose idempotency key exists; returns how many were new.

    ``INSERT … ON CONFLICT (idempotency_key) DO NOTHING``: a job that runs twice after a crash
    enqueues its follow-ups once, without aborting its transaction.
    """
    if not rows:
        return 0
    insert = (postgresql.insert if await _dialect(session) == "postgresql" else sqlite.insert)(_OUTBOX)
    stmt = insert.on_conflict_do_nothing(index_elements=["idempotency_key"]).returning(_OUTBOX.c.id)
    new = 0
    conn = await session.connection()
    for row in rows:  # RETURNING with executemany is not portable; these batches are small
        params = {"ticket_id": None, "status": "pending", "attempts": 0, "created_at": now, "next_attempt_at": now,
                  **row}
        new += len((await conn.execute(stmt, params)).all())
    return new


# --- on-call overrides ---------------------------------------------------------------------------


async def add_override(
    *, session: AsyncSession, person: str, starts_at: datetime, ends_at: datetime, created_by: str,
    now: datetime, note: str = "",
) -> OncallOverride:
    """Store an override (flushed, so its id is known)."""
    row = OncallOverride(person=person, starts_at=starts_at, ends_at=ends_at, created_by=created_by,
                         created_at=now, note=note)
    session.add(row)
    await session.flush()
    return row


async def list_overrides(*, session: AsyncSession, now: datetime) -> list[OncallOverride]:
    """Overrides not cancelled and not yet over, oldest created first (a later one wins a tie)."""
    query = (select(OncallOverride)
             .where(OncallOverride.cancelled_at.is_(None), OncallOverride.ends_at > now)
             .order_by(OncallOverride.created_at, OncallOverride.id))
    return list((await session.scalars(query)).all())


async def cancel_override(*, session: AsyncSession, override_id: int, now: datetime) -> OncallOverride | None:
    """Cancel an override; returns it, or None when there is no such override or it was already cancelled."""
    row = await session.get(OncallOverride, override_id)
    if row is None or row.cancelled_at is not None:
        return None
    row.cancelled_at = now
    await session.flush()
    return row
