"""The schema: SQLAlchemy 2.0 typed models.

Every timestamp is a timezone-aware UTC ``datetime`` in Python. PostgreSQL stores
``timestamptz``; SQLite stores naive UTC text (so comparisons in SQL order correctly) and the
values come back aware. A naive ``datetime`` is refused on write: it is almost always a bug.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

#: Ticket keys are ``IT-`` followed by ``TICKET_KEY_OFFSET + id``: the first ticket is IT-1001.
TICKET_KEY_PREFIX = "IT-"
TICKET_KEY_OFFSET = 1000
_KEY_RE = re.compile(r"\s*IT-(\d{1,18})\s*", re.IGNORECASE)
#: The largest id a row can have: ids are INTEGER columns (int4 on PostgreSQL). An id parsed from
#: outside input above it names nothing; sent to PostgreSQL it would be a DataError, not "not found".
MAX_ROW_ID = 2**31 - 1

OUTBOX_STATUSES = ("pending", "delivered", "dead")
#: Where a ticket stands. ``open`` until someone works on it; ``resolved`` by whoever fixed it (the MSP,
#: in-house IT, the on-call); ``closed`` by the employee (or after resolution); ``reopen`` makes it open.
TICKET_STATUSES = ("open", "in_progress", "waiting", "resolved", "closed")
#: An incident groups the reports of one critical problem (storm control) and carries its page.
INCIDENT_STATUSES = ("triggered", "acknowledged", "resolved")
#: How an incident was (or was not) paged: ``held`` means the page cap held it back (visible, never
#: dropped); ``none`` means no pager is configured (only chat notices).
INCIDENT_PAGERS = ("pagerduty", "opsgenie", "chat", "held", "none")
RULESET_SOURCES = ("file", "chat", "rollback", "import")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def ticket_key(ticket_id: int) -> str:
    """The human key of a ticket id: ``42 -> "IT-1042"``."""
    return f"{TICKET_KEY_PREFIX}{TICKET_KEY_OFFSET + ticket_id}"


def ticket_id_from_key(key: str) -> int:
    """The ticket id of a human key: ``"IT-1042" -> 42`` (case and surrounding blanks ignored).

    Raises:
        ValueError: ``key`` is not a ticket key, or names no possible ticket (``IT-1000``, or past
            :data:`MAX_ROW_ID`).
    """
    m = _KEY_RE.fullmatch(key) if isinstance(key, str) else None
    if m is None:
        raise ValueError(f"not a ticket key: {key!r} (expected e.g. IT-1042)")
    ticket_id = int(m.group(1)) - TICKET_KEY_OFFSET
    if ticket_id < 1:
        raise ValueError(f"not a ticket key: {key!r} (numbers start at IT-{TICKET_KEY_OFFSET + 1})")
    if ticket_id > MAX_ROW_ID:
        raise ValueError(f"not a ticket key: {key!r} (no ticket number is that large)")
    return ticket_id


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime: pass a timezone-aware datetime (UTC)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[str]: JSON}


class InboundEvent(Base):
    """An inbound platform event already seen; retries of the same event are absorbed."""

    __tablename__ = "inbound_events"
    __table_args__ = (UniqueConstraint("platform", "event_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    platform: Mapped[str] = mapped_column(String(32))
    event_id: Mapped[str] = mapped_column(String(255))
    received_at: Mapped[datetime]


class Ticket(Base):
    """A request from an employee, its routing decision and where it stands."""

    __tablename__ = "tickets"
    __table_args__ = (
        Index("ix_tickets_platform_user_id", "platform", "user_id"),
        Index("ix_tickets_platform_channel_id_thread_ref", "platform", "channel_id", "thread_ref"),
        Index("ix_tickets_created_at", "created_at"),
        {"sqlite_autoincrement": True},  # never reuse a ticket number, even after a delete
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    platform: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[str] = mapped_column(String(255))
    user_name: Mapped[str] = mapped_column(String(255), default="")
    channel_id: Mapped[str] = mapped_column(String(255), default="")
    thread_ref: Mapped[str | None] = mapped_column(String(255))
    text: Mapped[str] = mapped_column(Text)
    route: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(32))
    queue: Mapped[str] = mapped_column(String(255))
    rule_id: Mapped[str] = mapped_column(String(255))
    ruleset_version: Mapped[int] = mapped_column(Integer)
    why: Mapped[str] = mapped_column(Text, default="")
    terms: Mapped[list[str]] = mapped_column(default=list)
    redactions: Mapped[list[str]] = mapped_column(default=list)
    fail_closed: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(32), default="open")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    conversation: Mapped[dict[str, Any] | None]
    #: The incident this report belongs to (page route): the one it triggered or subscribed to.
    incident_id: Mapped[int | None] = mapped_column(Integer, index=True)
    #: The MSP's own id for this ticket (from the delivery answer or a callback).
    remote_id: Mapped[str | None] = mapped_column(String(255))
    #: Last status the MSP reported (free text from the callback, e.g. ``in_progress``).
    msp_status: Mapped[str | None] = mapped_column(String(64))
    first_response_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    #: When the MSP's first response is due (business hours); None when no SLA applies.
    sla_due_at: Mapped[datetime | None]
    #: When the SLA watchdog escalated this ticket in house for want of a first response.
    sla_breached_at: Mapped[datetime | None]

    @property
    def key(self) -> str:
        """Human ticket id, e.g. ``IT-1042``."""
        return ticket_key(self.id)


class OutboxRow(Base):
    """One delivery to a third party, retried until delivered or dead."""

    __tablename__ = "outbox"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'delivered', 'dead')", name="status"),
        Index("ix_outbox_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_outbox_ticket_id_kind_status", "ticket_id", "kind", "status"),
        # claim_due walks due pending rows in this order and stops at its batch: no sort of the backlog
        Index("ix_outbox_pending_due", "next_attempt_at", "id", postgresql_where=text("status = 'pending'"),
              sqlite_where=text("status = 'pending'")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]]
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    next_attempt_at: Mapped[datetime]
    #: When the row first became due, kept by its first retry (which moves ``next_attempt_at``);
    #: NULL before any failed attempt. The delivery lag is measured from it (outbox_stats).
    first_due_at: Mapped[datetime | None]
    locked_until: Mapped[datetime | None]
    locked_by: Mapped[str | None] = mapped_column(String(255))
    delivered_at: Mapped[datetime | None]
    dead_at: Mapped[datetime | None]
    detail: Mapped[str | None] = mapped_column(Text)
    last_error: Mapped[str | None] = mapped_column(Text)
    remote_id: Mapped[str | None] = mapped_column(String(255))


class RulesetVersion(Base):
    """An immutable saved rule set (the ``routing:`` section of app.yaml as a plain dict)."""

    __tablename__ = "ruleset_versions"
    __table_args__ = (
        CheckConstraint("source IN ('file', 'chat', 'rollback', 'import')", name="source"),
    )

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    created_at: Mapped[datetime]
    author: Mapped[str] = mapped_column(String(255))
    source: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text, default="")
    content: Mapped[dict[str, Any]]
    content_hash: Mapped[str] = mapped_column(String(128))


class AuditEntry(Base):
    """Who did (or tried to do) what, when, and whether it was allowed."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(255), default="")
    allowed: Mapped[bool] = mapped_column(Boolean)
    detail: Mapped[dict[str, Any]]


#: Where a rule draft's content came from: chat edits, or a pasted YAML import.
RULE_DRAFT_ORIGINS = ("chat", "import")


class RuleDraft(Base):
    """An admin's pending rule set (``routing:`` mapping), based on a published version.

    One per admin (``owner`` is ``platform:user id``); publishing turns it into a new
    :class:`RulesetVersion` and deletes it.
    """

    __tablename__ = "rule_drafts"
    __table_args__ = (
        UniqueConstraint("owner"),
        CheckConstraint("origin IN ('chat', 'import')", name="origin"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(String(255))
    base_version: Mapped[int] = mapped_column(Integer)
    origin: Mapped[str] = mapped_column(String(16), default="chat")
    content: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


#: Kinds of stored conversation references.
CONVERSATION_KINDS = ("user", "channel", "chat")


class ConversationRef(Base):
    """Where a person or a channel can be reached later, outside any request (proactive messages).

    One row per (platform, key): ``user:<id>`` for a requester's 1:1 chat, ``channel:<id>`` for a
    channel the bot was added to or mentioned in, ``chat:<id>`` for a group chat. ``reference`` holds
    what the platform needs to post there (for Teams a Bot Framework conversation reference).
    """

    __tablename__ = "conversation_refs"
    __table_args__ = (
        UniqueConstraint("platform", "key"),
        CheckConstraint("kind IN ('user', 'channel', 'chat')", name="kind"),
        Index("ix_conversation_refs_platform_kind", "platform", "kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    platform: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16))
    tenant_id: Mapped[str | None] = mapped_column(String(255))
    service_url: Mapped[str] = mapped_column(Text)
    conversation_id: Mapped[str] = mapped_column(Text)
    reference: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Incident(Base):
    """One critical problem: its page, and every report of it (tickets with ``incident_id``).

    Storm control: reports that match the same page rule with the same ``group_key`` while the
    incident is open (and within the grouping window) join it instead of paging again.
    """

    __tablename__ = "incidents"
    __table_args__ = (
        CheckConstraint("status IN ('triggered', 'acknowledged', 'resolved')", name="status"),
        CheckConstraint("pager IN ('pagerduty', 'opsgenie', 'chat', 'held', 'none')", name="pager"),
        Index("ix_incidents_rule_id_group_key_status", "rule_id", "group_key", "status"),
        Index("ix_incidents_status_created_at", "status", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rule_id: Mapped[str] = mapped_column(String(255))
    group_key: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default="triggered")
    pager: Mapped[str] = mapped_column(String(16))
    #: Stable key of the page at the pager (PagerDuty ``dedup_key``, Opsgenie ``alias``).
    dedup_key: Mapped[str] = mapped_column(String(255), unique=True)
    severity: Mapped[str] = mapped_column(String(32), default="critical")
    summary: Mapped[str] = mapped_column(Text)
    first_ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    reports: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime]
    last_report_at: Mapped[datetime]
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(String(255))
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(255))
    #: How it ended: ``fixed``, or ``not_critical`` (a false page, counted by the report).
    resolution: Mapped[str | None] = mapped_column(String(32))
    #: Chat-native pager: 0 = primary paged, 1 = next person, 2 = secondary, 3 = channel @here.
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    #: Who is paged now (``platform:user id``), for the chat-native pager.
    assignee: Mapped[str | None] = mapped_column(String(255))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


#: What a ticket's history records.
TICKET_EVENT_KINDS = (
    "created", "comment", "status", "msp_update", "acknowledged", "resolved", "escalated", "closed",
    "reopened", "sla_breach", "subscribed", "notified",
)


class TicketEvent(Base):
    """One line of a ticket's history: a comment, a status change, an MSP update, a page step."""

    __tablename__ = "ticket_events"
    __table_args__ = (Index("ix_ticket_events_ticket_id_id", "ticket_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(32))
    #: ``platform:user id`` of a person, ``msp``, ``oncall`` or ``system``.
    actor: Mapped[str] = mapped_column(String(255), default="")
    text: Mapped[str] = mapped_column(Text, default="")
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class OncallOverride(Base):
    """An admin's ``/handoff oncall override``: ``person`` is on call from ``starts_at`` to ``ends_at``.

    Stored in the database so every replica sees it; the rotation in app.yaml is the rest.
    """

    __tablename__ = "oncall_overrides"
    __table_args__ = (Index("ix_oncall_overrides_ends_at", "ends_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: ``platform:user id`` (e.g. ``slack:U0123``) or a rotation member's name.
    person: Mapped[str] = mapped_column(String(255))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime]
    note: Mapped[str] = mapped_column(Text, default="")
    cancelled_at: Mapped[datetime | None]
