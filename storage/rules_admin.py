"""Queries of rule administration: drafts, version history, and the stored requests a replay reads.

Every function takes the session keyword-only and never commits (the caller owns the transaction).
Replays read requests in keyset chunks (:func:`request_chunk`) of plain rows, never ORM objects, so
each chunk is one short transaction: on SQLite a long read would otherwise hold the write lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import RULE_DRAFT_ORIGINS, RuleDraft, RulesetVersion, Ticket

__all__ = [
    "count_requests",
    "count_versions",
    "delete_draft",
    "get_draft",
    "put_draft",
    "request_chunk",
    "ruleset_at",
    "version_page",
]


async def get_draft(*, session: AsyncSession, owner: str, for_update: bool = False) -> RuleDraft | None:
    """The draft of ``owner`` (``platform:user id``), or None; ``for_update`` locks it (PostgreSQL)."""
    query = select(RuleDraft).where(RuleDraft.owner == owner)
    if for_update:
        query = query.with_for_update()
    return (await session.scalars(query)).first()


async def put_draft(
    *,
    session: AsyncSession,
    owner: str,
    base_version: int,
    content: dict[str, Any],
    origin: str,
    now: datetime,
) -> None:
    """Create or replace the draft of ``owner`` (one statement: ``INSERT .. ON CONFLICT DO UPDATE``).

    ``base_version`` and ``created_at`` are kept when the draft exists; pass a new base by deleting
    the draft first.
    """
    if origin not in RULE_DRAFT_ORIGINS:
        raise ValueError(f"unknown draft origin {origin!r}; expected one of {RULE_DRAFT_ORIGINS}")
    dialect = (await session.connection()).dialect.name
    if dialect == "postgresql":
        insert: Any = postgresql.insert(RuleDraft)
    elif dialect == "sqlite":
        insert = sqlite.insert(RuleDraft)
    else:
        raise NotImplementedError(f"unsupported database dialect: {dialect}")
    stmt = insert.values(
        owner=owner, base_version=base_version, origin=origin, content=content, created_at=now, updated_at=now
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["owner"],
        set_={"content": stmt.excluded.content, "origin": stmt.excluded.origin, "updated_at": stmt.excluded.updated_at},
    )
    await session.execute(stmt)


async def delete_draft(*, session: AsyncSession, owner: str) -> bool:
    """Delete the draft of ``owner``; True if there was one."""
    result = await session.execute(delete(RuleDraft).where(RuleDraft.owner == owner))
    return bool(getattr(result, "rowcount", 0))


async def ruleset_at(*, session: AsyncSession, at: datetime) -> RulesetVersion | None:
    """The version that was active at ``at``: the newest saved at or before it."""
    query = (
        select(RulesetVersion)
        .where(RulesetVersion.created_at <= at)
        .order_by(RulesetVersion.version.desc())
        .limit(1)
    )
    return (await session.scalars(query)).first()


async def version_page(*, session: AsyncSession, offset: int, limit: int) -> Sequence[Row[Any]]:
    """Version summaries newest first (no content): version, created_at, author, source, note, hash."""
    t = RulesetVersion.__table__
    query = (
        select(t.c.version, t.c.created_at, t.c.author, t.c.source, t.c.note, t.c.content_hash)
        .order_by(t.c.version.desc())
        .offset(offset)
        .limit(limit)
    )
    return (await session.execute(query)).all()


async def count_versions(*, session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(RulesetVersion)) or 0)


async def count_requests(*, session: AsyncSession, since: datetime) -> int:
    """How many stored requests were created at or after ``since``."""
    t = Ticket.__table__
    return int(await session.scalar(select(func.count()).select_from(t).where(t.c.created_at >= since)) or 0)


async def request_chunk(
    *, session: AsyncSession, since: datetime, before_id: int | None, limit: int, with_time: bool = False
) -> Sequence[Row[Any]]:
    """Up to ``limit`` stored requests created since ``since`` with id below ``before_id``, newest first.

    Rows are ``(id, text, platform, user_id, channel_id)``, plus ``created_at`` when ``with_time`` (it
    costs about a second per 100,000 rows on SQLite); page on with the last row's id.
    """
    t = Ticket.__table__
    columns = [t.c.id, t.c.text, t.c.platform, t.c.user_id, t.c.channel_id, *([t.c.created_at] if with_time else [])]
    query = select(*columns).where(t.c.created_at >= since)
    if before_id is not None:
        query = query.where(t.c.id < before_id)
    return (await session.execute(query.order_by(t.c.id.desc()).limit(limit))).all()
