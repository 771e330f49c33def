"""``/handoff oncall`` (who, overrides), ``ack|resolve|escalate IT-…`` and ``<when>`` parsing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from bot.app import create_app
from bot.config_oncall import OverrideConfig
from handlers.commands import CommandReply
from handlers.oncall_time import WhenError, parse_when
from handlers.ports import Actor
from storage.models import AuditEntry, OncallOverride
from tests.fakes.slack_api import FakeSlackApi
from tests.oncall_world import (
    ADMIN,
    ROUTING_KEY,
    Clock,
    command_form,
    core_of,
    drain,
    form_headers,
    incidents,
    oncall_settings,
    report,
)

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)  # Wednesday
ADMIN_ACTOR = Actor("slack", ADMIN, "admin")


@pytest.mark.parametrize(("text", "expected"), [
    ("+8h", datetime(2026, 11, 25, 18, 0, tzinfo=UTC)),
    ("+30m", datetime(2026, 11, 25, 10, 30, tzinfo=UTC)),
    ("+2d", datetime(2026, 11, 27, 10, 0, tzinfo=UTC)),
    ("18:00", datetime(2026, 11, 25, 17, 0, tzinfo=UTC)),          # Europe/Berlin is UTC+1 in November
    ("09:00", datetime(2026, 11, 26, 8, 0, tzinfo=UTC)),           # passed today: tomorrow
    ("today 18:00", datetime(2026, 11, 25, 17, 0, tzinfo=UTC)),
    ("tomorrow 09:00", datetime(2026, 11, 26, 8, 0, tzinfo=UTC)),
    ("Monday 09:00", datetime(2026, 11, 30, 8, 0, tzinfo=UTC)),
    ("wed 09:00", datetime(2026, 12, 2, 8, 0, tzinfo=UTC)),        # today's has passed: next week
    ("2026-12-24", datetime(2026, 12, 23, 23, 0, tzinfo=UTC)),
    ("2026-12-24 18:00", datetime(2026, 12, 24, 17, 0, tzinfo=UTC)),
    ("2026-12-24T18:00+00:00", datetime(2026, 12, 24, 18, 0, tzinfo=UTC)),
])
def test_parse_when(text: str, expected: datetime) -> None:
    assert parse_when(text, now=NOW, timezone="Europe/Berlin") == expected


@pytest.mark.parametrize("text", ["", "soon", "25:00", "next tuesday", "+5 weeks", "someday 09:00"])
def test_parse_when_refuses_with_examples(text: str) -> None:
    with pytest.raises(WhenError, match="e.g."):
        parse_when(text, now=NOW, timezone="Europe/Berlin")


async def _say(core: object, actor: Actor, text: str) -> CommandReply:
    return await core.commands.dispatch(actor, text, event_id=f"cmd-{text}")  # type: ignore[attr-defined,no-any-return]


async def test_who_is_on_call_and_overrides(db_url: str) -> None:
    clock = Clock(NOW)
    async with FakeSlackApi() as slack, core_of(oncall_settings(db_url, slack), clock) as core:
        shown = await _say(core, Actor("slack", "U0ANYONE"), "oncall")
        assert "*On call now:* Alice until 09:00 on Mon 30 Nov (Europe/London) (rotation)" in shown.text
        assert "*Next:* Bob" in shown.text and "*Secondary:* Sam" in shown.text

        refused = await _say(core, Actor("slack", "U0ANYONE"), "oncall override Bob --until tomorrow 09:00")
        assert "Only admins" in refused.text
        made = await _say(core, ADMIN_ACTOR, "oncall override Bob --until tomorrow 09:00")
        assert "Override #1: Bob is on call" in made.text and "until 09:00 on Thu 26 Nov" in made.text
        shown = await _say(core, Actor("slack", "U0ANYONE"), "oncall")
        assert "*On call now:* Bob until 09:00 on Thu 26 Nov (Europe/London) (override)" in shown.text
        assert "#1 Bob" in shown.text

        await report(core, "e-mail is down for everyone", user="U0EMP")
        await drain(core)
        assert len(slack.posts_to("U0BOB")) == 1 and slack.posts_to("U0ALICE") == []

        bad = await _say(core, ADMIN_ACTOR, "oncall override Bob --until whenever")
        assert "cannot read 'whenever'" in bad.text and "Usage" in bad.text
        unknown = await _say(core, ADMIN_ACTOR, "oncall override Zed --until +1h")
        assert "I don't know 'Zed'" in unknown.text and "Alice, Bob, Carol, Sam" in unknown.text

        cleared = await _say(core, ADMIN_ACTOR, "oncall clear 1")
        assert "Override #1 (Bob) is cancelled" in cleared.text
        assert "There is no active override #1" in (await _say(core, ADMIN_ACTOR, "oncall clear 1")).text
        assert "(rotation)" in (await _say(core, ADMIN_ACTOR, "oncall")).text

        async with core.sessionmaker() as session:
            audit = list((await session.scalars(select(AuditEntry).where(AuditEntry.action.like("oncall.%"))
                                                .order_by(AuditEntry.id))).all())
        assert [(a.action, a.allowed, a.detail.get("outcome")) for a in audit] == [
            ("oncall.override", False, "refused"), ("oncall.override", True, "ok"),
            ("oncall.override", True, "error"), ("oncall.override", True, "error"),
            ("oncall.clear", True, "ok"), ("oncall.clear", True, "not found")]
        # Not an override number: past an INTEGER column (a DataError on PostgreSQL), or a digit int() refuses.
        for ident in ("99999999999", "²"):
            assert "Usage: `/handoff oncall clear <id>`" in (await _say(core, ADMIN_ACTOR, f"oncall clear {ident}")).text


async def test_override_by_mention_starts_later(db_url: str) -> None:
    clock = Clock(NOW)
    async with FakeSlackApi() as slack, core_of(oncall_settings(db_url, slack), clock) as core:
        made = await _say(core, ADMIN_ACTOR, "oncall override <@U0DANA|dana> --from +1h --until +3h")
        assert "Override #1" in made.text
        async with core.sessionmaker() as session:
            [row] = (await session.scalars(select(OncallOverride))).all()
        assert row.person == "slack:U0DANA" and row.created_by == f"slack:{ADMIN}"
        await report(core, "e-mail is down for everyone", user="U0EMP1")
        clock.advance(hours=1, minutes=1)
        await report(core, "the VPN is down for everyone", user="U0EMP2")
        await drain(core)
        assert len(slack.posts_to("U0ALICE")) == 1 and len(slack.posts_to("U0DANA")) == 1


async def test_planned_override_from_app_yaml(db_url: str) -> None:
    async with FakeSlackApi() as slack:
        settings = oncall_settings(db_url, slack)
        settings.oncall.overrides = [OverrideConfig(person="Carol", start=datetime(2026, 11, 25, 9, 0, tzinfo=UTC),
                                                    end=datetime(2026, 11, 25, 12, 0, tzinfo=UTC))]
        async with core_of(settings, Clock(NOW)) as core:
            shown = await _say(core, Actor("slack", "U0ANYONE"), "oncall")
            assert "*On call now:* Carol until 12:00 on Wed 25 Nov (Europe/London) (override)" in shown.text
            assert "• Carol: " in shown.text and "(app.yaml)" in shown.text


async def test_pagerduty_decides_who_is_on_call(db_url: str) -> None:
    async with FakeSlackApi() as slack, core_of(oncall_settings(db_url, slack, PAGERDUTY_ROUTING_KEY=ROUTING_KEY), Clock(NOW)) as core:
        shown = await _say(core, Actor("slack", "U0ANYONE"), "oncall")
        assert "PagerDuty decides who is on call" in shown.text and "Alice" not in shown.text
        made = await _say(core, ADMIN_ACTOR, "oncall override Bob --until 2026-12-01T09:00:00+00:00")
        assert made.text.startswith("Override #1: Bob is on call")
        assert "make the override in PagerDuty too" in made.text  # it would not change who PagerDuty wakes


async def test_page_actions_by_ticket_are_for_on_call_people(db_url: str) -> None:
    async with FakeSlackApi() as slack, core_of(oncall_settings(db_url, slack), Clock(NOW)) as core:
        paged = await report(core, "e-mail is down for everyone", user="U0EMP")
        routine = await report(core, "printer on floor 3 is jammed", user="U0EMP")
        ticket = paged.ticket or ""
        refused = await _say(core, Actor("slack", "U0EMP"), f"resolve {ticket}")
        assert "Only on-call people" in refused.text
        assert (await incidents(core))[0].status == "triggered"
        acked = await _say(core, Actor("slack", "U0CAROL", "carol"), f"ack {ticket}")
        assert "You acknowledged" in acked.text
        twice = await _say(core, Actor("slack", "U0BOB", "bob"), f"ack {ticket.lower()}")
        assert "already acknowledged by carol" in twice.text
        assert "did not page anyone" in (await _say(core, ADMIN_ACTOR, f"ack {routine.ticket}")).text
        assert "no ticket 'IT-9999'" in (await _say(core, ADMIN_ACTOR, "escalate IT-9999")).text
        false_page = await _say(core, ADMIN_ACTOR, f"resolve {ticket} not-critical")
        assert "as not critical" in false_page.text
        assert (await incidents(core))[0].resolution == "not_critical"
        assert "Usage" in (await _say(core, ADMIN_ACTOR, "ack")).text


async def test_oncall_command_through_the_slack_edge(db_url: str) -> None:
    async with FakeSlackApi() as slack:
        app = create_app(oncall_settings(db_url, slack), clock=Clock(NOW))
        async with TestClient(TestServer(app)) as client:
            body = command_form("oncall", user="U0ANYONE", response_url=slack.response_url("c1"))
            resp = await client.post("/slack/events", data=body, headers=form_headers(body))
            assert resp.status == 200
            assert "*On call now:* Alice" in (await resp.json())["text"]
