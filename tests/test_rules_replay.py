"""Replay: the shared normalisation and classifier agree with the engine; the changed-rules screen
never hides a change; stored requests are read in keyset chunks within the window (SQLite and PostgreSQL)."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from handlers.rules_edit import diff
from handlers.rules_import import normalise
from handlers.rules_replay import (
    ReplayClassifier,
    _classify_chunk,
    _Tally,
    decisive_changes,
    normalised,
    replay,
    screen_for,
)
from routing.engine import classify_safely, compile_ruleset
from routing.model import Message
from routing.rules import ruleset_from_dict
from routing.text import fold, padded
from storage import service
from storage.models import ticket_key

APP_YAML = Path(__file__).resolve().parent.parent / "app.yaml"
LIVE = normalise(yaml.safe_load(APP_YAML.read_text(encoding="utf-8"))["routing"])
_TERMS = sorted({t.rstrip("*") for r in LIVE["rules"] for t in (r.get("when") or {}).get("any", [])})


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(alphabet=st.characters(max_codepoint=127)), st.text()))
def test_normalised_is_fold_and_padded(text: str) -> None:
    assert normalised(text) == (fold(text), padded(text))


_CHAT = st.lists(st.one_of(st.sampled_from(_TERMS), st.sampled_from(["not", "no", "everyone", "the", "isn't", "!",
                                                                     ".locked", "ünïcödé", "down"]),
                           st.text(max_size=6)), max_size=14).map(" ".join)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_CHAT, st.sampled_from(["slack", "teams"]), st.sampled_from(["", "C1"]))
def test_replay_outcome_is_the_engine_decision(text: str, platform: str, channel: str) -> None:
    engine, replayer = _live_classifiers()
    msg = Message(text=text, platform=platform, channel_id=channel)
    d = classify_safely(engine, msg)
    assert replayer.outcome(msg, *normalised(text)) == (d.route, d.rule_id)


@functools.cache
def _live_classifiers() -> tuple[Any, ReplayClassifier]:
    rs = ruleset_from_dict(LIVE, version=1)
    return compile_ruleset(rs), ReplayClassifier(rs)


# --- the screen never hides a change -------------------------------------------------------------

QUEUES = [{"name": "desk", "route": "msp"}, {"name": "sec", "route": "internal"}, {"name": "oncall", "route": "page"}]
_VOCAB = ["vpn", "wifi", "site", "down", "fire", "alarm", "printer", "not", "everyone"]


@st.composite
def _routing(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(1, 6))
    rules = []
    for i in range(n):
        route = draw(st.sampled_from(["msp", "internal", "page"]))
        when: dict[str, Any] = {"any": draw(st.lists(st.sampled_from(_VOCAB), min_size=1, max_size=3, unique=True))}
        if draw(st.booleans()):
            when["none"] = [draw(st.sampled_from(_VOCAB))]
        if draw(st.integers(0, 4)) == 0:
            when["channels"] = ["C1"]
        rules.append({"id": f"r{i}", "route": route, "queue": {"msp": "desk", "internal": "sec", "page": "oncall"}[route],
                      "when": when, "continue": draw(st.integers(0, 3)) == 0, "enabled": draw(st.integers(0, 5)) > 0,
                      "severity": draw(st.sampled_from(["normal", "high"])),
                      "ignore_negated": draw(st.booleans())})
    default_route = draw(st.sampled_from(["msp", "internal"]))
    rules.append({"id": "default", "route": default_route, "queue": "desk" if default_route == "msp" else "sec"})
    return normalise({"queues": QUEUES, "rules": rules})


@st.composite
def _tweaked(draw: st.DrawFn, old: dict[str, Any]) -> dict[str, Any]:
    """``old`` with routes, enabled, continue and order changed but the same terms (one shared scan)."""
    rules = [dict(r) for r in old["rules"]]
    body = rules[:-1]
    for r in body:
        if draw(st.booleans()):
            route = draw(st.sampled_from(["msp", "internal", "page"]))
            r.update(route=route, queue={"msp": "desk", "internal": "sec", "page": "oncall"}[route])
        r["enabled"] = draw(st.booleans())
        r["continue"] = draw(st.booleans())
    body = draw(st.permutations(body))
    default = dict(rules[-1])
    if draw(st.booleans()):
        default.update(route="internal", queue="sec")
    return normalise({"queues": QUEUES, "rules": [*body, default]})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_routing().flatmap(lambda old: st.tuples(st.just(old), st.one_of(_routing(), _tweaked(old)))).map(list),
       st.lists(st.tuples(st.lists(st.sampled_from(_VOCAB), max_size=6).map(" ".join),
                                                  st.sampled_from(["", "C1"])), min_size=20, max_size=20))
def test_the_changed_rules_screen_never_hides_a_change(pair: list[dict[str, Any]],
                                                       messages: list[tuple[str, str]]) -> None:
    old, new = pair
    live, draft = ruleset_from_dict(old), ruleset_from_dict(new)
    rows = [(i + 1, text, "slack", "U1", channel) for i, (text, channel) in enumerate(messages)]
    lc, dc = ReplayClassifier(live), ReplayClassifier(draft)
    screened, full = _Tally(), _Tally()
    d = diff(old, new)
    changed = decisive_changes(d.added, d.removed, d.moved, (i for i, _ in d.changed), live, draft)
    assert changed <= d.rule_ids
    _classify_chunk(rows, lc, dc, screen_for(live, draft, changed), screened)
    _classify_chunk(rows, lc, dc, None, full)
    assert (screened.route_changed, screened.rule_changed, screened.moves) == (full.route_changed, full.rule_changed,
                                                                               full.moves)
    assert screened.newly == full.newly and screened.stopped == full.stopped
    # and the full replay is what the engine says, message by message
    le, de = compile_ruleset(live), compile_ruleset(draft)
    route_changes = sum(classify_safely(le, m).route != classify_safely(de, m).route
                        for m in (Message(text=t, platform="slack", user_id="U1", channel_id=c) for _, t, _, _, c in rows))
    assert full.route_changed == route_changes


# --- stored requests -----------------------------------------------------------------------------

PAGE_RULE = {"id": "fire", "route": "page", "queue": "oncall", "severity": "critical", "when": {"any": ["fire alarm"]}}
SMALL = normalise({"queues": QUEUES, "rules": [
    {"id": "outage", "route": "page", "queue": "oncall", "when": {"any": ["site down"]}},
    {"id": "vpn", "route": "msp", "queue": "desk", "when": {"any": ["vpn"]}},
    {"id": "default", "route": "msp", "queue": "desk"},
]})


async def _store(sessionmaker: async_sessionmaker[AsyncSession], texts: list[tuple[str, datetime]]) -> list[str]:
    keys = []
    async with sessionmaker.begin() as session:
        for text, at in texts:
            t = await service.create_ticket(session=session, now=at, platform="slack", user_id="U1", user_name="",
                                            channel_id="D1", thread_ref=None, text=text, route="msp", severity="normal",
                                            queue="desk", rule_id="x", ruleset_version=1, why="", terms=[], redactions=[],
                                            fail_closed=False, conversation=None)
            keys.append(ticket_key(t.id))
    return keys


async def test_replay_reads_the_window_in_chunks_and_lists_paging_changes(
        sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    texts = [("the fire alarm went off", now - timedelta(days=1)), ("site down in leeds", now - timedelta(hours=3)),
             ("vpn broken", now - timedelta(hours=2)), ("fire alarm again", now - timedelta(days=30)),
             ("site down again", now - timedelta(minutes=5))] + [(f"hello {i}", now - timedelta(minutes=i)) for i in range(7)]
    keys = await _store(sessionmaker, texts)
    draft_content = {**SMALL, "rules": [PAGE_RULE, *[r for r in SMALL["rules"] if r["id"] != "outage"]]}
    live, draft = ruleset_from_dict(SMALL, version=1), ruleset_from_dict(draft_content, version=2)
    report = await replay(sessionmaker=sessionmaker, live=live, draft=draft, changed=diff(SMALL, draft_content).rule_ids,
                          since=now - timedelta(days=7), days=7, chunk=3)
    assert report.complete and report.total == 11 and report.replayed == 11
    assert [r.ticket for r in report.newly_paging] == [keys[0]]  # the 30-day-old one is outside the window
    assert [r.ticket for r in report.stopped_paging] == [keys[4], keys[1]]  # newest first
    assert report.newly_paging[0].old_rule == "default" and report.newly_paging[0].new_rule == "fire"
    assert report.stopped_paging[0].text == "site down again" and report.stopped_paging[0].new_route == "msp"
    assert report.route_changed == 3 and dict(((a, b), n) for a, b, n in report.moves) == {("msp", "page"): 1,
                                                                                         ("page", "msp"): 2}
    full = await replay(sessionmaker=sessionmaker, live=live, draft=draft, changed=(), since=now - timedelta(days=7),
                        days=7, chunk=5, screen=False)
    assert (full.route_changed, full.newly_paging, full.stopped_paging) == (3, report.newly_paging, report.stopped_paging)


async def test_replay_stops_at_its_time_budget_and_says_so(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    now = datetime.now(UTC)
    await _store(sessionmaker, [(f"site down {i}", now) for i in range(10)])
    live = ruleset_from_dict(SMALL, version=1)
    ticks = iter(range(100))
    report = await replay(sessionmaker=sessionmaker, live=live, draft=live, changed=["outage"],
                          since=now - timedelta(days=1), days=1, chunk=4, budget_seconds=1.5,
                          clock=lambda: float(next(ticks)))
    assert not report.complete and report.total == 10 and report.replayed == 4


async def test_replay_of_an_empty_window(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    live = ruleset_from_dict(SMALL, version=1)
    report = await replay(sessionmaker=sessionmaker, live=live, draft=live, changed=[], since=datetime.now(UTC),
                          days=1)
    assert report.complete and report.total == report.replayed == 0 and report.paging_changes == 0


def test_only_decisive_changes_are_screened() -> None:
    new = {**LIVE, "rules": [dict(r, severity="low", note="quieter") if r["id"] == "default" else r
                             for r in LIVE["rules"]]}
    live, draft = ruleset_from_dict(LIVE), ruleset_from_dict(new)
    d = diff(LIVE, new)
    assert d.rule_ids == {"default"}
    assert decisive_changes(d.added, d.removed, d.moved, (i for i, _ in d.changed), live, draft) == frozenset()
    routed = {**LIVE, "rules": [dict(r, route="internal", queue="it-security") if r["id"] == "default" else r
                                for r in LIVE["rules"]]}
    d = diff(LIVE, routed)
    assert decisive_changes(d.added, d.removed, d.moved, (i for i, _ in d.changed), live,
                            ruleset_from_dict(routed)) == {"default"}
    assert screen_for(live, ruleset_from_dict(routed), ["default"]) is None, "a changed default means replay all"
