"""Draft edits and diffs (pure): positions, defaults, the protected default rule, term-aware removal."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from handlers.rules_edit import add_rule, diff, edit_rule, evaluation_order, move_rule, remove_rule, set_enabled
from handlers.rules_grammar import CommandError, parse
from handlers.rules_import import normalise
from routing.rules import ruleset_from_dict

QUEUES = [{"name": "desk", "route": "msp"}, {"name": "sec", "route": "internal"},
          {"name": "infra", "route": "internal"}, {"name": "oncall", "route": "page"}]


def base() -> dict[str, Any]:
    return normalise({"queues": QUEUES, "rules": [
        {"id": "ransomware", "route": "page", "queue": "oncall", "severity": "critical", "when": {"any": ["ransomware"]}},
        {"id": "phishing", "route": "internal", "queue": "sec", "when": {"any": ["phishing", "Disk Full"]}},
        {"id": "printer", "route": "msp", "queue": "desk", "when": {"any": ["printer", "toner"]}},
        {"id": "vpn", "route": "msp", "queue": "desk", "when": {"any": ["vpn"]}},
        {"id": "default", "route": "msp", "queue": "desk"},
    ]})


def ids(content: dict[str, Any]) -> list[str]:
    return [r["id"] for r in content["rules"]]


def run(content: dict[str, Any], text: str) -> dict[str, Any]:
    p = parse(text)
    if p.sub == "add":
        return add_rule(content, p.rule_id or "", p.change, before=p.before, after=p.after)
    if p.sub == "edit":
        return edit_rule(content, p.rule_id or "", p.change)
    if p.sub == "rm":
        return remove_rule(content, p.rule_id or "")
    if p.sub == "move":
        return move_rule(content, p.rule_id or "", before=p.before, after=p.after)
    return set_enabled(content, p.rule_id or "", p.sub == "enable")


@pytest.mark.parametrize(("text", "position"), [
    ('add fire --route page --any "fire alarm"', 1),  # after the last page rule
    ('add soc --route internal --any "soc alert"', 2),
    ('add mouse --route msp --any "mouse"', 4),  # after the last msp rule, before the default
    ('add mouse --route msp --any "mouse" --before printer', 2),
    ('add mouse --route msp --any "mouse" --after ransomware', 1),
])
def test_add_places_the_rule_in_its_tier_or_where_told(text: str, position: int) -> None:
    new = run(base(), text)
    assert ids(new)[position] == parse(text).rule_id
    assert ids(new)[-1] == "default"


def test_add_fills_queue_and_severity_from_the_route() -> None:
    new = run(base(), 'add fire --route page --any "fire alarm, smoke" --note "why not" --ignore-negated')
    rule = next(r for r in new["rules"] if r["id"] == "fire")
    assert rule["queue"] == "oncall" and rule["severity"] == "critical" and rule["note"] == "why not"
    assert rule["when"] == {"any": ["fire alarm", "smoke"]} and rule["ignore_negated"] is True
    new = run(base(), 'add soc --route internal --any "soc" --queue infra --severity high')
    assert next(r for r in new["rules"] if r["id"] == "soc")["queue"] == "infra"


@pytest.mark.parametrize(("text", "says"), [
    ('add vpn --route msp --any "x"', "exists already"),
    ('add z --route msp --any ",,"', "needs a condition"),
    ('add z --route msp --any x --after default', "must stay last"),
    ('add z --route msp --any x --before nope', "no rule `nope`"),
    ('add z --route msp --any x --queue oncall', "belongs to route page"),
    ('add z --route msp --any x --queue nowhere', "unknown queue"),
    ("rm default", "cannot be removed"),
    ("move default --before vpn", "cannot be moved"),
    ("move vpn --after default", "must stay last"),
    ("move vpn --before vpn", "relative to itself"),
    ("disable default", "cannot be disabled"),
    ("edit default --any x", "must have no `when`"),
    ("edit default --route page", "must not page"),
    ("edit vpn --remove-any wifi", "no any 'wifi'"),
    ("edit prnter --severity high", "did you mean `printer`"),
    ("edit vpn --any ''", "would catch everything"),
])
def test_bad_edits_are_refused_with_the_reason(text: str, says: str) -> None:
    before = base()
    snapshot = copy.deepcopy(before)
    with pytest.raises(CommandError) as info:
        run(before, text)
    assert says in info.value.message, info.value.message
    assert before == snapshot, "an edit never changes its input"


def test_edit_adds_and_removes_terms_in_their_matching_form() -> None:
    new = run(base(), 'edit phishing --add-any "PHISHING, spoofed mail" --remove-any "disk full" --add-none test')
    rule = next(r for r in new["rules"] if r["id"] == "phishing")
    assert rule["when"] == {"any": ["phishing", "spoofed mail"], "none": ["test"]}
    new = run(new, "edit phishing --none '' --regex 'x+' --continue")
    rule = next(r for r in new["rules"] if r["id"] == "phishing")
    assert rule["when"] == {"any": ["phishing", "spoofed mail"], "regex": ["x+"]} and rule["continue"] is True


def test_route_change_moves_the_queue_unless_it_fits() -> None:
    new = run(base(), "edit vpn --route internal")
    rule = next(r for r in new["rules"] if r["id"] == "vpn")
    assert (rule["route"], rule["queue"]) == ("internal", "sec")
    new = run(base(), "edit vpn --route internal --queue infra")
    assert next(r for r in new["rules"] if r["id"] == "vpn")["queue"] == "infra"


def test_remove_move_enable_disable() -> None:
    content = run(base(), "rm printer")
    assert "printer" not in ids(content)
    content = run(content, "move vpn --before phishing")
    assert ids(content) == ["ransomware", "vpn", "phishing", "default"]
    content = run(content, "disable phishing")
    rs = ruleset_from_dict(content)
    assert "phishing" not in evaluation_order(rs)
    assert "phishing" in evaluation_order(ruleset_from_dict(run(content, "enable phishing")))


def test_evaluation_order_puts_page_rules_first() -> None:
    content = run(base(), 'add fire --route page --any fire --before vpn')
    assert ids(content).index("fire") > ids(content).index("printer")
    assert evaluation_order(ruleset_from_dict(content))[:2] == ["ransomware", "fire"]


def test_diff_names_every_kind_of_change() -> None:
    old = base()
    new = run(old, 'add fire --route page --any "fire alarm"')
    new = run(new, 'edit phishing --add-any spoof --severity high')
    new = run(new, "rm printer")
    new = run(new, "move vpn --before phishing")
    d = diff(old, new)
    assert d.added == ("fire",) and d.removed == ("printer",)
    # vpn and phishing swapped: one of them "moved" (either is a minimal explanation).
    assert d.moved in (("vpn",), ("phishing",))
    assert [i for i, _ in d.changed] == ["phishing"]
    assert d.rule_ids == {"fire", "printer", "phishing", *d.moved}
    text = "\n".join(d.lines())
    assert '+ added `fire`' in text and "- removed `printer`" in text and 'any +["spoof"]' in text
    assert 'severity "normal" → "high"' in text and "↕ `" in text and "now at position" in text
    assert diff(old, old).empty and diff(old, old).lines() == []


def test_moved_is_minimal_for_one_long_move() -> None:
    rules = [{"id": f"r{i}", "route": "msp", "queue": "desk", "when": {"any": [f"t{i}"]}} for i in range(30)]
    old = normalise({"queues": QUEUES, "rules": [*rules, {"id": "default", "route": "msp", "queue": "desk"}]})
    new = move_rule(old, "r0", before="default", after=None)
    assert diff(old, new).moved == ("r0",)


def test_app_yaml_survives_a_round_of_edits() -> None:
    routing = yaml.safe_load((Path(__file__).resolve().parent.parent / "app.yaml").read_text(encoding="utf-8"))["routing"]
    live = normalise(routing)
    new = run(live, 'add datacenter-fire --route page --any "smoke in the server room"')
    assert diff(live, new).rule_ids == {"datacenter-fire"}
    assert normalise(new) == new
