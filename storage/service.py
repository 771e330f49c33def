"""Queries and writes. Every function takes the session keyword-only and never commits.

The caller owns the transaction (``async with sessionmaker() as s, s.begin(): ...``), so a use
case can record an inbound event, a ticket and its outbox rows atomically. The outbox functions
live in :mod:`storage.outbox` and are re-exported here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import (
    CONVERSATION_KINDS,
    RULESET_SOURCES,
    AuditEntry,
    ConversationRef,
    InboundEvent,
    RulesetVersion,
    Ticket,
    ticket_id_from_key,
)
from storage.outbox import (
    claim_due,
    enqueue,
    list_outbox,
    mark_dead,
    mark_delivered,
    mark_retry,
    outbox_stats,
    renew_leases,
)

__all__ = [
    "audit",
    "claim_due",
    "create_ticket",
    "enqueue",
    "get_conversation_ref",
    "get_ruleset",
    "get_ticket",
    "latest_ruleset",
    "latest_ruleset_from_source",
    "list_audit",
    "list_conversation_refs",
    "list_outbox",
    "list_rulesets",
    "lock_rulesets",
    "mark_dead",
    "mark_delivered",
    "mark_retry",
    "outbox_stats",
    "prune_inbound",
    "record_inbound",
    "renew_leases",
    "save_ruleset",
    "upsert_conversation_ref",
]


async def _dialect_name(session: AsyncSession) -> str:
    return (await session.connection()).dialect.name


def _insert_for(dialect_name: str, table: Any) -> postgresql.Insert | sqlite.Insert:
    if dialect_name == "postgresql":
        return postgresql.insert(table)
    if dialect_name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"unsupported database dialect: {dialect_name}")


# --- inbound events ---------------------------------------------------------------------------


async def record_inbound(
    *, session: AsyncSession, platform: str, event_id: str, now: datetime
) -> bool:
    """Remember an inbound event; True if it is new, False if (platform, event_id) was seen.

    ``INSERT .. ON CONFLICT DO NOTHING``: a duplicate neither raises nor aborts the transaction,
    and two processes racing on the same event get exactly one True (the second waits for the
    first to commit, on PostgreSQL on the unique index, on SQLite on the write lock).
    """
    table = InboundEvent.__table__
    stmt = (
        _insert_for(await _dialect_name(session), table)
        .values(platform=platform, event_id=event_id, received_at=now)
        .on_conflict_do_nothing(index_elements=["platform", "event_id"])
        .returning(table.c.id)
    )
    return (await session.execute(stmt)).scalar_one_or_none() is not None


async def prune_inbound(*, session: AsyncSession, before: datetime, limit: int = 5000) -> int:
    """Forget up to ``limit`` inbound event ids received before ``before`` (oldest first); returns how many.

    Event ids only serve to absorb platform retries (minutes to hours), so they need not be kept
    for ever. Rows are taken in id order, which is arrival order: the scan stops at the first
    ``limit`` old rows without an index on ``received_at``.
    """
    old = select(InboundEvent.id).where(InboundEvent.received_at < before).order_by(InboundEvent.id).limit(limit)
    result = await session.execute(
        delete(InboundEvent).where(InboundEvent.id.in_(old.scalar_subquery())).execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# --- tickets ----------------------------------------------------------------------------------


async def create_ticket(*, session: AsyncSession, now: datetime, **fields: Any) -> Ticket:
    """Add a ticket and flush so its ``id`` and ``key`` are known; ``fields`` are Ticket columns."""
    ticket = Ticket(created_at=now, updated_at=now, **fields)
    session.add(ticket)
    await session.flush()
    return ticket


async def get_ticket(*, session: AsyncSession, key_or_id: str | int) -> Ticket | None:
    """The ticket with this id (int) or key (``"IT-1042"``); None if absent or not a key."""
    if isinstance(key_or_id, int) and not isinstance(key_or_id, bool):
        ticket_id = key_or_id
    else:
        try:
            ticket_id = ticket_id_from_key(str(key_or_id))
        except ValueError:
            return None
    return await session.get(Ticket, ticket_id)


# --- rule sets --------------------------------------------------------------------------------


async def latest_ruleset(*, session: AsyncSession) -> RulesetVersion | None:
    """The newest saved rule set (the active one), or None if none was ever saved."""
    query = select(RulesetVersion).order_by(RulesetVersion.version.desc()).limit(1)
    return (await session.scalars(query)).first()


async def latest_ruleset_from_source(
    *, session: AsyncSession, source: str
) -> RulesetVersion | None:
    """The newest rule set saved from ``source`` (``file``, ``chat``, ``rollback``, ``import``)."""
    query = (
        select(RulesetVersion)
        .where(RulesetVersion.source == source)
        .order_by(RulesetVersion.version.desc())
        .limit(1)
    )
    return (await session.scalars(query)).first()


async def get_ruleset(*, session: AsyncSession, version: int) -> RulesetVersion | None:
    """One saved rule set by version number."""
    return await session.get(RulesetVersion, version)


async def list_rulesets(*, session: AsyncSession, limit: int = 20) -> list[RulesetVersion]:
    """Saved rule sets, newest first."""
    query = select(RulesetVersion).order_by(RulesetVersion.version.desc()).limit(limit)
    return list((await session.scalars(query)).all())


#: PostgreSQL advisory lock key that serialises writers of rule-set versions ("hand").
_RULESET_LOCK = 0x68616E64


async def lock_rulesets(*, session: AsyncSession) -> None:
    """Serialise writers of rule-set versions until the transaction ends.

    Take it before reading what the new version depends on (the latest version, the last file
    import), so replicas starting together store ``app.yaml`` once and concurrent publishes are
    checked against each other. PostgreSQL: a transaction-scoped advisory lock; SQLite: every
    transaction already holds the write lock (``BEGIN IMMEDIATE``).
    """
    if await _dialect_name(session) == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _RULESET_LOCK})


async def save_ruleset(
    *,
    session: AsyncSession,
    content: dict[str, Any],
    content_hash: str,
    source: str,
    author: str,
    note: str,
    now: datetime,
) -> RulesetVersion:
    """Save a new immutable version (``max + 1``; a concurrent save of the same number fails on
    the primary key with IntegrityError rather than overwriting)."""
    if source not in RULESET_SOURCES:
        raise ValueError(f"unknown rule set source {source!r}; expected one of {RULESET_SOURCES}")
    current = await session.scalar(select(func.max(RulesetVersion.version)))
    row = RulesetVersion(
        version=(current or 0) + 1,
        created_at=now,
        author=author,
        source=source,
        note=note,
        content=content,
        content_hash=content_hash,
    )
    session.add(row)
    await session.flush()
    return row


# --- audit ------------------------------------------------------------------------------------


async def audit(
    *,
    session: AsyncSession,
    actor: str,
    action: str,
    target: str,
    allowed: bool,
    detail: dict[str, Any],
    now: datetime,
) -> AuditEntry:
    """Append an audit entry (flushed, so its id is known)."""
    entry = AuditEntry(
        at=now, actor=actor, action=action, target=target, allowed=allowed, detail=detail
    )
    session.add(entry)
    await session.flush()
    return entry


async def list_audit(*, session: AsyncSession, limit: int = 50) -> list[AuditEntry]:
    """Audit entries, newest first."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    return list((await session.scalars(query)).all())


# --- conversation references ------------------------------------------------------------------


async def upsert_conversation_ref(
    *,
    session: AsyncSession,
    platform: str,
    key: str,
    kind: str,
    service_url: str,
    conversation_id: str,
    reference: dict[str, Any],
    now: datetime,
    tenant_id: str | None = None,
) -> None:
    """Store where ``(platform, key)`` can be reached, replacing what was stored for it.

    ``INSERT .. ON CONFLICT (platform, key) DO UPDATE``: concurrent upserts of one key never fail,
    the last one wins, and ``created_at`` keeps the first sighting.
    """
    if kind not in CONVERSATION_KINDS:
        raise ValueError(f"unknown conversation kind {kind!r}; expected one of {CONVERSATION_KINDS}")
    table = ConversationRef.__table__
    stmt = _insert_for(await _dialect_name(session), table).values(
        platform=platform, key=key, kind=kind, tenant_id=tenant_id, service_url=service_url,
        conversation_id=conversation_id, reference=reference, created_at=now, updated_at=now,
    )
    changed = ("kind", "tenant_id", "service_url", "conversation_id", "reference", "updated_at")
    stmt = stmt.on_conflict_do_update(
        index_elements=["platform", "key"], set_={name: stmt.excluded[name] for name in changed}
    )
    await session.execute(stmt)


async def get_conversation_ref(*, session: AsyncSession, platform: str, key: str) -> ConversationRef | None:
    """The stored reference of ``(platform, key)`` (e.g. ``("teams", "user:<aad id>")``), or None."""
    query = select(ConversationRef).where(ConversationRef.platform == platform, ConversationRef.key == key)
    return (await session.scalars(query)).first()


async def list_conversation_refs(
    *, session: AsyncSession, platform: str | None = None, kind: str | None = None, limit: int = 100
) -> list[ConversationRef]:
    """Stored references, most recently seen first, optionally of one platform and kind."""
    query = select(ConversationRef)
    if platform is not None:
        query = query.where(ConversationRef.platform == platform)
    if kind is not None:
        query = query.where(ConversationRef.kind == kind)
    query = query.order_by(ConversationRef.updated_at.desc(), ConversationRef.id.desc()).limit(limit)
    return list((await session.scalars(query)).all())
