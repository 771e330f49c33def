"""Shared set-up of the on-call tests: settings with a rotation, an injected clock, a core on the fakes."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import func, select

from bot.config import Settings
from bot.config_oncall import Person, RotationConfig
from bot.core import Core, open_core
from handlers.intake import Inbound, IntakeResult
from storage.models import Incident, OutboxRow, Ticket, TicketEvent
from tests.fakes.slack_api import FakeSlackApi
from tests.helpers import BOT_TOKEN, SIGNING_SECRET, make_settings, signed_headers

ROUTING_KEY = "R0123456789abcdef0123456789abcde"
ONCALL_CHANNEL = "C0ONCALL"
INHOUSE_CHANNEL = "C0INHOUSE"
ADMIN_CHANNEL = "C0ADMINS"
ADMIN = "U0ADMIN"
#: Wednesday 25 Nov 2026, 10:00 UTC: inside business hours, Alice's week (the rotation starts Mon 23 Nov).
T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


def oncall_settings(db_url: str, slack: FakeSlackApi, *, rotation: bool = True, channel: bool = True,
                    **env: str) -> Settings:
    """The shipped app.yaml with Slack on the fake, a rotation Alice -> Bob -> Carol (secondary Sam)."""
    settings = make_settings(db_url, SLACK_SIGNING_SECRET=SIGNING_SECRET, SLACK_BOT_TOKEN=BOT_TOKEN,
                             SLACK_API_URL=slack.api_base, **env)
    settings.delivery.backoff_base_seconds = 0.01
    settings.delivery.poll_interval_seconds = 0.05
    settings.internal.slack_channel = INHOUSE_CHANNEL
    settings.admins.alert_slack_channel = ADMIN_CHANNEL
    settings.admins.slack = [ADMIN]
    if channel:
        settings.oncall.slack_channel = ONCALL_CHANNEL
    if rotation:
        settings.oncall.rotation = RotationConfig(
            people=[Person(name="Alice", slack="U0ALICE"), Person(name="Bob", slack="U0BOB"),
                    Person(name="Carol", slack="U0CAROL")],
            timezone="Europe/London", handoff_time="09:00", period="weekly", start=date(2026, 11, 23))
        settings.oncall.secondary = RotationConfig(people=[Person(name="Sam", slack="U0SAM")],
                                                   timezone="Europe/London", start=date(2026, 11, 23))
    return settings


@contextlib.asynccontextmanager
async def core_of(settings: Settings, clock: Clock) -> AsyncIterator[Core]:
    async with open_core(settings, clock=clock) as core:
        yield core


async def report(core: Core, text: str, *, user: str, event_id: str | None = None) -> IntakeResult:
    """A Slack DM from ``user`` (in channel ``D<user>``), answered in its thread."""
    return await core.intake.handle(Inbound(
        platform="slack", event_id=event_id or f"Ev-{user}-{time.monotonic_ns()}", text=text, user_id=user,
        user_name=user.lower(), channel_id=f"D{user}", channel_type="im", reply_kind="slack.post",
        reply_target={"channel": f"D{user}", "thread_ts": "1726133700.000100"}))


async def drain(core: Core) -> int:
    """Run the outbox worker until nothing is due (at the clock's current time)."""
    total = 0
    while handled := await core.worker.run_once():
        total += handled
    return total


async def count(core: Core, model: Any, *where: Any) -> int:
    async with core.sessionmaker() as session:
        return int((await session.execute(select(func.count()).select_from(model).where(*where))).scalar_one())


async def incidents(core: Core) -> list[Incident]:
    async with core.sessionmaker() as session:
        return list((await session.scalars(select(Incident).order_by(Incident.id))).all())


async def tickets(core: Core) -> list[Ticket]:
    async with core.sessionmaker() as session:
        return list((await session.scalars(select(Ticket).order_by(Ticket.id))).all())


async def rows(core: Core, kind: str | None = None) -> list[OutboxRow]:
    async with core.sessionmaker() as session:
        query = select(OutboxRow).order_by(OutboxRow.id)
        if kind is not None:
            query = query.where(OutboxRow.kind == kind)
        return list((await session.scalars(query)).all())


async def events(core: Core, kind: str) -> list[TicketEvent]:
    async with core.sessionmaker() as session:
        return list((await session.scalars(select(TicketEvent).where(TicketEvent.kind == kind))).all())


def texts(slack: FakeSlackApi, channel: str) -> list[str]:
    """Everything posted to ``channel`` (text and block text), one string per message."""
    return [p.get("text", "") + " " + json.dumps(p.get("blocks", "")) for p in slack.posts_to(channel)]


def command_form(text: str, *, user: str, response_url: str) -> str:
    """A ``/handoff`` slash command from ``user``."""
    return urlencode({
        "token": "verification_token", "team_id": "T111", "team_domain": "example", "channel_id": "C0GENERAL",
        "channel_name": "general", "user_id": user, "user_name": user.lower(), "command": "/handoff", "text": text,
        "api_app_id": "A111", "response_url": response_url, "trigger_id": f"trig-{time.monotonic_ns()}",
    })


FORM = "application/x-www-form-urlencoded"


def form_headers(body: str) -> dict[str, str]:
    return signed_headers(body, content_type=FORM)
