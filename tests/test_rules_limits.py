"""Limits of a whole rule set, and an engine that never raises at classify time.

* Regexes that each pass the per-pattern limits can together be more than the one RE2 set the
  engine scans with can hold. That used to validate, then ``compile_ruleset`` raised
  ``re2._re2.Error`` (no ValueError, so the linter did not catch it): the admin got no clear error.
  Validation now builds the same set (:func:`routing.regexes.regex_set`) and names the problem.
* A validated rule set classifies any message without raising: lone surrogates in the text (RE2
  reads UTF-8 only) and clocks at the ends of the calendar (``rules test --at``) used to.
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from handlers.admin_rules import RulesAdmin, RulesAdminOptions
from handlers.commands import Actor
from handlers.rules_access import AdminAccess, AdminPolicy
from handlers.rules_lint import lint
from handlers.rules_state import ActiveRules
from routing import regexes
from routing.engine import compile_ruleset
from routing.model import Message
from routing.regexes import MAX_REGEX_PROGRAM_TOTAL, compile_regex, regex_set
from routing.rules import RuleSetError, ruleset_from_dict
from routing.windows import local_clock
from storage import rules_admin

APP_YAML = Path(__file__).resolve().parent.parent / "app.yaml"
QUEUES = [{"name": "triage", "route": "internal"}, {"name": "oncall", "route": "page"},
          {"name": "desk", "route": "msp"}]
DEFAULT = {"id": "default", "route": "internal", "queue": "triage"}
ADMIN = Actor("slack", "U0ALICE", "alice", "C0GEN")


def alternations(n: int, seed: int = 3) -> list[str]:
    """``n`` regexes of 20 random six-consonant words: ~123 RE2 instructions each, ~140 bytes."""
    rng = random.Random(seed)
    return ["|".join("".join(rng.choice("bcdfghjklmnpqrstvwxz") for _ in range(6)) for _ in range(20))
            for _ in range(n)]


def routing_of(patterns: list[str], **extra: Any) -> dict[str, Any]:
    rules = [{"id": f"r{i}", "route": "internal", "queue": "triage", "when": {"regex": [p]}, **extra}
             for i, p in enumerate(patterns)]
    return {"queues": QUEUES, "rules": [*rules, DEFAULT]}


def up_to(limit: int) -> list[str]:
    """As many :func:`alternations` as fit in ``limit`` RE2 instructions."""
    out: list[str] = []
    total = 0
    for p in alternations(1_000):
        size = compile_regex(p).programsize
        if total + size > limit:
            return out
        out.append(p)
        total += size
    return out


# --- the total of a rule set's regexes -------------------------------------------------------------

def test_a_thousand_regex_rules_are_refused_naming_the_total_and_what_to_do() -> None:
    with pytest.raises(RuleSetError) as refused:
        ruleset_from_dict(routing_of(alternations(1_000)))
    [problem] = refused.value.problems
    assert problem.startswith("rules: too many or too large regexes in total: 1,000 distinct regexes compile to ")
    assert f"the limit for a rule set is {MAX_REGEX_PROGRAM_TOTAL:,}" in problem
    assert "merge or drop some" in problem


def test_regexes_up_to_the_total_validate_compile_and_match() -> None:
    patterns = up_to(MAX_REGEX_PROGRAM_TOTAL)
    classifier = compile_ruleset(ruleset_from_dict(routing_of(patterns)))
    word = patterns[-1].split("|")[7]
    decision = classifier.classify(Message(text=f"error {word} again", platform="slack"))
    assert (decision.rule_id, decision.terms) == (f"r{len(patterns) - 1}", (word,))
    with pytest.raises(RuleSetError, match="too many or too large regexes in total"):
        ruleset_from_dict(routing_of([*patterns, *alternations(1, seed=99)]))


def test_the_regexes_of_disabled_rules_count_too() -> None:
    """Enabling a rule later must never make a validated rule set fail to compile."""
    patterns = alternations(400)
    with pytest.raises(RuleSetError, match="too many or too large regexes in total: 400 distinct"):
        ruleset_from_dict(routing_of(patterns, enabled=False))


def test_a_regex_shared_by_many_rules_counts_once() -> None:
    [pattern] = alternations(1)
    ruleset = ruleset_from_dict(routing_of([pattern] * 1_000))
    assert compile_ruleset(ruleset).rule_count == 1_001


def test_refused_regexes_are_reported_where_they_are_not_in_the_total() -> None:
    with pytest.raises(RuleSetError) as refused:
        ruleset_from_dict(routing_of(["(?=lookahead)", *alternations(2)]))
    assert [p.split(":")[0] for p in refused.value.problems] == ["rules[0].when.regex[0]"]


def test_the_engine_refuses_an_unvalidated_rule_set_with_a_rule_set_error() -> None:
    """Whatever reaches compile_ruleset unvalidated: a RuleSetError (a ValueError), never re2's own error."""
    small = ruleset_from_dict(routing_of(alternations(1)))
    big = [replace(small.rules[0], id=f"r{i}", when=replace(small.rules[0].when, regex=(p,)))
           for i, p in enumerate(alternations(1_000))]
    with pytest.raises(RuleSetError, match="too many or too large regexes in total: 1,000 distinct"):
        compile_ruleset(replace(small, rules=(*big, small.rules[-1])))


def test_when_re2_itself_cannot_build_the_set_the_error_is_as_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    """Above the total RE2 gives up (~96,000 instructions of this shape within 8 MB): said the same way."""
    monkeypatch.setattr(regexes, "MAX_REGEX_PROGRAM_TOTAL", 10**9)
    with pytest.raises(ValueError, match="more than RE2 can scan in one pass within 8 MB: merge or drop some"):
        regex_set(alternations(1_000))


def test_the_linter_reports_the_total_as_an_error() -> None:
    live = ruleset_from_dict(yaml.safe_load(APP_YAML.read_text(encoding="utf-8"))["routing"])
    report = lint(routing_of(alternations(1_000)), live)
    assert [(f.level, f.code) for f in report.findings] == [("error", "invalid")]
    assert "too many or too large regexes in total" in report.findings[0].message


def test_the_default_rules_use_well_under_half_the_total() -> None:
    routing = yaml.safe_load(APP_YAML.read_text(encoding="utf-8"))["routing"]
    patterns = dict.fromkeys(p for r in routing["rules"] for p in r.get("when", {}).get("regex", []))
    used = sum(compile_regex(p).programsize for p in patterns)
    assert 0 < used < MAX_REGEX_PROGRAM_TOTAL / 2, used


@pytest.fixture
async def admin(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[RulesAdmin]:
    def clock() -> datetime:
        return datetime(2026, 11, 28, 12, 0, tzinfo=UTC)

    rules = ActiveRules(sessionmaker=sessionmaker, clock=clock)
    await rules.sync_from_file(yaml.safe_load(APP_YAML.read_text(encoding="utf-8"))["routing"])
    yield RulesAdmin(sessionmaker=sessionmaker, rules=rules, clock=clock,
                     access=AdminAccess(policy=AdminPolicy.build(slack=[ADMIN.user_id])),
                     options=RulesAdminOptions(replay_budget_seconds=None))


async def test_rules_import_of_too_many_regexes_tells_the_admin(admin: RulesAdmin,
                                                                sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    """The case of the bug: ~140 kB of regex rules fit `rules import`; the answer now says what is wrong."""
    text = json.dumps(routing_of(alternations(800)), separators=(",", ":"))  # YAML reads JSON
    assert 140_000 < len(text) < 200_000  # MAX_IMPORT_CHARS
    answer = await admin.handle(ADMIN, f"import ```yaml\n{text}```")
    assert "too many or too large regexes in total: 800 distinct regexes" in answer.text, answer.text[:500]
    assert "merge or drop some" in answer.text
    async with sessionmaker() as session:
        assert await rules_admin.get_draft(session=session, owner="slack:U0ALICE") is None


# --- a stored version this release cannot use ------------------------------------------------------

#: As stored by a release with a limit this one does not have: a thousand regexes, over today's total.
TOO_MANY = routing_of(alternations(1_000))


async def _store(sessionmaker: async_sessionmaker[AsyncSession], content: dict[str, Any], note: str) -> int:
    from storage import service

    async with sessionmaker.begin() as session:
        saved = await service.save_ruleset(session=session, content=content, content_hash=note, source="chat",
                                           author="slack:U0ALICE", note=note, now=datetime(2026, 11, 28, tzinfo=UTC))
        return saved.version


async def test_start_up_skips_a_stored_version_this_release_refuses(
        sessionmaker: async_sessionmaker[AsyncSession], caplog: pytest.LogCaptureFixture) -> None:
    """An upgrade that tightens a limit (or a downgrade after rules used a newer feature) must not stop
    the service: it starts on the newest version it can use, and says which one it refused and why."""
    routing = yaml.safe_load(APP_YAML.read_text(encoding="utf-8"))["routing"]
    first = ActiveRules(sessionmaker=sessionmaker, clock=lambda: datetime(2026, 11, 28, tzinfo=UTC))
    await first.sync_from_file(routing)
    good = first.version
    bad = await _store(sessionmaker, TOO_MANY, "stored by another release")
    restarted = ActiveRules(sessionmaker=sessionmaker, clock=lambda: datetime(2026, 11, 28, tzinfo=UTC))
    with caplog.at_level("ERROR", logger="handlers.rules_state"):
        await restarted.sync_from_file(routing)
    assert restarted.version == good < bad
    [record] = [r for r in caplog.records if r.levelname == "ERROR"]
    assert f"version {bad} cannot be used" in record.getMessage()
    assert "too many or too large regexes in total" in record.getMessage()
    assert f"using version {good}" in record.getMessage()


async def test_a_running_replica_keeps_its_rules_logs_once_and_takes_the_next_good_version(
        sessionmaker: async_sessionmaker[AsyncSession], caplog: pytest.LogCaptureFixture) -> None:
    rules = ActiveRules(sessionmaker=sessionmaker, clock=lambda: datetime(2026, 11, 28, tzinfo=UTC))
    await rules.sync_from_file(yaml.safe_load(APP_YAML.read_text(encoding="utf-8"))["routing"])
    good = rules.version
    bad = await _store(sessionmaker, TOO_MANY, "stored by another release")
    with caplog.at_level("ERROR", logger="handlers.rules_state"):
        assert await rules.refresh() is False
        assert await rules.refresh() is False  # polled again: already reported
    assert rules.version == good
    assert [r.getMessage().split(" (")[0] for r in caplog.records if r.levelname == "ERROR"] == [
        f"stored rules version {bad} cannot be used by this release"]
    fixed = await _store(sessionmaker, routing_of(alternations(3)), "fixed")
    assert await rules.refresh() is True
    assert rules.version == fixed


async def test_a_replica_takes_the_newest_usable_version_under_a_refused_one(
        sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    rules = ActiveRules(sessionmaker=sessionmaker, clock=lambda: datetime(2026, 11, 28, tzinfo=UTC))
    await rules.sync_from_file(yaml.safe_load(APP_YAML.read_text(encoding="utf-8"))["routing"])
    usable = await _store(sessionmaker, routing_of(alternations(3)), "published on another replica")
    await _store(sessionmaker, TOO_MANY, "stored by another release")  # both before this replica polls
    assert await rules.refresh() is True
    assert rules.version == usable


async def test_the_rules_commands_see_the_usable_version_and_can_replace_the_refused_one(
        admin: RulesAdmin, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    """The way out the error names: `rules history` shows what is live; a publish from chat replaces it."""
    async def live_version() -> str:
        history = (await admin.handle(ADMIN, "history")).text
        return next(line for line in history.splitlines() if "(live)" in line).split("v", 1)[1].split()[0].strip("*")

    good = await live_version()
    bad = await _store(sessionmaker, TOO_MANY, "stored by another release")
    assert f"v{bad}" in (await admin.handle(ADMIN, "history")).text
    assert await live_version() == good  # not the refused v{bad}
    assert "default" in (await admin.handle(ADMIN, "show default")).text
    assert "already" in (await admin.handle(ADMIN, f"rollback {good} --confirm")).text  # it is what is live
    assert "disabled" in (await admin.handle(ADMIN, "disable patching")).text
    answer = await admin.handle(ADMIN, "publish --confirm")
    assert "Published" in answer.text, answer.text
    assert int(await live_version()) == bad + 1


async def test_with_no_usable_version_start_up_fails_saying_what_to_do(
        sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    await _store(sessionmaker, TOO_MANY, "stored by another release")
    rules = ActiveRules(sessionmaker=sessionmaker, clock=lambda: datetime(2026, 11, 28, tzinfo=UTC))
    with pytest.raises(RuntimeError, match="fix app.yaml and restart"):
        await rules.refresh(force=True)


# --- classify never raises for a validated rule set -------------------------------------------------

WINDOWED = ruleset_from_dict({
    "timezone": "Pacific/Kiritimati", "queues": QUEUES,
    "rules": [{"id": "office", "route": "msp", "queue": "desk", "when": {"regex": ["print"], "any": ["printer"]},
               "active": [{"days": ["mon-fri"], "from": "08:00", "to": "18:00"}],
               "mute": [{"from": "12:00", "to": "13:00"}]},
              {"id": "night", "route": "internal", "queue": "triage", "when": {"regex": [r"(\w+\s?)+ down$"]},
               "active": [{"from": "22:00", "to": "06:00"}]},
              DEFAULT]})
SHIPPED = compile_ruleset(ruleset_from_dict(yaml.safe_load(APP_YAML.read_text(encoding="utf-8"))["routing"]))
CLASSIFIERS = [SHIPPED, compile_ruleset(WINDOWED)]


def test_lone_surrogates_are_classified_not_failed_closed() -> None:
    """A lone surrogate made RE2's UTF-8 encoding raise: the message failed closed instead of routing."""
    cases = [("the printer \ud800 is jammed", datetime(2026, 1, 4, 20, tzinfo=UTC), "office"),  # Monday 10:00 there
             ("all \udfff is down", datetime(2026, 1, 5, 9, tzinfo=UTC), "night")]  # Monday 23:00 there
    for text, at, rule in cases:
        decision = CLASSIFIERS[1].classify(Message(text=text, platform="slack", at=at))
        assert (decision.rule_id, decision.fail_closed) == (rule, False), decision.why
    paged = SHIPPED.classify(Message(text="all our files were renamed to .locked \ud83d, ransomware", platform="slack"))
    assert paged.route == "page" and not paged.fail_closed


@pytest.mark.parametrize("at", [datetime(9999, 12, 31, 23, 59, tzinfo=UTC), datetime(1, 1, 1, tzinfo=UTC),
                                datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14)))])
def test_clocks_at_the_ends_of_the_calendar_are_read(at: datetime) -> None:
    """``at.astimezone`` overflows within hours of year 1 and 9999; the wall clock is shifted by hand."""
    decision = CLASSIFIERS[1].classify(Message(text="printer jammed", platform="slack", at=at))
    assert decision.rule_id in ("office", "default") and not decision.fail_closed
    weekday, minute = local_clock(at, ZoneInfo("Pacific/Kiritimati"))
    assert 0 <= weekday < 7 and 0 <= minute < 24 * 60


def test_the_hand_shifted_clock_agrees_with_astimezone_where_both_work() -> None:
    tz = ZoneInfo("Pacific/Kiritimati")
    at = datetime(9999, 12, 31, 9, 59, tzinfo=UTC)  # +14:00 is still 9999-12-31 23:59 there
    assert local_clock(at, tz) == (at.astimezone(tz).weekday(), 23 * 60 + 59)
    assert local_clock(datetime(9999, 12, 31, 10, 0, tzinfo=UTC), tz) == (5, 0)  # the Saturday after, by hand


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(st.characters(), max_size=300) | st.text(st.characters(categories=["Cs", "Ll", "Zs", "Po"]),
                                                              max_size=300),
       at=st.none() | st.datetimes(timezones=st.timezones() | st.just(UTC)),
       platform=st.sampled_from(["slack", "teams", "console", "other"]),
       channel=st.text(max_size=12), groups=st.frozensets(st.text(max_size=8), max_size=3))
def test_classify_never_raises(text: str, at: datetime | None, platform: str, channel: str,
                               groups: frozenset[str]) -> None:
    for classifier in CLASSIFIERS:
        msg = Message(text=text, platform=platform, channel_id=channel, user_groups=groups, at=at)
        decision = classifier.classify(msg)
        assert decision.rule_id and not decision.fail_closed
