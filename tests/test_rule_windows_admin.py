"""Admins editing time windows see it: the draft diff reads windows and the time zone as `rules list`
does, and replay / publish classify every stored request at its own ``created_at`` (SQLite and PostgreSQL)."""

from __future__ import annotations

import copy
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from handlers.admin_rules import RulesAdmin, RulesAdminOptions
from handlers.commands import Actor
from handlers.rules_access import AdminAccess, AdminPolicy
from handlers.rules_diff import describe_windows
from handlers.rules_edit import diff
from handlers.rules_import import normalise
from handlers.rules_render import routing_yaml
from handlers.rules_replay import (
    ReplayClassifier,
    _classify_chunk,
    _Tally,
    decisive_changes,
    normalised,
    screen_for,
)
from handlers.rules_state import ActiveRules
from routing.engine import classify_safely, compile_ruleset
from routing.model import Message
from routing.rules import ruleset_from_dict
from storage import service
from storage.models import AuditEntry, RulesetVersion, ticket_key

QUEUES = [{"name": "msp", "route": "msp"}, {"name": "infra", "route": "internal"},
          {"name": "oncall", "route": "page"}]
DEFAULT = {"id": "default", "route": "msp", "queue": "msp"}
WEEKDAYS = [{"days": ["mon-fri"], "from": "07:00", "to": "20:00"}]
WEEKEND = [{"days": ["sat", "sun"], "from": "00:00", "to": "24:00"}]


def routing(*, outage: dict[str, Any] | None = None, printer: dict[str, Any] | None = None,
            timezone: str = "UTC") -> dict[str, Any]:
    """A small rule set: a page rule, an internal rule, the default; extra keys (windows) per rule."""
    return normalise({
        "timezone": timezone, "queues": QUEUES,
        "rules": [{"id": "outage", "route": "page", "queue": "oncall", "when": {"any": ["site down"]}, **(outage or {})},
                  {"id": "printer", "route": "internal", "queue": "infra", "when": {"any": ["printer"]},
                   **(printer or {})},
                  DEFAULT],
    })


def rule(content: dict[str, Any], rule_id: str) -> dict[str, Any]:
    return next(r for r in content["rules"] if r["id"] == rule_id)


# -- the diff ----------------------------------------------------------------------------------------

def test_diff_reads_window_changes_as_rules_list_shows_them() -> None:
    old = routing(outage={"active": WEEKDAYS})
    new = copy.deepcopy(old)
    rule(new, "outage")["active"] = [{"days": ["mon", "tue", "wed", "thu", "fri"], "from": "06:00", "to": "21:00"}]
    rule(new, "printer")["mute"] = WEEKEND
    lines = diff(old, new).lines()
    assert lines == ["~ `outage`: active mon-fri 07:00-20:00 → mon-fri 06:00-21:00",
                     "~ `printer`: mute none → sat, sun 00:00-24:00"]
    back = diff(new, routing())
    assert back.lines() == ["~ `outage`: active mon-fri 06:00-21:00 → any time",
                            "~ `printer`: mute sat, sun 00:00-24:00 → none"]
    assert not any("{" in line or "'from'" in line for line in lines + back.lines())


def test_diff_names_a_timezone_change_and_the_rules_it_moves() -> None:
    old = routing(outage={"active": WEEKDAYS, "mute": WEEKEND}, printer={"mute": WEEKEND})
    d = diff(old, {**old, "timezone": "Europe/Berlin"})
    assert not d.empty and d.rule_ids == frozenset()
    assert d.lines() == [("~ timezone UTC → Europe/Berlin: the windows of `outage`, `printer` are read in "
                          "Europe/Berlin now")]
    assert d.as_dict()["timezone"] == ["UTC", "Europe/Berlin"]
    plain = routing()
    assert diff(plain, {**plain, "timezone": "Asia/Tokyo"}).lines() == [
        "~ timezone UTC → Asia/Tokyo (no rule has time windows)"]
    page_mute_only = routing(outage={"mute": WEEKEND})  # page rules ignore mute: the zone moves nothing
    assert "(no rule has time windows)" in diff(page_mute_only, {**page_mute_only, "timezone": "Asia/Tokyo"}).lines()[0]


def test_diff_shows_the_windows_of_an_added_rule() -> None:
    old = routing()
    new = copy.deepcopy(old)
    new["rules"].insert(1, {"id": "vpn-night", "route": "internal", "queue": "infra", "severity": "normal",
                            "when": {"any": ["vpn"]}, "active": [{"from": "22:00", "to": "06:00"}], "mute": WEEKEND})
    assert diff(old, new).lines() == ["+ added `vpn-night` at position 2, only 22:00-06:00; muted sat, sun 00:00-24:00"]


def test_describe_windows_shows_what_does_not_parse_as_written() -> None:
    assert describe_windows([{"days": ["mon", "funday"], "from": "08:00", "to": "09:00"}]) == \
        "['mon', 'funday'] 08:00-09:00"
    assert describe_windows([], "any time") == "any time"
    assert describe_windows([{"days": "sat", "from": 1320, "to": "24:00"}]) == "sat 22:00-24:00"  # YAML 1.1 minutes


# -- what replay looks at ------------------------------------------------------------------------------

def decisive(old: dict[str, Any], new: dict[str, Any]) -> frozenset[str]:
    d = diff(old, new)
    return decisive_changes(d.added, d.removed, d.moved, (i for i, _ in d.changed),
                            ruleset_from_dict(old), ruleset_from_dict(new))


def test_window_and_timezone_changes_are_decisive() -> None:
    base = routing(outage={"active": WEEKDAYS}, printer={"mute": WEEKEND})
    quieter = copy.deepcopy(base)
    rule(quieter, "printer")["severity"] = "low"
    assert decisive(base, quieter) == frozenset()
    assert decisive(base, routing(outage={"active": WEEKEND}, printer={"mute": WEEKEND})) == {"outage"}
    assert decisive(base, routing(outage={"active": WEEKDAYS})) == {"printer"}
    # A mute window on a page rule changes nothing: the page tier ignores it.
    assert decisive(base, routing(outage={"active": WEEKDAYS, "mute": WEEKEND}, printer={"mute": WEEKEND})) == frozenset()
    assert decisive(base, {**base, "timezone": "Europe/Berlin"}) == {"outage", "printer"}
    assert decisive(routing(), {**routing(), "timezone": "Europe/Berlin"}) == frozenset()


TEXTS = ["site down in leeds", "the printer is jammed", "site down and the printer too", "vpn broken", "hello"]
#: Every 50 minutes over a week and a day (Monday 2026-11-23 onwards), crossing every window edge.
TIMES = [datetime(2026, 11, 23, 0, 5, tzinfo=UTC) + timedelta(minutes=50 * n) for n in range(8 * 24 * 60 // 50)]
VARIANTS = [
    routing(),
    routing(outage={"active": WEEKDAYS}),
    routing(outage={"active": WEEKDAYS, "mute": WEEKDAYS}, printer={"mute": WEEKEND}),
    routing(outage={"active": [{"from": "22:00", "to": "06:00"}]}, printer={"active": WEEKDAYS, "continue": True}),
    routing(outage={"active": WEEKDAYS}, printer={"mute": WEEKEND}, timezone="Europe/Berlin"),
    routing(outage={"active": WEEKDAYS}, printer={"mute": WEEKEND}, timezone="America/New_York"),
]


@pytest.mark.parametrize("content", VARIANTS, ids=range(len(VARIANTS)))
def test_replay_outcome_is_the_engine_decision_at_that_time(content: dict[str, Any]) -> None:
    rs = ruleset_from_dict(content)
    engine, replayer = compile_ruleset(rs), ReplayClassifier(rs)
    outcomes = set()
    for text, at in itertools.product(TEXTS, TIMES):
        msg = Message(text=text, platform="slack", at=at)
        d = classify_safely(engine, msg)
        outcome = replayer.outcome(msg, *normalised(text))
        assert outcome == (d.route, d.rule_id), (text, at)
        outcomes.add(outcome)
    assert len(outcomes) >= 3


@pytest.mark.parametrize(("old", "new"), list(itertools.permutations(range(len(VARIANTS)), 2)))
def test_the_screen_never_hides_a_window_or_timezone_change(old: int, new: int) -> None:
    live, draft = ruleset_from_dict(VARIANTS[old]), ruleset_from_dict(VARIANTS[new])
    rows = [(n + 1, text, "slack", "U1", "D1", at) for n, (text, at) in enumerate(itertools.product(TEXTS, TIMES))]
    lc, dc = ReplayClassifier(live), ReplayClassifier(draft)
    changed = decisive(VARIANTS[old], VARIANTS[new])
    screened, full = _Tally(), _Tally()
    _classify_chunk(rows, lc, dc, screen_for(live, draft, changed), screened)
    _classify_chunk(rows, lc, dc, None, full)
    assert (screened.route_changed, screened.rule_changed, screened.moves) == (full.route_changed, full.rule_changed,
                                                                               full.moves)
    assert screened.newly == full.newly and screened.stopped == full.stopped
    le, de = compile_ruleset(live), compile_ruleset(draft)
    expected = sum((classify_safely(le, m).route, classify_safely(le, m).rule_id)
                   != (classify_safely(de, m).route, classify_safely(de, m).rule_id)
                   for m in (Message(text=t, platform="slack", user_id="U1", channel_id="D1", at=at)
                             for _, t, _, _, _, at in rows))
    assert full.route_changed + full.rule_changed == expected


def test_rows_without_a_time_are_replayed_without_windows() -> None:
    live, draft = ruleset_from_dict(routing()), ruleset_from_dict(routing(outage={"active": WEEKDAYS}))
    saturday = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
    tally = _Tally()
    _classify_chunk([(1, "site down", "slack", "U1", "D1"), (2, "site down", "slack", "U1", "D1", saturday)],
                    ReplayClassifier(live), ReplayClassifier(draft), None, tally)
    assert [r.ticket for r in tally.stopped] == [ticket_key(2)] and tally.stopped[0].at == saturday


# -- through `/handoff rules` on a database -------------------------------------------------------------

ALICE = Actor("slack", "U0ALICE", "alice", "C0GEN")
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)  # a Saturday
SATURDAY_NIGHT = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
FRIDAY_MORNING = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
FRIDAY_EVENING = datetime(2026, 11, 27, 19, 30, tzinfo=UTC)  # 20:30 in Berlin (CET)


@dataclass
class World:
    sessionmaker: async_sessionmaker[AsyncSession]
    rules: ActiveRules

    def admin(self, budget: float | None = None) -> RulesAdmin:
        policy = AdminPolicy.build(slack=["U0ALICE"], slack_groups=[], env_admins=[])
        return RulesAdmin(sessionmaker=self.sessionmaker, rules=self.rules, clock=lambda: NOW,
                          access=AdminAccess(policy=policy, directory=None),
                          options=RulesAdminOptions(replay_budget_seconds=budget))

    async def start(self, live: dict[str, Any]) -> None:
        await self.rules.sync_from_file(live)

    async def store(self, text: str, at: datetime) -> str:
        async with self.sessionmaker.begin() as session:
            t = await service.create_ticket(session=session, now=at, platform="slack", user_id="U1", user_name="",
                                            channel_id="D1", thread_ref=None, text=text, route="msp", severity="normal",
                                            queue="msp", rule_id="x", ruleset_version=1, why="", terms=[],
                                            redactions=[], fail_closed=False, conversation=None)
            return ticket_key(t.id)

    async def live_version(self) -> int:
        async with self.sessionmaker() as session:
            return int(await session.scalar(select(RulesetVersion.version).order_by(RulesetVersion.version.desc())
                                            .limit(1)) or 0)

    async def last_audit(self, action: str) -> AuditEntry:
        async with self.sessionmaker() as session:
            return (await session.scalars(select(AuditEntry).where(AuditEntry.action == action)
                                          .order_by(AuditEntry.id.desc()).limit(1))).one()


@pytest.fixture
async def world(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[World]:
    yield World(sessionmaker, ActiveRules(sessionmaker=sessionmaker, clock=lambda: NOW))


def imported(content: dict[str, Any]) -> str:
    return "import ```yaml\n" + routing_yaml(content) + "```"


async def test_draft_diff_and_publish_show_windows_readably(world: World) -> None:
    await world.start(routing(outage={"active": WEEKDAYS}))
    admin = world.admin()
    draft = routing(outage={"active": [{"days": ["mon-fri"], "from": "06:00", "to": "21:00"}]},
                    printer={"mute": WEEKEND}, timezone="Europe/Berlin")
    step = (await admin.handle(ALICE, imported(draft))).text
    assert "~ `outage`: active mon-fri 07:00-20:00 → mon-fri 06:00-21:00" in step, step
    shown = (await admin.handle(ALICE, "diff")).text
    for line in ("~ `outage`: active mon-fri 07:00-20:00 → mon-fri 06:00-21:00",
                 "~ `printer`: mute none → sat, sun 00:00-24:00",
                 "~ timezone UTC → Europe/Berlin: the windows of `outage`, `printer` are read in Europe/Berlin now"):
        assert line in shown, shown
    assert "'from'" not in shown and "{" not in shown
    published = (await admin.handle(ALICE, "publish")).text
    assert ":white_check_mark: Published *v2*" in published, published
    assert "~ timezone UTC → Europe/Berlin" in published and "mute none → sat, sun 00:00-24:00" in published
    audit = await world.last_audit("rules.publish")
    assert "~ `printer`: mute none → sat, sun 00:00-24:00" in audit.detail["diff"]


async def test_publish_needs_confirm_when_a_window_stops_a_stored_page(world: World) -> None:
    await world.start(routing())
    weekend_page = await world.store("site down in leeds", SATURDAY_NIGHT)
    weekday_page = await world.store("site down again", FRIDAY_MORNING)
    admin = world.admin()
    await admin.handle(ALICE, imported(routing(outage={"active": WEEKDAYS})))
    replayed = (await admin.handle(ALICE, "replay")).text
    assert "stop paging: *1*" in replayed and weekend_page in replayed and weekday_page not in replayed, replayed
    refused = (await admin.handle(ALICE, "publish")).text
    assert "needs --confirm" in refused and "(0 newly page, 1 stop paging)" in refused, refused
    assert weekend_page in refused and weekday_page not in refused
    assert await world.live_version() == 1
    assert "Published *v2*" in (await admin.handle(ALICE, "publish --confirm")).text
    assert await world.live_version() == 2


async def test_publish_needs_confirm_when_a_window_widens_to_a_stored_request(world: World) -> None:
    await world.start(routing(outage={"active": WEEKDAYS}))
    weekend = await world.store("site down in leeds", SATURDAY_NIGHT)
    admin = world.admin()
    await admin.handle(ALICE, imported(routing(outage={"active": [*WEEKDAYS, *WEEKEND]})))
    refused = (await admin.handle(ALICE, "publish")).text
    assert "needs --confirm" in refused and "(1 newly page, 0 stop paging)" in refused and weekend in refused, refused


async def test_a_timezone_change_alone_is_replayed(world: World) -> None:
    await world.start(routing(outage={"active": WEEKDAYS}))
    evening = await world.store("site down in leeds", FRIDAY_EVENING)  # 19:30 UTC: paged; 20:30 Berlin: would not
    morning = await world.store("site down again", FRIDAY_MORNING)
    admin = world.admin()
    await admin.handle(ALICE, imported(routing(outage={"active": WEEKDAYS}, timezone="Europe/Berlin")))
    assert "~ timezone UTC → Europe/Berlin: the windows of `outage`" in (await admin.handle(ALICE, "diff")).text
    refused = (await admin.handle(ALICE, "publish")).text
    assert "(0 newly page, 1 stop paging)" in refused and evening in refused and morning not in refused, refused


async def test_mutes_that_do_not_change_paging_publish_without_confirm(world: World) -> None:
    await world.start(routing())
    await world.store("site down in leeds", SATURDAY_NIGHT)
    await world.store("the printer is jammed", SATURDAY_NIGHT)
    await world.store("the printer is jammed", FRIDAY_MORNING)
    admin = world.admin()
    # The printer rule muted at weekends: Saturday's printer request now goes to the MSP (a route change,
    # not a paging change); a mute on the page rule is ignored, so the weekend outage still pages.
    await admin.handle(ALICE, imported(routing(outage={"mute": WEEKEND}, printer={"mute": WEEKEND})))
    replayed = (await admin.handle(ALICE, "replay")).text
    assert "change route: *1* (internal→msp 1)" in replayed and "newly page: *0* · stop paging: *0*" in replayed, replayed
    published = (await admin.handle(ALICE, "publish")).text
    assert "Published *v2*" in published and "1 request(s) change route, 0 newly page, 0 stop paging" in published


async def test_the_replay_budget_still_stops_and_asks_for_confirm(world: World) -> None:
    await world.start(routing())
    for n in range(3):
        await world.store(f"site down {n}", SATURDAY_NIGHT)
    admin = world.admin(budget=0.0)  # spent as soon as the first chunk is read
    await admin.handle(ALICE, imported(routing(outage={"active": WEEKDAYS})))
    refused = (await admin.handle(ALICE, "publish")).text
    assert "needs --confirm" in refused and "the replay stopped after 0 of 3 requests" in refused, refused
