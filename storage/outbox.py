"""Outbox queries: enqueue, claim with a lease, record outcomes, list and count.

Re-exported by :mod:`storage.service`; the same rules apply (session keyword-only, no commits).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, NamedTuple, cast

from sqlalchemy import func, or_, select, text, update
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from storage.db import BOOKKEEPING
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
    if conn.dialect.name == "postgresql" and not _bookkeeping(conn):
        await session.execute(text("SET LOCAL synchronous_commit = off"))


def _bookkeeping(conn: AsyncConnection) -> bool:
    """True on a connection of an engine made with ``make_engine(bookkeeping=True)``: relaxed already."""
    return bool(conn.sync_connection is not None and conn.sync_connection.get_execution_options().get(BOOKKEEPING))


# The claim's plan, whatever the statistics say: walk ix_outbox_pending_due in order and stop at the
# limit. A custom plan per call (the cached generic plan cannot see ``now`` or ``limit``), and no
# bitmap scan or sort: when the backlog grows faster than autovacuum's ANALYZE notices (a burst on a
# young table), the planner expected 4 due rows, chose a bitmap scan and sorted all 3,400 of them,
# 150-480 ms per claim (auto_explain, bench/load.py at 700/s), where the index walk takes < 1 ms.
# Plus no WAL-flush wait at commit (see relax_durability). All local to the claim's transaction.
_CLAIM_SETTINGS = text(
    "SELECT set_config('plan_cache_mode', 'force_custom_plan', true), set_config('enable_bitmapscan', 'off', true), "
    "set_config('enable_sort', 'off', true), set_config('enable_incremental_sort', 'off', true), "
    "set_config('synchronous_commit', 'off', true)"
)


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
_OLDER = _T.alias("older")
# Per-ticket order: a row goes only when it is the oldest pending row of its ticket and kind. Written
# as a correlated scalar subquery (looked up per candidate in ix_outbox_ticket_id_kind_status), not
# NOT EXISTS: PostgreSQL turns NOT EXISTS into an anti-join, which on stale statistics it ran as a
# nested loop over every pending row (9 million comparisons, 740 ms, for one claim).
_UNBLOCKED = or_(
    _T.c.ticket_id.is_(None),
    _T.c.id == select(func.min(_OLDER.c.id)).where(
        _OLDER.c.ticket_id == _T.c.ticket_id, _OLDER.c.kind == _T.c.kind, _OLDER.c.status == "pending",
    ).scalar_subquery(),
)


def _due(now: datetime) -> list[Any]:
    return [
        _T.c.status == "pending",
        _T.c.next_attempt_at <= now,
        or_(_T.c.locked_until.is_(None), _T.c.locked_until < now),
    ]


def claim_query(now: datetime, limit: int, dialect: str) -> Any:
    """The ids :func:`claim_due` leases: due, unblocked, in the order of ``ix_outbox_pending_due``."""
    query = select(_T.c.id).where(*_due(now), _UNBLOCKED).order_by(_T.c.next_attempt_at, _T.c.id).limit(limit)
    return query.with_for_update(skip_locked=True, of=_T) if dialect == "postgresql" else query


async def claim_due(
    *, session: AsyncSession, now: datetime, limit: int, lease_seconds: float, worker_id: str
) -> list[ClaimedRow]:
    """Lease up to ``limit`` due pending rows to ``worker_id``, longest-due first (returned in id order).

    A row is due when ``next_attempt_at <= now`` and nobody holds an unexpired lease on it. A row
    is held back while an older pending row of the same ticket and kind exists (per-ticket
    order). PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so concurrent workers claim disjoint rows.
    SQLite: the transaction holds the write lock from ``BEGIN IMMEDIATE``, so select and update
    are atomic. The update re-checks the conditions either way. Core statements, no ORM objects:
    this runs for every batch the worker delivers. The order matches the partial index
    ``ix_outbox_pending_due``, so the database walks it and stops at ``limit`` whatever the backlog
    (ordering by id let PostgreSQL's estimate pick a sort of every due row: 8 ms at 20,000 rows).
    """
    conn = await session.connection()  # Core statements: skip the ORM execution path
    query = claim_query(now, limit, conn.dialect.name)
    if conn.dialect.name == "postgresql":
        await conn.execute(_CLAIM_SETTINGS)  # the plan that walks the index (see above)
    ids = list((await conn.execute(query)).scalars().all())
    if not ids:
        return []
    claimed = await conn.execute(
        update(_T)
        .where(_T.c.id.in_(ids), *_due(now))
        .values(locked_until=now + timedelta(seconds=lease_seconds), locked_by=worker_id)
        .returning(
            _T.c.id, _T.c.kind, _T.c.payload, _T.c.idempotency_key, _T.c.ticket_id, _T.c.attempts,
            _T.c.locked_until, _T.c.locked_by,
        )
    )
    return sorted((ClaimedRow(*row) for row in claimed), key=lambda r: r.id)


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

    Returns False (and changes nothing) if the row is no longer pending.
    """
    return await _update_row(
        session,
        row_id,
        OutboxRow.status == "pending",
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


async def outbox_stats(*, session: AsyncSession, now: datetime) -> dict[str, Any]:
    """Row counts by status, how many pending rows are scheduled for later, and the delivery lag.

    Returns:
        ``{"pending": int, "delivered": int, "dead": int, "scheduled": int,
        "oldest_pending_age_seconds": float}``. ``scheduled`` counts pending rows not due yet (an
        escalation step, an SLA check, a notice held until business hours): they are not a backlog.
        The age is how long the longest-waiting *due* row has waited since it became due (0.0 when
        none is due): what a worker that keeps up holds near zero.
    """
    stats: dict[str, Any] = dict.fromkeys(OUTBOX_STATUSES, 0)
    counts = await session.execute(
        select(OutboxRow.status, func.count()).group_by(OutboxRow.status)
    )
    for status, count in counts.all():
        stats[status] = int(count)
    pending = OutboxRow.status == "pending"
    stats["scheduled"] = int(
        await session.scalar(select(func.count()).where(pending, OutboxRow.next_attempt_at > now)) or 0
    )
    oldest = await session.scalar(
        select(func.min(OutboxRow.next_attempt_at)).where(pending, OutboxRow.next_attempt_at <= now)
    )
    stats["oldest_pending_age_seconds"] = (
        max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
    )
    return stats
