"""``/handoff report``: figures from seeded tickets and incidents, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from handlers.report import Report, duration, parse_days, percentile
from storage import service
from storage.models import Incident
from tests.ticket_env import ADMIN, EMPLOYEE, Clock, admin_access

NOW = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)
M = timedelta(minutes=1)


async def seed(sm: async_sessionmaker[AsyncSession]) -> None:
    async with sm.begin() as session:
        async def add_ticket(route: str, created: datetime, **fields: Any) -> None:
            await service.create_ticket(
                session=session, now=created, platform="slack", user_id="U1", user_name="", channel_id="D1",
                thread_ref=None, text="x", route=route, severity="normal", queue="q", rule_id="r", ruleset_version=1,
                why="", terms=[], redactions=[], fail_closed=False, conversation=None, **fields)

        day = NOW - timedelta(days=10)
        for minutes in (10, 20, 30, 40):  # answered in time; two of them resolved after 1 h and 3 h
            resolved = {10: day + 60 * M, 20: day + 180 * M}.get(minutes)
            await add_ticket("msp", day, first_response_at=day + minutes * M, sla_due_at=day + 240 * M,
                             resolved_at=resolved, status="resolved" if resolved else "in_progress")
        await add_ticket("msp", day, sla_due_at=day + 240 * M, sla_breached_at=day + 240 * M)  # breached
        await add_ticket("msp", NOW - 60 * M, sla_due_at=NOW + 180 * M)  # still waiting, not due yet
        for _ in range(3):
            await add_ticket("internal", day)
        await add_ticket("page", day)
        await add_ticket("msp", NOW - timedelta(days=40), first_response_at=NOW - timedelta(days=39))  # too old

        def incident(n: int, pager: str, created: datetime, ack: float | None = None, resolved: float | None = None,
                     resolution: str | None = None) -> Incident:
            return Incident(rule_id="r", group_key="g", status="resolved" if resolved else "triggered", pager=pager,
                            dedup_key=f"d{n}", summary="s", created_at=created, last_report_at=created,
                            acknowledged_at=created + ack * M if ack is not None else None,
                            resolved_at=created + resolved * M if resolved is not None else None, resolution=resolution)

        session.add_all([
            incident(1, "pagerduty", day, ack=2, resolved=60, resolution="fixed"),
            incident(2, "chat", day, ack=4, resolved=120, resolution="fixed"),
            incident(3, "chat", day, ack=10, resolved=15, resolution="not_critical"),  # a false page
            incident(4, "held", day),
            incident(5, "opsgenie", day, ack=6),
            incident(6, "pagerduty", NOW - timedelta(days=31), ack=100, resolved=1000),  # outside the window
        ])


@pytest.fixture
def report(sessionmaker: async_sessionmaker[AsyncSession]) -> Report:
    return Report(sessionmaker=sessionmaker, clock=Clock(NOW), access=admin_access(), sla_hours=4)


async def test_report_figures_from_seeded_data(report: Report, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    await seed(sessionmaker)
    lines = (await report.handle(ADMIN, "")).text.splitlines()
    assert lines == [
        "*handoff report*: last 30 days (2026-03-01 12:00 to 2026-03-31 12:00 UTC)",
        "*Requests*: 10 (MSP 6, in-house 3, paged 1); deflected to the MSP: 60%",
        "*Pages*: 5 incidents: 4 paged, 1 held back by the page cap; false pages (resolved as not critical): 1 (20%)",
        # acknowledged after 2, 4, 10, 6 minutes: median 5, p90 6 + 0.7 x 4 = 8.8 minutes
        "• time to acknowledge: median 5m, p90 8m (4 acknowledged)",
        # resolved after 60 and 120 minutes (the false page's 15 left out): median 90, p90 114 minutes
        "• time to resolve: median 1h 30m, p90 1h 54m (2 resolved), false pages excluded",
        "*MSP*: 6 tickets",
        "• first response: median 25m, p90 37m (4 answered)",
        "• resolution: median 2h 00m, p90 2h 48m (2 resolved)",
        ("*SLA* (first response within 4 business hours): 1 breach of 6 tracked (17%); 1 still waiting for a first "
         "response"),
        "Durations are wall-clock time from the request (or the page) to the event.",
    ]


async def test_a_shorter_window_and_an_empty_one(report: Report, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    await seed(sessionmaker)
    text = (await report.handle(ADMIN, "--days 7")).text
    assert "*Requests*: 1 (MSP 1, in-house 0, paged 0); deflected to the MSP: 100%" in text
    assert "*Pages*: 0 incidents: 0 paged, 0 held back by the page cap; false pages (resolved as not critical): 0 (n/a)" \
        in text
    assert "• time to acknowledge: no acknowledged yet" in text
    assert "1 still waiting" in text


async def test_only_admins_and_arguments_that_say_what_to_type(report: Report) -> None:
    refused = (await report.handle(EMPLOYEE, "")).text
    assert refused.startswith(":no_entry: Only admins may see the report.") and "admins.slack" in refused
    for bad in ("--days 0", "--days 366", "--days seven", "--weeks 2", "7 8"):
        assert "with N from 1 to 365 days, e.g. `/handoff report --days 7`" in (await report.handle(ADMIN, bad)).text


def test_parsing_and_statistics() -> None:
    assert [parse_days(a) for a in ("", "--days 7", "--days=14", "90", "-d 1", "--days 365")] == [30, 7, 14, 90, 1, 365]
    assert percentile([], 0.5) is None
    assert percentile([4.0, 1.0, 3.0, 2.0], 0.5) == 2.5 and percentile([1.0, 2.0, 3.0, 4.0], 0.9) == pytest.approx(3.7)
    assert percentile([7.0], 0.9) == 7.0
    assert [duration(s) for s in (45, 600, 3 * 3600 + 300, 2 * 86400 + 4 * 3600 + 59)] == ["45s", "10m", "3h 05m", "2d 4h"]
