"""Outbox queries: enqueue, claim with a lease, record outcomes, list and count.

Re-exported by :mod:`storage.service`; the same rules apply (session keyword-only, no commits).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple, cast

from sqlalchemy import (
    Integer,
    Table,
    and_,
    bindparam,
    case,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from storage.db import BOOKKEEPING, BOOKKEEPING_SETTINGS
from storage.models import OUTBOX_STATUSES, OutboxRow


async def enqueue(
    *,
    session: AsyncSession,
    kind: str,
    payload: dict[str, Any],
    idempotency_key: str,
    now: datetime,
    ticket_id: int | None = None,
    due: datetime | None = None,
) -> OutboxRow:
    """Add a pending outbox row, due ``due`` (default now). A repeated ``idempotency_key`` raises IntegrityError."""
    row = OutboxRow(
        ticket_id=ticket_id,
        kind=kind,
        payload=payload,
        idempotency_key=idempotency_key,
        status="pending",
        attempts=0,
        created_at=now,
        next_attempt_at=due or now,
    )
    session.add(row)
    await session.flush()
    return row


async def relax_durability(*, session: AsyncSession) -> None:
    """Let this transaction commit without waiting for its WAL flush (PostgreSQL; SQLite: nothing to do).

    Only for the outbox worker's own bookkeeping (claims, delivered marks), which a crash may lose
    without harm: a lost lease or a lost "delivered" mark means the row is delivered again under
    the same idempotency key, which at-least-once delivery allows. It is never used where an
    acknowledgement depends on the commit (intake, page actions, callbacks): those stay durable.
    On a 2-core VM a flushed commit costs several milliseconds; the worker commits twice per batch.
    """
    conn = await session.connection()
    if conn.dialect.name == "postgresql" and not _bookkeeping(conn):  # bookkeeping connections: off already
        await session.execute(text("SET LOCAL synchronous_commit = off"))


def _bookkeeping(conn: AsyncConnection) -> bool:
    """True on a connection of an engine made with ``make_engine(bookkeeping=True)``: relaxed already."""
    return bool(conn.sync_connection is not None and conn.sync_connection.get_execution_options().get(BOOKKEEPING))


# The claim's plan, whatever the statistics say (storage.db.BOOKKEEPING_SETTINGS: the settings and
# why), local to the claim's transaction on connections that do not have them for good.
_CLAIM_SETTINGS = text("SELECT " + ", ".join(f"set_config('{name}', '{value}', true)"
                                             for name, value in BOOKKEEPING_SETTINGS.items()))


class ClaimedRow(NamedTuple):
    """What a worker needs of a claimed row: plain values, no ORM state."""

    id: int
    kind: str
    payload: dict[str, Any]
    idempotency_key: str
    ticket_id: int | None
    attempts: int
    locked_until: datetime
    locked_by: str


_T = cast(Table, OutboxRow.__table__)
_CANDIDATE = _T.alias("candidate")
_OLDER = _T.alias("older")


def _unblocked(t: Any) -> Any:
    """Per-ticket order: ``t`` is the oldest pending row of its ticket and kind (or has no ticket).

    A correlated scalar subquery, looked up per candidate in ix_outbox_ticket_id_kind_status, not NOT
    EXISTS: PostgreSQL turns NOT EXISTS into an anti-join, which on stale statistics it ran as a
    nested loop over every pending row (9 million comparisons, 740 ms, for one claim).
    """
    return or_(t.c.ticket_id.is_(None), t.c.id == select(func.min(_OLDER.c.id)).where(
        _OLDER.c.ticket_id == t.c.ticket_id, _OLDER.c.kind == t.c.kind, _OLDER.c.status == "pending",
    ).scalar_subquery())


def _due(t: Any, now: Any) -> list[Any]:
    return [t.c.status == "pending", t.c.next_attempt_at <= now, or_(t.c.locked_until.is_(None), t.c.locked_until < now)]


_NOW, _LIMIT = bindparam("claim_now", type_=_T.c.next_attempt_at.type), bindparam("claim_limit", type_=Integer)


def claim_query(dialect: str) -> Any:
    """The rows :func:`claim_due` leases: due, unblocked, in the order of ``ix_outbox_pending_due``.

    Parameters ``claim_now`` and ``claim_limit``. Built once per dialect (:func:`claim_statement`):
    building it per claim cost a tenth of the worker's CPU.
    """
    query = (select(_CANDIDATE.c.id).where(*_due(_CANDIDATE, _NOW), _unblocked(_CANDIDATE))
             .order_by(_CANDIDATE.c.next_attempt_at, _CANDIDATE.c.id).limit(_LIMIT))
    return query.with_for_update(skip_locked=True, of=_CANDIDATE) if dialect == "postgresql" else query


@functools.cache
def claim_statement(dialect: str) -> Any:
    """One statement that leases the rows of :func:`claim_query` and returns them.

    Parameters: ``claim_now``, ``claim_limit``, ``locked_until``, ``locked_by``. PostgreSQL: the
    candidates are a CTE (``WITH claimable AS (SELECT … FOR UPDATE SKIP LOCKED LIMIT n) UPDATE … FROM
    claimable``), which runs once. Written as ``WHERE id IN (SELECT … LIMIT n)`` the planner may run
    the subquery again, and with SKIP LOCKED each run finds other rows: a worker asking for 5 rows
    was given 50 (tests/test_delivery.py caught it). SQLite holds the write lock for the whole
    transaction; ``IN`` is enough there.
    """
    lease = {"locked_until": bindparam("locked_until", type_=_T.c.locked_until.type),
             "locked_by": bindparam("locked_by", type_=_T.c.locked_by.type)}
    returned = (_T.c.id, _T.c.kind, _T.c.payload, _T.c.idempotency_key, _T.c.ticket_id, _T.c.attempts,
                _T.c.locked_until, _T.c.locked_by)
    if dialect == "postgresql":
        claimable = claim_query(dialect).cte("claimable")
        return update(_T).where(_T.c.id == claimable.c.id).values(**lease).returning(*returned)
    return update(_T).where(_T.c.id.in_(claim_query(dialect)), *_due(_T, _NOW)).values(**lease).returning(*returned)


def claim_params(*, now: datetime, limit: int, lease_seconds: float, worker_id: str) -> dict[str, Any]:
    """The parameters of :func:`claim_statement`."""
    return {"claim_now": now, "claim_limit": limit, "locked_until": now + timedelta(seconds=lease_seconds),
            "locked_by": worker_id}


async def claim_due(
    *, session: AsyncSession, now: datetime, limit: int, lease_seconds: float, worker_id: str
) -> list[ClaimedRow]:
    """Lease up to ``limit`` due pending rows to ``worker_id``, longest-due first (returned in id order).

    A row is due when ``next_attempt_at <= now`` and nobody holds an unexpired lease on it. A row
    is held back while an older pending row of the same ticket and kind exists (per-ticket
    order). PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so concurrent workers claim disjoint rows.
    SQLite: the transaction holds the write lock from ``BEGIN IMMEDIATE``. One statement (an
    ``UPDATE … WHERE id IN (SELECT … LIMIT n) RETURNING``), so it is atomic on its own and needs a
    single round trip: the worker's bookkeeping connections run it without BEGIN and COMMIT. Core,
    no ORM objects: this runs for every batch the worker delivers. The order matches the partial index
    ``ix_outbox_pending_due``, so the database walks it and stops at ``limit`` whatever the backlog
    (ordering by id let PostgreSQL's estimate pick a sort of every due row: 8 ms at 20,000 rows).
    """
    conn = await session.connection()  # Core statements: skip the ORM execution path
    if conn.dialect.name == "postgresql" and not _bookkeeping(conn):
        await conn.execute(_CLAIM_SETTINGS)  # the plan that walks the index (see above)
    claimed = await conn.execute(claim_statement(conn.dialect.name),
                                 claim_params(now=now, limit=limit, lease_seconds=lease_seconds, worker_id=worker_id))
    return sorted((ClaimedRow(*row) for row in claimed), key=lambda r: r.id)


async def renew_leases(
    *, session: AsyncSession, row_ids: Sequence[int], now: datetime, lease_seconds: float, worker_id: str
) -> dict[int, datetime]:
    """Extend ``worker_id``'s leases on the pending rows of ``row_ids`` to ``now + lease_seconds``.

    Returns the rows renewed and their new lease. A row missing from the answer is not this worker's
    any more (its lease ran out and another worker claimed it) or no longer pending: the caller must
    not deliver it. One statement, like a claim.
    """
    until = now + timedelta(seconds=lease_seconds)
    result = await session.execute(
        update(_T).where(_T.c.id.in_(list(row_ids)), _T.c.locked_by == worker_id, _T.c.status == "pending")
        .values(locked_until=until).returning(_T.c.id))
    return {row_id: until for row_id in result.scalars()}


async def _update_row(session: AsyncSession, row_id: int, *where: Any, **values: Any) -> bool:
    result = await session.execute(
        update(OutboxRow)
        .where(OutboxRow.id == row_id, *where)
        .values(attempts=OutboxRow.attempts + 1, locked_until=None, locked_by=None, **values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def mark_delivered(
    *, session: AsyncSession, row_id: int, now: datetime, detail: str, remote_id: str | None = None
) -> bool:
    """Record a successful delivery (attempts+1, lock released). False if already delivered."""
    return await _update_row(
        session,
        row_id,
        OutboxRow.status != "delivered",
        status="delivered",
        delivered_at=now,
        detail=detail,
        remote_id=remote_id,
    )


async def mark_retry(
    *, session: AsyncSession, row_id: int, next_attempt_at: datetime, error: str
) -> bool:
    """Record a failed attempt to retry at ``next_attempt_at`` (attempts+1, lock released).

    The first retry keeps the due time it replaces in ``first_due_at`` (SET reads the row as it was),
    so the delivery lag of :func:`outbox_stats` keeps growing through an outage instead of restarting.
    Returns False (and changes nothing) if the row is no longer pending.
    """
    return await _update_row(
        session,
        row_id,
        OutboxRow.status == "pending",
        first_due_at=func.coalesce(OutboxRow.first_due_at, OutboxRow.next_attempt_at),
        next_attempt_at=next_attempt_at,
        last_error=error,
    )


async def mark_dead(*, session: AsyncSession, row_id: int, now: datetime, error: str) -> bool:
    """Dead-letter a pending row (attempts+1, lock released). False if it was not pending."""
    return await _update_row(
        session,
        row_id,
        OutboxRow.status == "pending",
        status="dead",
        dead_at=now,
        last_error=error,
    )


async def list_outbox(
    *, session: AsyncSession, limit: int = 50, status: str | None = None, kind: str | None = None
) -> list[OutboxRow]:
    """Outbox rows, newest first, optionally filtered by status and kind."""
    query = select(OutboxRow).order_by(OutboxRow.id.desc()).limit(limit)
    if status is not None:
        query = query.where(OutboxRow.status == status)
    if kind is not None:
        query = query.where(OutboxRow.kind == kind)
    return list((await session.scalars(query)).all())


def _scheduled(now: datetime) -> Any:
    """Pending rows written to go out later (an escalation step, an SLA check, an after-hours notice)
    and not due yet. Never attempted: a row waiting to retry is a backlog, not a schedule."""
    return and_(OutboxRow.attempts == 0, OutboxRow.next_attempt_at > now)


def _retrying(now: datetime) -> Any:
    """Pending rows that failed at least once and wait for their next attempt (a receiver is failing)."""
    return and_(OutboxRow.attempts > 0, OutboxRow.next_attempt_at > now)


#: When a pending row first became due: its due time, or the one its first retry kept.
_FIRST_DUE = func.coalesce(OutboxRow.first_due_at, OutboxRow.next_attempt_at)


def _count(condition: Any) -> Any:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


async def outbox_stats(*, session: AsyncSession, now: datetime) -> dict[str, Any]:
    """Row counts by status, how many pending rows are scheduled for later or retrying, and the delivery lag.

    Returns:
        ``{"pending": int, "delivered": int, "dead": int, "scheduled": int, "retrying": int,
        "oldest_pending_age_seconds": float}``. ``scheduled`` counts pending rows deliberately due
        later and never attempted (an escalation step, an SLA check, a notice held until business
        hours): they are not a backlog. ``retrying`` counts rows waiting between attempts: they are.
        The age is how long the longest-waiting row of the backlog (every pending row not
        ``scheduled``) has waited since it *first* became due, retries included (0.0 when there is
        none): a worker that keeps up holds it near zero, and it grows through a receiver's outage,
        which is what an alert on it is for.
    """
    stats: dict[str, Any] = dict.fromkeys(OUTBOX_STATUSES, 0)
    counts = await session.execute(
        select(OutboxRow.status, func.count()).group_by(OutboxRow.status)
    )
    for status, count in counts.all():
        stats[status] = int(count)
    scheduled = _scheduled(now)
    pending = await session.execute(
        select(_count(scheduled), _count(_retrying(now)), func.min(case((~scheduled, _FIRST_DUE))))
        .where(OutboxRow.status == "pending")
    )
    n_scheduled, n_retrying, oldest = pending.one()
    stats["scheduled"], stats["retrying"] = int(n_scheduled), int(n_retrying)
    stats["oldest_pending_age_seconds"] = (
        max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
    )
    return stats
