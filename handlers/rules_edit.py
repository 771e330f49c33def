"""Draft edits: pure functions over the ``routing:`` mapping (``ruleset_to_dict`` form).

Diffs live in :mod:`handlers.rules_diff` (``diff`` and ``RuleDiff`` are re-exported here).

Every edit returns a new, validated and normalised mapping, or raises :class:`CommandError` saying
what is wrong; the input is never modified. The last rule is the default: it cannot be removed,
moved, disabled or given conditions.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Mapping
from typing import Any

from handlers.rules_diff import RuleDiff, diff
from handlers.rules_grammar import RuleChange
from handlers.rules_import import normalise, problems_text, validate
from handlers.rules_tokens import CommandError
from routing.model import RuleSet
from routing.text import term_key

WHEN_KEYS = ("any", "all", "none", "regex", "channels", "user_groups", "platforms")
_TERM_KINDS = ("any", "all", "none")
_DEFAULT_SEVERITY = {"page": "critical", "internal": "normal", "msp": "normal"}


def _rules(content: Mapping[str, Any]) -> list[dict[str, Any]]:
    return copy.deepcopy(list(content["rules"]))


def _index(rules: list[dict[str, Any]], rule_id: str, usage: str) -> int:
    for i, r in enumerate(rules):
        if r["id"] == rule_id:
            return i
    close = difflib.get_close_matches(rule_id, [r["id"] for r in rules], n=1)
    hint = f"; did you mean `{close[0]}`?" if close else "; `rules list` shows them"
    raise CommandError(f"there is no rule `{rule_id}`{hint}", usage)


def _not_default(rules: list[dict[str, Any]], i: int, what: str, usage: str) -> None:
    if i == len(rules) - 1:
        raise CommandError(
            f"`{rules[i]['id']}` is the default rule (the last one, for everything no other rule takes): "
            f"it cannot be {what}. Change its route or queue with `rules edit {rules[i]['id']} --route …`", usage,
        )


def _position(rules: list[dict[str, Any]], before: str | None, after: str | None, usage: str) -> int | None:
    if before is not None:
        return _index(rules, before, usage)
    if after is not None:
        i = _index(rules, after, usage)
        if i == len(rules) - 1:
            raise CommandError(f"nothing can come after the default rule `{after}`: it must stay last", usage)
        return i + 1
    return None


def _tier_position(rules: list[dict[str, Any]], route: str) -> int:
    """After the last rule of the same or a stronger tier (page, internal, msp), before the default."""
    rank = {"page": 0, "internal": 1, "msp": 2}[route]
    pos = 0
    for i, r in enumerate(rules[:-1]):
        if {"page": 0, "internal": 1, "msp": 2}.get(r["route"], 2) <= rank:
            pos = i + 1
    return pos


def _apply(rule: dict[str, Any], change: RuleChange, queues: list[dict[str, Any]], usage: str, *, new: bool) -> None:
    by_name = {q["name"]: q["route"] for q in queues}
    if change.route is not None:
        rule["route"] = change.route
        if change.queue is None and (new or by_name.get(rule.get("queue", "")) != change.route):
            first = next((q["name"] for q in queues if q["route"] == change.route), None)
            if first is None:
                raise CommandError(f"no queue has route {change.route}; add one with `rules import`", usage)
            rule["queue"] = first
    if new and change.severity is None:
        rule["severity"] = _DEFAULT_SEVERITY[rule["route"]]
    if change.queue is not None:
        if change.queue not in by_name:
            raise CommandError(f"unknown queue `{change.queue}`; known: {', '.join(sorted(by_name))}", usage)
        if by_name[change.queue] != rule.get("route"):
            raise CommandError(f"queue `{change.queue}` belongs to route {by_name[change.queue]}, not "
                               f"{rule.get('route')}; add `--route {by_name[change.queue]}` to move the rule there", usage)
        rule["queue"] = change.queue
    for key, value in (("severity", change.severity), ("description", change.description), ("note", change.note)):
        if value is not None:
            rule[key] = value
    if change.continue_ is not None:
        rule["continue"] = change.continue_
    if change.ignore_negated is not None:
        rule["ignore_negated"] = change.ignore_negated
    when: dict[str, list[str]] = {k: list(v) for k, v in (rule.get("when") or {}).items()}
    for kind, items in change.lists.items():
        when[kind] = list(dict.fromkeys(items))
    for kind, items in change.add.items():
        present = {_same(kind, t) for t in when.get(kind, [])}
        when.setdefault(kind, []).extend(t for t in dict.fromkeys(items) if _same(kind, t) not in present)
    for kind, items in change.remove.items():
        current = when.get(kind, [])
        for item in items:
            if _same(kind, item) not in {_same(kind, t) for t in current}:
                listed = ", ".join(f'"{t}"' for t in current[:20]) or "none"
                raise CommandError(f"`{rule['id']}` has no {kind} {item!r} to remove; its {kind}: {listed}", usage)
        drop = {_same(kind, i) for i in items}
        when[kind] = [t for t in current if _same(kind, t) not in drop]
    when = {k: v for k, v in when.items() if v}
    if when:
        rule["when"] = {k: when[k] for k in WHEN_KEYS if k in when}
    else:
        rule.pop("when", None)


def _same(kind: str, item: str) -> str:
    """Terms compare in their matching form (``Disk Full`` is ``disk full``); other values exactly."""
    if kind in _TERM_KINDS:
        try:
            return term_key(item)
        except ValueError:
            return item
    return item


def add_rule(content: Mapping[str, Any], rule_id: str, change: RuleChange, *, before: str | None = None,
             after: str | None = None, usage: str = "") -> dict[str, Any]:
    rules = _rules(content)
    if any(r["id"] == rule_id for r in rules):
        raise CommandError(f"rule `{rule_id}` exists already; change it with `rules edit {rule_id} …`", usage)
    rule: dict[str, Any] = {"id": rule_id}
    _apply(rule, change, list(content["queues"]), usage, new=True)
    if not rule.get("when"):
        raise CommandError("a rule needs a condition: --any, --all, --regex, --channels, --groups or --platforms", usage)
    pos = _position(rules, before, after, usage)
    rules.insert(_tier_position(rules, rule["route"]) if pos is None else pos, rule)
    return normalise({**content, "rules": rules}, usage=usage)


def edit_rule(content: Mapping[str, Any], rule_id: str, change: RuleChange, *, usage: str = "") -> dict[str, Any]:
    rules = _rules(content)
    i = _index(rules, rule_id, usage)
    _apply(rules[i], change, list(content["queues"]), usage, new=False)
    return normalise({**content, "rules": rules}, usage=usage)


def remove_rule(content: Mapping[str, Any], rule_id: str, *, usage: str = "") -> dict[str, Any]:
    rules = _rules(content)
    i = _index(rules, rule_id, usage)
    _not_default(rules, i, "removed", usage)
    del rules[i]
    return normalise({**content, "rules": rules}, usage=usage)


def move_rule(content: Mapping[str, Any], rule_id: str, *, before: str | None, after: str | None,
              usage: str = "") -> dict[str, Any]:
    rules = _rules(content)
    i = _index(rules, rule_id, usage)
    _not_default(rules, i, "moved", usage)
    if rule_id in (before, after):
        raise CommandError("a rule cannot move relative to itself", usage)
    rule = rules.pop(i)
    pos = _position(rules, before, after, usage)
    rules.insert(len(rules) - 1 if pos is None else pos, rule)
    return normalise({**content, "rules": rules}, usage=usage)


def set_enabled(content: Mapping[str, Any], rule_id: str, enabled: bool, *, usage: str = "") -> dict[str, Any]:
    rules = _rules(content)
    i = _index(rules, rule_id, usage)
    if not enabled:
        _not_default(rules, i, "disabled", usage)
    rules[i]["enabled"] = enabled
    return normalise({**content, "rules": rules}, usage=usage)


def evaluation_order(ruleset: RuleSet) -> list[str]:
    """Rule ids in the order the engine tries them: enabled page rules, then the other enabled rules."""
    enabled = [r for r in ruleset.rules if r.enabled]
    return [r.id for r in enabled if r.route == "page"] + [r.id for r in enabled if r.route != "page"]


__all__ = ["RuleDiff", "add_rule", "diff", "edit_rule", "evaluation_order", "move_rule", "normalise",
           "problems_text", "remove_rule", "set_enabled", "validate"]
