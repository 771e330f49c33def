"""Business hours: an after-hours ``internal`` request pages nobody and says when it will be picked up."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from bot.config import Settings
from storage.models import OutboxRow
from tests.fakes.slack_api import FakeSlackApi
from tests.oncall_world import (
    INHOUSE_CHANNEL,
    ONCALL_CHANNEL,
    Clock,
    core_of,
    count,
    drain,
    oncall_settings,
    report,
    rows,
    tickets,
)

INTERNAL = "server disk full on sql01"
SATURDAY_NIGHT = datetime(2026, 11, 28, 22, 0, tzinfo=UTC)
MONDAY_OPEN = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)  # 08:00 Europe/London is 08:00 UTC in November


def configure(settings: Settings, holidays: list[date] | None = None) -> Settings:
    bh = settings.business_hours
    bh.timezone, bh.open, bh.close, bh.holidays = "Europe/London", "08:00", "18:00", holidays or []
    bh.weekdays = ["mon", "tue", "wed", "thu", "fri"]
    return settings


async def test_after_hours_internal_request_waits_and_says_when(db_url: str) -> None:
    clock = Clock(SATURDAY_NIGHT)
    async with FakeSlackApi() as slack, core_of(configure(oncall_settings(db_url, slack)), clock) as core:
        result = await report(core, INTERNAL, user="U0EMP")
        assert result.decision is not None and result.decision.route == "internal"
        assert result.reply is not None
        assert "will pick this up at 08:00 on Monday 30 Nov (Europe/London)" in result.reply.text
        assert "Nobody is woken" in result.reply.text
        [notice] = await rows(core, "internal")
        assert notice.next_attempt_at == MONDAY_OPEN and "after hours" in notice.payload["text"]
        await drain(core)
        assert slack.posts_to("DU0EMP") and slack.posts_to(INHOUSE_CHANNEL) == []
        assert slack.posts_to(ONCALL_CHANNEL) == [] and slack.posts_to("U0ALICE") == []
        assert await count(core, OutboxRow, OutboxRow.kind.in_(("chat.notify", "pagerduty", "oncall.escalate"))) == 0

        clock.now = MONDAY_OPEN - timedelta(minutes=1)
        await drain(core)
        assert slack.posts_to(INHOUSE_CHANNEL) == []
        clock.now = MONDAY_OPEN
        await drain(core)
        [post] = slack.posts_to(INHOUSE_CHANNEL)
        assert "sql01" in post["text"]


async def test_a_page_pages_whatever_the_hour(db_url: str) -> None:
    clock = Clock(SATURDAY_NIGHT)
    async with FakeSlackApi() as slack, core_of(configure(oncall_settings(db_url, slack)), clock) as core:
        result = await report(core, "e-mail is down for everyone", user="U0EMP")
        assert result.page == "paged" and result.reply is not None and "pick this up" not in result.reply.text
        [notice] = await rows(core, "internal")
        assert notice.next_attempt_at == SATURDAY_NIGHT
        await drain(core)
        assert len(slack.posts_to("U0ALICE")) == 1 and len(slack.posts_to(INHOUSE_CHANNEL)) == 1


async def test_weekday_evening_and_holiday(db_url: str) -> None:
    clock = Clock(datetime(2026, 11, 25, 19, 30, tzinfo=UTC))  # Wednesday evening
    async with FakeSlackApi() as slack:
        settings = configure(oncall_settings(db_url, slack), holidays=[date(2026, 11, 26)])
        async with core_of(settings, clock) as core:
            result = await report(core, INTERNAL, user="U0EMP")
            assert result.reply is not None and "08:00 on Friday 27 Nov (Europe/London)" in result.reply.text
        settings = configure(oncall_settings(db_url, slack))
        async with core_of(settings, clock) as core:
            result = await report(core, INTERNAL, user="U0EMP2")
            assert result.reply is not None and "08:00 tomorrow (Europe/London)" in result.reply.text
            clock.now = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)  # open: no waiting
            result = await report(core, INTERNAL, user="U0EMP3")
            assert result.reply is not None and "pick this up" not in result.reply.text
            assert (await rows(core, "internal"))[-1].next_attempt_at == clock.now


async def test_msp_ticket_gets_its_sla_deadline_in_business_hours(db_url: str) -> None:
    clock = Clock(datetime(2026, 11, 27, 16, 0, tzinfo=UTC))  # Friday 16:00: 2 h today, 2 h on Monday
    async with FakeSlackApi() as slack, core_of(configure(oncall_settings(db_url, slack)), clock) as core:
        result = await report(core, "outlook keeps crashing when I open attachments", user="U0EMP")
        assert result.decision is not None and result.decision.route == "msp"
        [ticket] = await tickets(core)
        assert ticket.sla_due_at == datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
        [check] = await rows(core, "sla.check")
        assert check.next_attempt_at == ticket.sla_due_at and check.idempotency_key == f"sla:{ticket.id}"
        assert check.payload == {"ticket_id": ticket.id}
        [msp] = await rows(core, "msp")
        assert msp.payload["event"] == "ticket.created"


async def test_no_sla_when_switched_off(db_url: str) -> None:
    clock = Clock()
    async with FakeSlackApi() as slack:
        settings = configure(oncall_settings(db_url, slack))
        settings.sla.msp_first_response_hours = None
        async with core_of(settings, clock) as core:
            await report(core, "outlook keeps crashing when I open attachments", user="U0EMP")
            [ticket] = await tickets(core)
            assert ticket.sla_due_at is None and await rows(core, "sla.check") == []


async def test_intake_gives_the_classifier_the_time_for_rule_windows(db_url: str) -> None:
    clock = Clock(SATURDAY_NIGHT)
    async with FakeSlackApi() as slack:
        settings = configure(oncall_settings(db_url, slack))
        weekend_vpn = {"id": "weekend-vpn", "route": "internal", "severity": "normal", "queue": "it-infrastructure",
                       "when": {"any": ["vpn"]}, "active": [{"days": ["sat", "sun"], "from": "00:00", "to": "24:00"}]}
        settings.routing = {**settings.routing, "rules": [weekend_vpn, *settings.routing["rules"]]}
        async with core_of(settings, clock) as core:
            weekend = await report(core, "my vpn will not connect", user="U0EMP1")
            clock.now = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
            weekday = await report(core, "my vpn will not connect", user="U0EMP2")
            assert weekend.decision is not None and weekend.decision.rule_id == "weekend-vpn"
            assert weekday.decision is not None and weekday.decision.rule_id != "weekend-vpn"
