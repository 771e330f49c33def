"""Shared set-up of the ticket-life tests: a settable clock, real intake with the shipped rules, queries."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.connectors.local import LocalSink
from handlers.intake import Inbound, Intake, IntakeOptions
from handlers.ports import Actor, Connector
from handlers.rules_access import AdminAccess, AdminPolicy
from handlers.rules_state import ActiveRules
from storage.models import (
    InboundEvent,
    OutboxRow,
    Ticket,
    TicketEvent,
    ticket_id_from_key,
)

APP_YAML = Path(__file__).resolve().parent.parent / "app.yaml"
EMPLOYEE = Actor("slack", "U0EMPLOYEE", "alex", "D0DM")
OTHER = Actor("slack", "U0EVE", "eve", "D0EVE")
ADMIN = Actor("slack", "U0ADMIN", "ada", "D0ADMIN")
TEAMS_EMPLOYEE = Actor("teams", "aad-kim", "kim", "a:1on1")

MSP_TEXT = "Outlook keeps crashing when I open attachments"
INTERNAL_TEXT = "I got a suspicious email asking me to verify my account, I did not click"
PAGE_TEXT = "ransomware note on my screen, files renamed .locked"


@dataclass
class Clock:
    """Wall-clock time under the test's control."""

    now: datetime = field(default_factory=lambda: datetime(2026, 3, 2, 9, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> datetime:
        self.now += timedelta(**kwargs)
        return self.now


def admin_access() -> AdminAccess:
    return AdminAccess(policy=AdminPolicy.build(slack=[ADMIN.user_id]))


def sinks(*kinds: str) -> dict[str, Connector]:
    """Local sinks (accept everything) for the outbox kinds a test does not look at on the wire."""
    names = kinds or ("msp", "internal", "admin.alert", "slack.post", "teams.post", "chat.notify", "pagerduty",
                      "opsgenie")
    return {kind: LocalSink(kind) for kind in names}


async def make_intake(sessionmaker: async_sessionmaker[AsyncSession], clock: Clock,
                      options: IntakeOptions | None = None) -> Intake:
    rules = ActiveRules(sessionmaker=sessionmaker, clock=clock)
    await rules.sync_from_file(yaml.safe_load(APP_YAML.read_text(encoding="utf-8"))["routing"])
    return Intake(sessionmaker=sessionmaker, rules=rules, clock=clock, options=options or IntakeOptions(), linger=0)


async def ask(intake: Intake, text: str, *, event_id: str, actor: Actor = EMPLOYEE, thread: str | None = None,
              command: bool = False) -> str:
    """Open a ticket as the edges do: a DM (answered in its thread) or a slash command (no thread)."""
    thread = thread or f"1726133700.{zlib.crc32(event_id.encode()) % 10**6:06d}"
    result = await intake.handle(Inbound(
        platform=actor.platform, event_id=event_id, text=text, user_id=actor.user_id, user_name=actor.user_name,
        channel_id=actor.channel_id, channel_type="command" if command else "im",
        thread_ref=None if command else thread, reply_kind=None if command else f"{actor.platform}.post",
        reply_target={} if command else {"channel": actor.channel_id, "thread_ts": thread},
    ))
    assert result.ticket is not None and not result.duplicate
    return result.ticket


async def ticket(sm: async_sessionmaker[AsyncSession], key: str) -> Ticket:
    async with sm() as session:
        found = await session.get(Ticket, ticket_id_from_key(key))
        assert found is not None
        return found


async def events(sm: async_sessionmaker[AsyncSession], key: str) -> list[TicketEvent]:
    async with sm() as session:
        query = select(TicketEvent).where(TicketEvent.ticket_id == ticket_id_from_key(key)).order_by(TicketEvent.id)
        return list((await session.scalars(query)).all())


async def rows(sm: async_sessionmaker[AsyncSession], key: str | None = None, kind: str | None = None) -> list[OutboxRow]:
    async with sm() as session:
        query = select(OutboxRow).order_by(OutboxRow.id)
        if key is not None:
            query = query.where(OutboxRow.ticket_id == ticket_id_from_key(key))
        if kind is not None:
            query = query.where(OutboxRow.kind == kind)
        return list((await session.scalars(query)).all())


async def inbound(sm: async_sessionmaker[AsyncSession], platform: str) -> list[str]:
    async with sm() as session:
        query = select(InboundEvent.event_id).where(InboundEvent.platform == platform).order_by(InboundEvent.id)
        return list((await session.scalars(query)).all())


def payloads(found: list[OutboxRow]) -> list[dict[str, Any]]:
    return [dict(r.payload) for r in found]
