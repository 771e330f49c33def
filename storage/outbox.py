"""Outbox queries: enqueue, claim with a lease, record outcomes, list and count.

Re-exported by :mod:`storage.service`; the same rules apply (session keyword-only, no commits).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from storage.models import OUTBOX_STATUSES, OutboxRow


async def enqueue(
    *,
    session: AsyncSession,
    kind: str,
    payload: dict[str, Any],
    idempotency_key: str,
    now: datetime,
    ticket_id: int | None = None,
) -> OutboxRow:
    """Add a pending outbox row, due now. A repeated ``idempotency_key`` raises IntegrityError."""
    row = OutboxRow(
        ticket_id=ticket_id,
        kind=kind,
        payload=payload,
        idempotency_key=idempotency_key,
        status="pending",
        attempts=0,
        created_at=now,
        next_attempt_at=now,
    )
    session.add(row)
    await session.flush()
    return row


def _claimable(now: datetime) -> list[Any]:
    return [
        OutboxRow.status == "pending",
        OutboxRow.next_attempt_at <= now,
        or_(OutboxRow.locked_until.is_(None), OutboxRow.locked_until < now),
    ]


async def claim_due(
    *, session: AsyncSession, now: datetime, limit: int, lease_seconds: float, worker_id: str
) -> list[OutboxRow]:
    """Lease up to ``limit`` due pending rows to ``worker_id``, oldest first.

    A row is due when ``next_attempt_at <= now`` and nobody holds an unexpired lease on it. A row
    is held back while an older pending row of the same ticket and kind exists (per-ticket
    order). PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so concurrent workers claim disjoint rows.
    SQLite: the transaction holds the write lock from ``BEGIN IMMEDIATE``, so select and update
    are atomic. The update re-checks the conditions either way.
    """
    older = aliased(OutboxRow)
    blocked = exists().where(
        older.ticket_id == OutboxRow.ticket_id,
        older.kind == OutboxRow.kind,
        older.status == "pending",
        older.id < OutboxRow.id,
    )
    query = (
        select(OutboxRow.id).where(*_claimable(now), ~blocked).order_by(OutboxRow.id).limit(limit)
    )
    if (await session.connection()).dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=OutboxRow)
    ids = list((await session.scalars(query)).all())
    if not ids:
        return []
    claimed = await session.scalars(
        update(OutboxRow)
        .where(OutboxRow.id.in_(ids), *_claimable(now))
        .values(locked_until=now + timedelta(seconds=lease_seconds), locked_by=worker_id)
        .returning(OutboxRow.id)
        .execution_options(synchronize_session=False)
    )
    claimed_ids = list(claimed.all())
    if not claimed_ids:
        return []
    rows = await session.scalars(
        select(OutboxRow)
        .where(OutboxRow.id.in_(claimed_ids))
        .order_by(OutboxRow.id)
        .execution_options(populate_existing=True)
    )
    return list(rows.all())


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
    """Row counts by status and the age of the oldest pending row.

    Returns:
        ``{"pending": int, "delivered": int, "dead": int, "oldest_pending_age_seconds": float}``;
        the age is 0.0 when nothing is pending.
    """
    stats: dict[str, Any] = dict.fromkeys(OUTBOX_STATUSES, 0)
    counts = await session.execute(
        select(OutboxRow.status, func.count()).group_by(OutboxRow.status)
    )
    for status, count in counts.all():
        stats[status] = int(count)
    oldest = await session.scalar(
        select(func.min(OutboxRow.created_at)).where(OutboxRow.status == "pending")
    )
    stats["oldest_pending_age_seconds"] = (
        max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
    )
    return stats
