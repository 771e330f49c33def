"""Rule sets as data: parse and validate the ``routing:`` section, and write it back.

The schema is the one ``app.yaml`` uses and ``rules export`` prints. Every problem is reported with
the key path it was found at (``rules[3].when.regex[0]``) and what to do about it; all problems are
collected before raising, so an admin fixes a file in one go.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from routing.calendar import zone
from routing.model import ROUTES, SEVERITIES, Conditions, Queue, Rule, RuleSet
from routing.regexes import (
    MAX_REGEX_CHARS,
    compile_regex,
    regex_set,
)
from routing.text import term_key
from routing.windows import MAX_WINDOWS, parse_windows

#: Bounds that keep a rule set (and the automaton built from it) a sane size.
MAX_RULES = 20_000
MAX_TERMS_PER_LIST = 2_000
MAX_GROUPS = 10
MAX_TERM_CHARS = 200
ID_PATTERN = r"^[a-z0-9][a-z0-9_.\-]{0,63}$"


class RuleSetError(ValueError):
    """A rule set that cannot be used; ``problems`` lists each as ``path: what is wrong``."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        super().__init__("; ".join(self.problems) or "invalid rule set")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _When(_Strict):
    any: list[str] = Field(default_factory=list, max_length=MAX_TERMS_PER_LIST)
    any_of: list[list[str]] = Field(default_factory=list, max_length=MAX_GROUPS)
    all: list[str] = Field(default_factory=list, max_length=MAX_TERMS_PER_LIST)
    none: list[str] = Field(default_factory=list, max_length=MAX_TERMS_PER_LIST)
    regex: list[str] = Field(default_factory=list, max_length=100)
    channels: list[str] = Field(default_factory=list, max_length=1_000)
    user_groups: list[str] = Field(default_factory=list, max_length=1_000)
    platforms: list[str] = Field(default_factory=list, max_length=3)


class _Window(_Strict):
    days: Any = None
    from_: Any = Field(alias="from")
    to: Any


class _Rule(_Strict):
    id: str = Field(pattern=ID_PATTERN)
    route: str
    queue: str
    severity: str = "normal"
    description: str = Field(default="", max_length=500)
    when: _When | None = None
    continue_: bool = Field(default=False, alias="continue")
    enabled: bool = True
    ignore_negated: bool = False
    note: str = Field(default="", max_length=500)
    active: list[_Window] = Field(default_factory=list, max_length=MAX_WINDOWS)
    mute: list[_Window] = Field(default_factory=list, max_length=MAX_WINDOWS)


class _Queue(_Strict):
    name: str = Field(pattern=ID_PATTERN)
    route: str
    description: str = Field(default="", max_length=500)


class _Routing(_Strict):
    timezone: str = "UTC"
    queues: list[_Queue] = Field(min_length=1, max_length=200)
    rules: list[_Rule] = Field(min_length=1, max_length=MAX_RULES)


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "routing"


def _friendly(error: Any) -> str:
    if error["type"] == "string_pattern_mismatch":
        return (
            f"{error['input']!r} is not a valid id: use 1-64 lowercase letters, digits, '-', '_' or '.', "
            "starting with a letter or digit"
        )
    if error["type"] == "extra_forbidden":
        return "unknown key; check its spelling"
    return str(error["msg"])


def ruleset_from_dict(data: Mapping[str, Any], *, version: int = 0) -> RuleSet:
    """Build a validated :class:`RuleSet` from the ``routing:`` mapping.

    Raises:
        RuleSetError: listing every problem with its key path.
    """
    if not isinstance(data, Mapping):
        raise RuleSetError([f"routing: expected a mapping with `queues` and `rules`, got {type(data).__name__}"])
    try:
        parsed = _Routing.model_validate(data)
    except ValidationError as exc:
        raise RuleSetError(f"{_loc(e['loc'])}: {_friendly(e)}" for e in exc.errors()) from None

    problems: list[str] = []
    try:
        zone(parsed.timezone)
    except ValueError as exc:
        problems.append(f"timezone: {exc}")
    queues = {q.name: q for q in parsed.queues}
    for i, declared in enumerate(parsed.queues):
        if declared.route not in ROUTES:
            problems.append(f"queues[{i}].route: {declared.route!r} is not a route; use one of {', '.join(ROUTES)}")
    if len(queues) != len(parsed.queues):
        problems.append("queues: queue names must be unique")
    if not any(q.route == "internal" for q in parsed.queues):
        problems.append("queues: at least one queue must have route `internal` (failed classifications go there)")

    seen: dict[str, int] = {}
    rules: list[Rule] = []
    last = len(parsed.rules) - 1
    for i, r in enumerate(parsed.rules):
        at = f"rules[{i}]"
        if r.id in seen:
            problems.append(f"{at}.id: duplicate id {r.id!r} (also rules[{seen[r.id]}]); ids must be unique")
        seen.setdefault(r.id, i)
        if r.route not in ROUTES:
            problems.append(f"{at}.route: {r.route!r} is not a route; use one of {', '.join(ROUTES)}")
        if r.severity not in SEVERITIES:
            problems.append(f"{at}.severity: {r.severity!r} is not a severity; use one of {', '.join(SEVERITIES)}")
        q = queues.get(r.queue)
        if q is None:
            problems.append(f"{at}.queue: unknown queue {r.queue!r}; known: {', '.join(sorted(queues))}")
        elif r.route in ROUTES and q.route != r.route:
            problems.append(f"{at}.queue: queue {r.queue!r} belongs to route {q.route!r}, not {r.route!r}")
        when = r.when or _When()
        problems.extend(_check_when(when, f"{at}.when"))
        cond = Conditions(
            any=tuple(when.any), any_of=tuple(tuple(g) for g in when.any_of), all=tuple(when.all),
            none=tuple(when.none), regex=tuple(when.regex),
            channels=tuple(when.channels), user_groups=tuple(when.user_groups), platforms=tuple(when.platforms),
        )
        active, found = parse_windows(r.active, f"{at}.active")
        mute, found_mute = parse_windows(r.mute, f"{at}.mute")
        problems.extend(found + found_mute)
        if i == last:
            if r.active or r.mute:
                problems.append(f"{at}: the default rule takes whatever no other rule takes, at any time: "
                                "it cannot have `active` or `mute` windows; put them on the rules before it")
            if not cond.is_empty:
                problems.append(f"{at}: the last rule is the default and must have no `when` conditions")
            if not r.enabled:
                problems.append(f"{at}: the default rule cannot be disabled")
            if r.route == "page":
                problems.append(f"{at}.route: the default rule must not page; use msp or internal")
            if r.continue_:
                problems.append(f"{at}.continue: the default rule is last; `continue` has nothing to continue to")
        elif cond.is_empty:
            problems.append(
                f"{at}: rule {r.id!r} has no `when` conditions, so it would catch everything; "
                "only the last (default) rule may be unconditional"
            )
        rules.append(
            Rule(
                id=r.id, route=r.route, queue=r.queue, severity=r.severity, description=r.description,
                when=cond, continue_=r.continue_, enabled=r.enabled, ignore_negated=r.ignore_negated, note=r.note,
                active=active, mute=mute,
            )
        )
    problems.extend(_check_regex_total(rules))
    if problems:
        raise RuleSetError(problems)
    return RuleSet(
        rules=tuple(rules),
        queues=tuple(Queue(name=q.name, route=q.route, description=q.description) for q in parsed.queues),
        version=version, timezone=parsed.timezone,
    )


def _check_terms(terms: list[str], at: str) -> list[str]:
    problems: list[str] = []
    for j, term in enumerate(terms):
        if len(term) > MAX_TERM_CHARS:
            problems.append(f"{at}[{j}]: term is {len(term)} characters; the limit is {MAX_TERM_CHARS}")
            continue
        try:
            term_key(term)
        except ValueError as exc:
            problems.append(f"{at}[{j}]: {exc}")
    return problems


def _check_regex_total(rules: Iterable[Rule]) -> list[str]:
    """Build the RE2 set of every distinct regex, as the engine does, and report it if RE2 cannot.

    The engine leaves out the regexes of disabled rules; this checks them all, so enabling a rule
    later never makes a rule set fail to compile. Regexes refused on their own are reported where
    they are and left out here.
    """
    patterns: list[str] = []
    for p in dict.fromkeys(p for r in rules for p in r.when.regex):
        try:
            compile_regex(p)
        except ValueError:
            continue
        patterns.append(p)
    if not patterns:
        return []
    try:
        regex_set(patterns)
    except ValueError as exc:
        return [f"rules: {exc}"]
    return []


def _check_when(when: _When, at: str) -> list[str]:
    problems: list[str] = []
    for kind in ("any", "all", "none"):
        problems.extend(_check_terms(getattr(when, kind), f"{at}.{kind}"))
    for g, group in enumerate(when.any_of):
        if not group:
            problems.append(f"{at}.any_of[{g}]: an empty group can never match; remove it or add terms")
        elif len(group) > MAX_TERMS_PER_LIST:
            problems.append(f"{at}.any_of[{g}]: {len(group)} terms; the limit is {MAX_TERMS_PER_LIST}")
        else:
            problems.extend(_check_terms(group, f"{at}.any_of[{g}]"))
    for j, pattern in enumerate(when.regex):
        try:
            compile_regex(pattern)
        except ValueError as exc:
            problems.append(f"{at}.regex[{j}]: {exc}")
    for j, platform in enumerate(when.platforms):
        if platform not in ("slack", "teams", "console"):
            problems.append(f"{at}.platforms[{j}]: {platform!r} is not a platform; use slack, teams or console")
    return problems


def ruleset_to_dict(rs: RuleSet) -> dict[str, Any]:
    """The ``routing:`` mapping of a rule set, omitting defaults: what export and storage write."""
    rules: list[dict[str, Any]] = []
    for r in rs.rules:
        item: dict[str, Any] = {"id": r.id}
        if r.description:
            item["description"] = r.description
        item.update(route=r.route, severity=r.severity, queue=r.queue)
        when: dict[str, Any] = {
            k: list(getattr(r.when, k))
            for k in ("any", "all", "none", "regex", "channels", "user_groups", "platforms")
            if getattr(r.when, k)
        }
        if r.when.any_of:
            when["any_of"] = [list(g) for g in r.when.any_of]
        if when:
            item["when"] = when
        for key, windows in (("active", r.active), ("mute", r.mute)):
            if windows:
                item[key] = [w.as_dict() for w in windows]
        if r.ignore_negated:
            item["ignore_negated"] = True
        if r.continue_:
            item["continue"] = True
        if not r.enabled:
            item["enabled"] = False
        if r.note:
            item["note"] = r.note
        rules.append(item)
    queues = [
        {"name": q.name, "route": q.route, **({"description": q.description} if q.description else {})}
        for q in rs.queues
    ]
    head = {"timezone": rs.timezone} if rs.timezone != "UTC" else {}
    return {**head, "queues": queues, "rules": rules}


def content_hash(data: Mapping[str, Any]) -> str:
    """A stable hash of a ``routing:`` mapping (key order and formatting do not matter)."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


__all__ = ["ID_PATTERN", "MAX_GROUPS", "MAX_REGEX_CHARS", "MAX_RULES", "MAX_TERMS_PER_LIST", "MAX_TERM_CHARS",
           "RuleSetError", "compile_regex", "content_hash", "ruleset_from_dict", "ruleset_to_dict"]
