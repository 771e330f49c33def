"""The linter: shadowed rules (exact, conservative, and sound by property), canonical critical messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handlers.rules_edit import edit_rule, set_enabled
from handlers.rules_grammar import parse
from handlers.rules_import import normalise
from handlers.rules_lint import CRITICAL_MESSAGES, lint, shadowed
from routing.engine import compile_ruleset
from routing.model import Message
from routing.redact import redact
from routing.rules import ruleset_from_dict

QUEUES = [{"name": "desk", "route": "msp"}, {"name": "sec", "route": "internal"}, {"name": "oncall", "route": "page"}]
APP_YAML = Path(__file__).resolve().parent.parent / "app.yaml"


def rules(*items: dict[str, Any]) -> Any:
    full = [{"queue": {"msp": "desk", "internal": "sec", "page": "oncall"}[r.get("route", "msp")], "route": "msp", **r}
            for r in items]
    return ruleset_from_dict({"queues": QUEUES, "rules": [*full, {"id": "default", "route": "msp", "queue": "desk"}]})


def r(rid: str, route: str = "msp", /, **when: Any) -> dict[str, Any]:
    extra: dict[str, Any] = {k: when.pop(k) for k in ("continue", "enabled", "ignore_negated") if k in when}
    return {"id": rid, "route": route, "when": when, **extra}


@pytest.mark.parametrize(("ruleset", "expected"), [
    # an earlier any-only rule covering every any-term of a later rule
    (rules(r("a", any=["vpn", "wifi"]), r("b", any=["vpn client", "wifi"])), {"b": ("a",)}),
    # covered by two earlier rules together
    (rules(r("a", any=["vpn"]), r("c", any=["wifi"]), r("b", any=["vpn", "wifi"])), {"b": ("a", "c")}),
    # one term not covered: can fire
    (rules(r("a", any=["vpn"]), r("b", any=["vpn", "wifi"])), {}),
    # one `all` term covered is enough
    (rules(r("a", any=["printer"]), r("b", all=["printer", "jam"])), {"b": ("a",)}),
    # an earlier rule with `none` terms, a regex, a filter or `continue` does not always fire
    (rules(r("a", any=["vpn"], none=["test"]), r("b", any=["vpn"])), {}),
    (rules(r("a", any=["vpn"], regex=["x"]), r("b", any=["vpn"])), {}),
    (rules(r("a", any=["vpn"], channels=["C1"]), r("b", any=["vpn"])), {}),
    (rules(r("a", any=["vpn"], **{"continue": True}), r("b", any=["vpn"])), {}),
    (rules(r("a", any=["vpn"], enabled=False), r("b", any=["vpn"])), {}),
    # prefix terms: "encrypt*" covers "encrypted files"; "encrypt" does not cover "encrypt*"
    (rules(r("a", any=["encrypt*"]), r("b", any=["encrypted files"])), {"b": ("a",)}),
    (rules(r("a", any=["encrypt"]), r("b", any=["encrypt*"])), {}),
    (rules(r("a", any=["down"]), r("b", any=["site down"])), {"b": ("a",)}),
    # negation: a rule that ignores negated terms only covers from the same start, and only a rule
    # that also ignores them ("not site down" fires b but not a)
    (rules(r("a", any=["down"], ignore_negated=True), r("b", any=["site down"])), {}),
    (rules(r("a", any=["down"], ignore_negated=True), r("b", any=["site down"], ignore_negated=True)), {}),
    (rules(r("a", any=["site"], ignore_negated=True), r("b", any=["site down"], ignore_negated=True)), {"b": ("a",)}),
    (rules(r("a", any=["site"], ignore_negated=True), r("b", any=["site down"])), {}),
    (rules(r("a", any=["site"]), r("b", any=["site down"], ignore_negated=True)), {"b": ("a",)}),
    # page rules are evaluated first: a page rule later in the file is not shadowed by an msp rule
    # above it (it shadows that rule instead)...
    (rules(r("a", any=["fire"]), r("b", "page", any=["fire"])), {"a": ("b",)}),
    # ...but shadows an msp rule that comes earlier in the file
    (rules(r("b", any=["fire alarm"]), r("a", "page", any=["fire"])), {"b": ("a",)}),
    # rules without terms are never reported
    (rules(r("a", any=["vpn"]), r("b", regex=["vpn"])), {}),
])
def test_shadowed(ruleset: Any, expected: dict[str, tuple[str, ...]]) -> None:
    assert shadowed(ruleset) == expected


_VOCAB = ["vpn", "wifi", "site", "down", "fire", "not", "no", "alarm", "printer", "jam"]
_TERM = st.lists(st.sampled_from(_VOCAB[:5] + _VOCAB[6:]), min_size=1, max_size=2).map(" ".join).map(
    lambda t: t) | st.sampled_from(["encrypt*", "site*", "fi*"])


@st.composite
def _rule(draw: st.DrawFn, i: int) -> dict[str, Any]:
    when: dict[str, Any] = {"any": draw(st.lists(_TERM, min_size=1, max_size=3, unique=True))}
    if draw(st.booleans()):
        when["all"] = draw(st.lists(_TERM, min_size=1, max_size=2, unique=True))
    if draw(st.integers(0, 4)) == 0:
        when["none"] = [draw(_TERM)]
    rule: dict[str, Any] = {"id": f"r{i}", "route": draw(st.sampled_from(["msp", "internal", "page"])), "when": when}
    rule["ignore_negated"] = draw(st.booleans())
    rule["continue"] = draw(st.integers(0, 5)) == 0
    return rule


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(2, 6).flatmap(lambda n: st.tuples(*(_rule(i) for i in range(n)))),
       st.lists(st.lists(st.sampled_from(_VOCAB + ["encrypted", "fires", "sites"]), min_size=1, max_size=8).map(" ".join),
                min_size=30, max_size=30))
def test_a_rule_reported_shadowed_never_fires(items: tuple[dict[str, Any], ...], messages: list[str]) -> None:
    ruleset = rules(*items)
    claimed = shadowed(ruleset)
    classifier = compile_ruleset(ruleset)
    for text in messages:
        fired = {m.rule_id for m in classifier.classify(Message(text=text)).matches}
        assert not fired & set(claimed), (text, claimed, fired)


def test_app_yaml_has_no_shadowed_rules_and_pages_every_canonical_message() -> None:
    routing = yaml.safe_load(APP_YAML.read_text(encoding="utf-8"))["routing"]
    live = ruleset_from_dict(routing)
    assert shadowed(live) == {}
    classifier = compile_ruleset(live)
    for text in CRITICAL_MESSAGES:
        assert classifier.classify(Message(text=text, platform="slack")).pages, text
    assert 15 <= len(CRITICAL_MESSAGES) <= 20
    assert lint(normalise(routing), live).findings == ()


def _live() -> tuple[dict[str, Any], Any]:
    content = normalise(yaml.safe_load(APP_YAML.read_text(encoding="utf-8"))["routing"])
    return content, ruleset_from_dict(content)


def test_a_draft_that_stops_a_critical_message_paging_is_an_error_naming_it() -> None:
    content, live = _live()
    text = "power outage at the warehouse"
    rule_id = compile_ruleset(live).classify(Message(text=text, platform="slack")).rule_id
    draft = edit_rule(content, rule_id, parse(f"edit {rule_id} --add-none warehouse").change)
    report = lint(draft, live)
    assert [f.code for f in report.errors] == ["critical-no-page"]
    assert text in report.errors[0].message and "would no longer page" in report.errors[0].message


def test_disabling_a_page_rule_warns_and_lists_lost_pages() -> None:
    content, live = _live()
    rule_id = compile_ruleset(live).classify(Message(text="power outage at the warehouse")).rule_id
    report = lint(set_enabled(content, rule_id, False), live)
    assert any(f.code == "disabled-page" and rule_id in f.message for f in report.warnings)
    assert any("power outage at the warehouse" in f.message for f in report.errors)


def test_problems_already_live_are_warnings_new_ones_errors() -> None:
    legacy = {"queues": QUEUES, "rules": [r("a", any=["vpn"]) | {"queue": "desk"}, r("b", any=["vpn"]) | {"queue": "desk"},
                                          {"id": "default", "route": "msp", "queue": "desk"}]}
    live = ruleset_from_dict(legacy)
    report = lint(legacy, live, messages=())
    assert [(f.level, f.code) for f in report.findings] == [("warning", "shadowed")]
    report = lint(legacy, ruleset_from_dict({**legacy, "rules": legacy["rules"][::2]}), messages=())
    assert [(f.level, f.code) for f in report.findings] == [("error", "shadowed")]


def test_a_canonical_message_the_live_rules_never_paged_is_only_a_warning() -> None:
    plain = {"queues": QUEUES, "rules": [{"id": "default", "route": "msp", "queue": "desk"}]}
    report = lint(plain, ruleset_from_dict(plain))
    assert report.ok and report.warnings[0].code == "critical-never-paged"


def test_a_term_that_looks_like_a_secret_is_refused_because_it_can_never_match() -> None:
    """Intake redacts a message before the rules read it: "default pin 1234" reaches them as "default
    pin [redacted:password]", so the term never matches (and `rules show` prints it redacted)."""
    content, live = _live()
    draft = edit_rule(content, "hardware", parse("edit hardware --add-any 'default pin 1234'").change)
    report = lint(draft, live)
    [finding] = [f for f in report.errors if f.code == "secret-term"]
    assert "'default pin 1234'" in finding.message and "can never match" in finding.message
    assert "1234" not in redact("the default pin 1234 does not work").text  # what the rules would read
    assert [f.level for f in lint(draft, ruleset_from_dict(draft)).findings if f.code == "secret-term"] == ["warning"]


def test_invalid_content_is_reported_not_raised() -> None:
    report = lint({"queues": QUEUES, "rules": [{"id": "a", "route": "page", "queue": "oncall"}]}, None)
    assert not report.ok and report.errors[0].code == "invalid"
