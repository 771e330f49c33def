"""Rule time windows (``active:`` / ``mute:``): schema, engine semantics, and how chat shows them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from handlers.admin_rules import RulesAdmin, RulesAdminOptions
from handlers.commands import Actor
from handlers.rules_access import AdminAccess, AdminPolicy
from handlers.rules_edit import edit_rule
from handlers.rules_grammar import RuleChange
from handlers.rules_import import import_block, load_import
from handlers.rules_lint import lint, shadowed
from handlers.rules_render import routing_yaml, rule_line
from handlers.rules_state import ActiveRules
from routing.engine import FAIL_CLOSED_RULE, classify_safely, compile_ruleset
from routing.model import Message, Window
from routing.rules import RuleSetError, content_hash, ruleset_from_dict, ruleset_to_dict

BERLIN = ZoneInfo("Europe/Berlin")
QUEUES = [
    {"name": "msp", "route": "msp"},
    {"name": "infra", "route": "internal"},
    {"name": "oncall", "route": "page"},
]
DEFAULT = {"id": "default", "route": "msp", "queue": "msp"}

#: Out of hours, VPN trouble goes to in-house IT (nights Mon-Fri, all weekend); printers are muted on
#: the weekend; the outage page rule only pages on weekdays and its `mute` is ignored (page tier).
ROUTING: dict[str, Any] = {
    "timezone": "Europe/Berlin",
    "queues": QUEUES,
    "rules": [
        {"id": "outage", "route": "page", "queue": "oncall", "when": {"any": ["site down"]},
         "active": [{"days": ["mon-fri"], "from": "07:00", "to": "20:00"}],
         "mute": [{"from": "00:00", "to": "24:00"}]},
        {"id": "ransomware", "route": "page", "queue": "oncall", "when": {"any": ["ransomware"]},
         "mute": [{"from": "00:00", "to": "24:00"}]},
        {"id": "vpn-night", "route": "internal", "queue": "infra", "when": {"any": ["vpn"]},
         "active": [{"days": ["mon", "tue", "wed", "thu", "fri"], "from": "22:00", "to": "06:00"},
                    {"days": ["sat", "sun"], "from": "00:00", "to": "24:00"}]},
        {"id": "printer", "route": "internal", "queue": "infra", "when": {"any": ["printer"]},
         "mute": [{"days": ["saturday", "Sunday"], "from": "00:00", "to": "24:00"}]},
        {"id": "printer-fanout", "route": "internal", "queue": "infra", "when": {"any": ["toner"]}, "continue": True,
         "active": [{"from": "09:00", "to": "17:00"}]},
        {"id": "toner", "route": "msp", "queue": "msp", "when": {"any": ["toner"]}},
        DEFAULT,
    ],
}
RULES = ruleset_from_dict(ROUTING, version=3)
CLASSIFIER = compile_ruleset(RULES)


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN)  # type: ignore[arg-type,misc]


def decide(text: str, at: datetime | None) -> Any:
    return CLASSIFIER.classify(Message(text=text, at=at))


# -- engine ----------------------------------------------------------------------------------------

# 2026-11-27 is a Friday, 2026-11-28 a Saturday, 2026-11-30 a Monday.
@pytest.mark.parametrize(
    ("text", "at", "rule"),
    [
        # active: inside one of the windows matches, outside falls through to the next rule / default.
        ("vpn broken", berlin(2026, 11, 30, 23, 0), "vpn-night"),
        ("vpn broken", berlin(2026, 11, 30, 5, 59), "default"),   # Monday 05:59: Sunday is all-day, not overnight
        ("vpn broken", berlin(2026, 12, 1, 5, 59), "vpn-night"),  # Tuesday 05:59: Monday night's window
        ("vpn broken", berlin(2026, 12, 1, 6, 0), "default"),     # `to` is exclusive
        ("vpn broken", berlin(2026, 12, 1, 12, 0), "default"),
        ("vpn broken", berlin(2026, 11, 28, 12, 0), "vpn-night"),  # Saturday
        ("vpn broken", berlin(2026, 11, 28, 3, 0), "vpn-night"),   # Friday 22:00-06:00 runs into Saturday
        ("vpn broken", None, "vpn-night"),                          # no time: windows not applied
        # mute: muted rules fall through.
        ("printer jammed", berlin(2026, 11, 27, 12, 0), "printer"),
        ("printer jammed", berlin(2026, 11, 28, 12, 0), "default"),
        ("printer jammed", None, "printer"),
        # page tier: `mute` is ignored, `active` honoured.
        ("ransomware on my screen", berlin(2026, 11, 28, 3, 0), "ransomware"),
        ("the site down since 9", berlin(2026, 11, 27, 12, 0), "outage"),
        ("the site down since 9", berlin(2026, 11, 28, 12, 0), "default"),
        ("the site down since 9", berlin(2026, 11, 27, 20, 0), "default"),
    ],
)
def test_windows_decide_whether_a_rule_fires(text: str, at: datetime | None, rule: str) -> None:
    assert decide(text, at).rule_id == rule


def test_windows_are_read_in_the_routing_timezone_across_dst() -> None:
    # Weekdays 07:00-20:00 Berlin is 06:00 UTC in winter and 05:00 UTC in summer.
    assert decide("site down", datetime(2026, 11, 27, 6, 0, tzinfo=UTC)).rule_id == "outage"
    assert decide("site down", datetime(2026, 11, 27, 5, 59, tzinfo=UTC)).rule_id == "default"
    assert decide("site down", datetime(2026, 3, 27, 6, 0, tzinfo=UTC)).rule_id == "outage"      # winter (CET)
    assert decide("site down", datetime(2026, 3, 30, 5, 0, tzinfo=UTC)).rule_id == "outage"      # summer (CEST)
    assert decide("site down", datetime(2026, 3, 30, 4, 59, tzinfo=UTC)).rule_id == "default"
    utc = compile_ruleset(ruleset_from_dict({**ROUTING, "timezone": "UTC"}))
    assert utc.classify(Message(text="site down", at=datetime(2026, 3, 30, 5, 0, tzinfo=UTC))).rule_id == "default"


def test_continue_and_first_match_still_hold_with_windows() -> None:
    inside = decide("toner empty", berlin(2026, 11, 27, 10, 0))
    assert [m.rule_id for m in inside.matches] == ["printer-fanout", "toner"]
    assert inside.route == "internal"
    outside = decide("toner empty", berlin(2026, 11, 27, 18, 0))
    assert [m.rule_id for m in outside.matches] == ["toner"]
    assert "printer-fanout (outside its active hours)" in outside.why


def test_why_names_the_rules_skipped_by_the_clock() -> None:
    muted = decide("printer jammed", berlin(2026, 11, 28, 12, 0))
    assert muted.why == "no other rule matched, so the default rule default applies; not at this time: printer (muted)"
    assert "not at this time" not in decide("printer jammed", berlin(2026, 11, 27, 12, 0)).why


def test_fail_closed_still_holds() -> None:
    d = classify_safely(CLASSIFIER, Message(text=None, at=berlin(2026, 11, 27, 12, 0)))  # type: ignore[arg-type]
    assert d.fail_closed and d.rule_id == FAIL_CLOSED_RULE and d.route == "internal" and d.queue == "infra"


def test_naive_message_time_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        Message(text="vpn", at=datetime(2026, 11, 27, 12, 0))


class _CountingZone(tzinfo):
    """UTC that counts how often the engine asks it for the offset (it does so to read the clock)."""

    def __init__(self) -> None:
        self.calls = 0

    def tzname(self, dt: datetime | None) -> str:
        return "UTC"

    def utcoffset(self, dt: datetime | None) -> timedelta:
        self.calls += 1
        return timedelta(0)

    def dst(self, dt: datetime | None) -> timedelta:
        return timedelta(0)


def test_the_clock_is_read_only_for_rules_that_matched_textually() -> None:
    zone = _CountingZone()
    msg = Message(text="my laptop fan is loud", at=datetime(2026, 11, 27, 12, 0, tzinfo=zone))
    before = zone.calls
    assert CLASSIFIER.classify(msg).rule_id == "default"
    assert zone.calls == before, "no windowed rule matched the text, so no clock was read"
    msg = Message(text="vpn broken", at=datetime(2026, 11, 27, 12, 0, tzinfo=zone))
    before = zone.calls
    CLASSIFIER.classify(msg)
    assert zone.calls > before


def test_window_contains_table() -> None:
    overnight = Window(start=22 * 60, end=6 * 60, days=frozenset({4}))  # Friday night
    assert overnight.contains(4, 23 * 60) and overnight.contains(5, 3 * 60)
    assert not overnight.contains(4, 3 * 60) and not overnight.contains(5, 23 * 60)
    sunday_night = Window(start=22 * 60, end=6 * 60, days=frozenset({6}))
    assert sunday_night.contains(0, 60), "Sunday night runs into Monday (the week wraps)"
    whole = Window(start=0, end=24 * 60)
    assert whole.contains(3, 0) and whole.contains(3, 24 * 60 - 1)


# -- schema ----------------------------------------------------------------------------------------

def rules_with(rule: dict[str, Any], **routing: Any) -> dict[str, Any]:
    return {"queues": QUEUES, "rules": [rule, DEFAULT], **routing}


VPN = {"id": "vpn", "route": "internal", "queue": "infra", "when": {"any": ["vpn"]}}


def test_yaml_forms_are_normalised() -> None:
    text = """
    timezone: America/New_York
    queues: [{name: msp, route: msp}, {name: infra, route: internal}]
    rules:
      - id: vpn
        route: internal
        queue: infra
        when: {any: [vpn]}
        active:
          - {days: [Mon-Wed, fri], from: "08:00", to: 18:00}   # 18:00 unquoted: YAML 1.1 reads 1080
          - {days: sat, from: 22:30, to: "24:00"}
        mute:
          - {from: 12:00, to: "13:00"}
      - {id: default, route: msp, queue: msp}
    """
    data = yaml.safe_load(text)
    assert data["rules"][0]["active"][0]["to"] == 1080
    rs = ruleset_from_dict(data)
    assert rs.timezone == "America/New_York"
    assert rs.rules[0].active == (Window(start=480, end=1080, days=frozenset({0, 1, 2, 4})),
                                  Window(start=1350, end=1440, days=frozenset({5})))
    out = ruleset_to_dict(rs)
    assert list(out) == ["timezone", "queues", "rules"]
    assert out["rules"][0]["active"] == [{"days": ["mon", "tue", "wed", "fri"], "from": "08:00", "to": "18:00"},
                                         {"days": ["sat"], "from": "22:30", "to": "24:00"}]
    assert out["rules"][0]["mute"] == [{"from": "12:00", "to": "13:00"}]
    assert ruleset_from_dict(out) == rs
    assert ruleset_to_dict(ruleset_from_dict(yaml.safe_load(yaml.safe_dump(out)))) == out


def test_rule_sets_without_windows_keep_their_form_and_hash() -> None:
    plain = rules_with(VPN)
    out = ruleset_to_dict(ruleset_from_dict(plain))
    assert "timezone" not in out and "active" not in out["rules"][0] and "mute" not in out["rules"][0]
    assert content_hash(out) == content_hash(ruleset_to_dict(ruleset_from_dict({**plain, "timezone": "UTC"})))
    assert ruleset_from_dict(plain).timezone == "UTC"


@pytest.mark.parametrize(
    ("routing", "problem"),
    [
        (rules_with({**VPN, "active": [{"from": "8:00", "to": "18:00"}]}),
         "rules[0].active[0].from: '8:00' is not a time of day as HH:MM"),
        (rules_with({**VPN, "active": [{"from": "08:00", "to": "25:00"}]}), "rules[0].active[0].to:"),
        (rules_with({**VPN, "mute": [{"from": "24:00", "to": "06:00"}]}), "rules[0].mute[0].from:"),
        (rules_with({**VPN, "mute": [{"days": ["mon", "funday"], "from": "08:00", "to": "09:00"}]}),
         "rules[0].mute[0].days: unknown weekday 'funday'"),
        (rules_with({**VPN, "mute": [{"days": [], "from": "08:00", "to": "09:00"}]}),
         "rules[0].mute[0].days: an empty list of days never matches"),
        (rules_with({**VPN, "active": [{"from": "08:00", "to": "08:00"}]}),
         "rules[0].active[0]: `from` and `to` are both '08:00', an empty window"),
        (rules_with({**VPN, "active": [{"from": "08:00"}]}), "rules[0].active[0].to: Field required"),
        (rules_with({**VPN, "active": [{"from": "08:00", "to": "09:00", "tz": "UTC"}]}),
         "rules[0].active[0].tz: unknown key"),
        (rules_with({**VPN, "active": [{"from": 30, "to": "09:00"}]}), 'rules[0].active[0].from: 30 is not a time of day'),
        (rules_with({**VPN, "active": [{"from": True, "to": "09:00"}]}), "rules[0].active[0].from: True is not"),
        (rules_with(VPN, timezone="Europe/Atlantis"), "timezone: unknown IANA time zone 'Europe/Atlantis'"),
        ({"queues": QUEUES, "rules": [VPN, {**DEFAULT, "mute": [{"from": "00:00", "to": "06:00"}]}]},
         ("rules[1]: the default rule takes whatever no other rule takes, at any time: it cannot have `active` or "
          "`mute` windows")),
    ],
)
def test_bad_windows_are_refused_with_key_paths(routing: dict[str, Any], problem: str) -> None:
    with pytest.raises(RuleSetError) as caught:
        ruleset_from_dict(routing)
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems


def test_windows_do_not_count_as_conditions() -> None:
    timed_only = {"id": "nights", "route": "internal", "queue": "infra", "active": [{"from": "22:00", "to": "06:00"}]}
    with pytest.raises(RuleSetError, match="has no `when` conditions"):
        ruleset_from_dict(rules_with(timed_only))


# -- how chat shows them ---------------------------------------------------------------------------

def test_list_line_shows_the_windows() -> None:
    by_id = {r.id: r for r in RULES.rules}
    assert rule_line(3, by_id["vpn-night"]).endswith("· only mon-fri 22:00-06:00; sat, sun 00:00-24:00")
    assert rule_line(4, by_id["printer"]).endswith("· muted sat, sun 00:00-24:00")
    assert "muted 00:00-24:00 (ignored: page rules)" in rule_line(1, by_id["outage"])
    assert "only" not in rule_line(7, by_id["default"]) and "muted" not in rule_line(7, by_id["default"])


def test_export_import_round_trip_keeps_windows_and_timezone() -> None:
    content = ruleset_to_dict(RULES)
    exported = routing_yaml(content)
    assert "timezone: Europe/Berlin" in exported and "active:" in exported
    assert load_import(exported) == content
    assert load_import(import_block("```yaml\n" + exported + "```", "")) == content


def test_edits_keep_windows() -> None:
    content = ruleset_to_dict(RULES)
    edited = edit_rule(content, "vpn-night", RuleChange(add={"any": ("wireguard",)}, severity="high"))
    rule = next(r for r in edited["rules"] if r["id"] == "vpn-night")
    assert rule["active"] == next(r for r in content["rules"] if r["id"] == "vpn-night")["active"]
    assert rule["when"]["any"] == ["vpn", "wireguard"] and edited["timezone"] == "Europe/Berlin"


def test_a_windowed_rule_does_not_shadow_later_rules() -> None:
    night: dict[str, Any] = {"id": "vpn-night", "route": "internal", "queue": "infra", "when": {"any": ["vpn"]}}
    day = {"id": "vpn-day", "route": "msp", "queue": "msp", "when": {"any": ["vpn"]}}
    both = {"queues": QUEUES, "rules": [{**night, "active": [{"from": "22:00", "to": "06:00"}]}, day, DEFAULT]}
    assert shadowed(ruleset_from_dict(both)) == {}
    plain = {"queues": QUEUES, "rules": [night, day, DEFAULT]}
    assert shadowed(ruleset_from_dict(plain)) == {"vpn-day": ("vpn-night",)}
    assert lint(both, None, messages=()).ok


def test_lint_warns_about_windows_on_page_rules() -> None:
    report = lint(ruleset_to_dict(RULES), None, messages=())
    codes = {(f.code, f.rule_id) for f in report.warnings}
    assert ("page-window", "outage") in codes
    assert ("page-mute", "outage") in codes and ("page-mute", "ransomware") in codes
    assert not any(f.rule_id == "vpn-night" for f in report.findings)


# -- end to end through `/handoff rules` on a database ---------------------------------------------

ALICE = Actor("slack", "U0ALICE", "alice", "C0GEN")


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)  # a Saturday

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def admin(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[tuple[RulesAdmin, Clock]]:
    clock = Clock()
    rules = ActiveRules(sessionmaker=sessionmaker, clock=clock)
    plain = {"queues": QUEUES, "rules": [{**VPN, "id": "vpn-day", "route": "msp", "queue": "msp"}, DEFAULT]}
    await rules.sync_from_file(plain)
    policy = AdminPolicy.build(slack=["U0ALICE"], slack_groups=[], env_admins=[])
    yield RulesAdmin(sessionmaker=sessionmaker, rules=rules, clock=clock,
                     access=AdminAccess(policy=policy, directory=None),
                     options=RulesAdminOptions(replay_budget_seconds=None)), clock


async def test_chat_import_list_show_test_and_export_with_windows(admin: tuple[RulesAdmin, Clock]) -> None:
    handler, _ = admin
    pasted = routing_yaml(ruleset_to_dict(RULES))
    imported = await handler.handle(ALICE, "import ```yaml\n" + pasted + "```")
    assert "Draft: imported" in imported.text, imported.text

    listing = (await handler.handle(ALICE, "list --draft")).text
    assert "Time windows are in Europe/Berlin." in listing and "only mon-fri 22:00-06:00" in listing
    shown = (await handler.handle(ALICE, "show vpn-night --draft")).text
    assert "time windows in Europe/Berlin" in shown and "active:" in shown and "22:00" in shown

    # Saturday 13:00 in Berlin: the weekend window is open.
    tested = (await handler.handle(ALICE, 'test "vpn broken"')).text
    assert "via `vpn-night`" in tested and "at 2026-11-28 12:00 UTC" in tested
    # Monday noon: outside, so the draft falls through to its default.
    monday = (await handler.handle(ALICE, 'test "vpn broken" --at 2026-11-30T12:00:00Z')).text
    assert "via `vpn-night`" not in monday and "vpn-night (outside its active hours)" in monday

    exported = (await handler.handle(ALICE, "export --draft")).text
    assert "timezone: Europe/Berlin" in exported and "active:" in exported and "22:00" in exported
