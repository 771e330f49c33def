"""Value types of the routing domain: messages in, decisions out.

Everything here is a frozen dataclass with no behaviour that touches the outside world, so it can be
shared by every layer (``bot`` builds :class:`Message`, ``handlers`` stores :class:`Decision`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, get_args

Route = Literal["msp", "internal", "page"]
ROUTES: tuple[str, ...] = get_args(Route)

Severity = Literal["low", "normal", "high", "critical"]
SEVERITIES: tuple[str, ...] = get_args(Severity)

Platform = Literal["slack", "teams", "console"]
PLATFORMS: tuple[str, ...] = get_args(Platform)

#: How strongly a route escalates; with ``continue`` fan-out the strongest matched route wins.
ROUTE_RANK: dict[str, int] = {"msp": 0, "internal": 1, "page": 2}

#: Weekday names of time windows, Monday first (``datetime.weekday()`` order).
DAY_NAMES: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ALL_DAYS: frozenset[int] = frozenset(range(7))


@dataclass(frozen=True, slots=True)
class Message:
    """A normalised chat message, the same whichever platform it came from.

    Attributes:
        text: What the employee wrote (already redacted when it reaches storage).
        platform: ``slack``, ``teams`` or ``console``.
        user_id: Platform user id of the author.
        channel_id: Platform channel / conversation id.
        user_groups: Group handles or ids the author belongs to (for group filters).
        channel_type: ``im``, ``channel``, ``group``, ``mpim`` or ``personal``.
        at: When it was written (timezone-aware), for rules with ``active``/``mute`` time windows.
            None skips the windows: every rule is then evaluated as if always active and never muted.
    """

    text: str
    platform: str = "console"
    user_id: str = ""
    channel_id: str = ""
    user_groups: frozenset[str] = frozenset()
    channel_type: str = ""
    at: datetime | None = None

    def __post_init__(self) -> None:
        if self.at is not None and (self.at.tzinfo is None or self.at.utcoffset() is None):
            raise ValueError(f"Message.at {self.at.isoformat()} is naive; give a timezone-aware datetime")


@dataclass(frozen=True, slots=True)
class Window:
    """A weekly time window of a rule, in the rule set's time zone: ``days`` from ``start`` to ``end``.

    Times are minutes after local midnight (``end`` may be 1440, "24:00"). When ``end`` is before
    ``start`` the window runs overnight: it opens on each of ``days`` and closes the next morning.
    """

    start: int
    end: int
    days: frozenset[int] = ALL_DAYS

    @property
    def overnight(self) -> bool:
        return self.end < self.start

    def contains(self, weekday: int, minute: int) -> bool:
        """Whether local ``weekday`` (0 = Monday) at ``minute`` after midnight is inside the window."""
        if not self.overnight:
            return weekday in self.days and self.start <= minute < self.end
        if minute >= self.start:
            return weekday in self.days
        return minute < self.end and (weekday - 1) % 7 in self.days

    def as_dict(self) -> dict[str, object]:
        """The YAML form: ``{days: [...], from: "HH:MM", to: "HH:MM"}`` (``days`` left out when every day)."""
        out: dict[str, object] = {}
        if self.days != ALL_DAYS:
            out["days"] = [DAY_NAMES[d] for d in sorted(self.days)]
        out["from"] = _hhmm(self.start)
        out["to"] = _hhmm(self.end)
        return out

    def describe(self) -> str:
        """Short and human: ``mon-fri 22:00-06:00``, ``sat, sun 00:00-24:00``, ``08:00-18:00``."""
        days = sorted(self.days)
        if self.days == ALL_DAYS:
            text = ""
        elif len(days) > 2 and days == list(range(days[0], days[-1] + 1)):
            text = f"{DAY_NAMES[days[0]]}-{DAY_NAMES[days[-1]]} "
        else:
            text = ", ".join(DAY_NAMES[d] for d in days) + " "
        return f"{text}{_hhmm(self.start)}-{_hhmm(self.end)}"


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


@dataclass(frozen=True, slots=True)
class Conditions:
    """What a message must look like for a rule to fire. Empty means "always".

    ``any``: at least one term; ``any_of``: groups of terms, each group needing at least one
    (what happened AND how wide, say); ``all``: every term; ``none``: no term; ``regex``: at least
    one pattern. Every listed kind must hold.
    """

    any: tuple[str, ...] = ()
    any_of: tuple[tuple[str, ...], ...] = ()
    all: tuple[str, ...] = ()
    none: tuple[str, ...] = ()
    regex: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    user_groups: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not (
            self.any or self.any_of or self.all or self.none or self.regex
            or self.channels or self.user_groups or self.platforms
        )


@dataclass(frozen=True, slots=True)
class Rule:
    """One routing rule: conditions and the outcome when they hold."""

    id: str
    route: str
    queue: str
    severity: str = "normal"
    description: str = ""
    when: Conditions = field(default_factory=Conditions)
    continue_: bool = False
    enabled: bool = True
    ignore_negated: bool = False
    note: str = ""
    active: tuple[Window, ...] = ()
    mute: tuple[Window, ...] = ()


@dataclass(frozen=True, slots=True)
class Queue:
    """A named destination queue and the route it belongs to."""

    name: str
    route: str
    description: str = ""


@dataclass(frozen=True, slots=True)
class RuleSet:
    """An ordered, immutable set of rules; the last rule is the unconditional default.

    ``timezone`` (IANA name) is the zone the rules' time windows are read in.
    """

    rules: tuple[Rule, ...]
    queues: tuple[Queue, ...] = ()
    version: int = 0
    timezone: str = "UTC"

    def rule(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)


@dataclass(frozen=True, slots=True)
class RuleMatch:
    """One rule that fired, with the terms that made it fire."""

    rule_id: str
    route: str
    severity: str
    queue: str
    terms: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Decision:
    """Where a message goes and why.

    ``route``/``severity``/``queue``/``rule_id`` come from the strongest match (page > internal >
    msp); ``matches`` lists every rule that fired in evaluation order (several only with
    ``continue``). ``fail_closed`` is set when classification failed and the message was sent to
    in-house triage instead.
    """

    route: str
    severity: str
    queue: str
    rule_id: str
    ruleset_version: int
    why: str
    terms: tuple[str, ...] = ()
    matches: tuple[RuleMatch, ...] = ()
    fail_closed: bool = False

    @property
    def pages(self) -> bool:
        return self.route == "page"

    @property
    def queues(self) -> tuple[str, ...]:
        """Every queue a matched rule named, primary first, without repeats."""
        seen: dict[str, None] = {self.queue: None}
        for m in self.matches:
            seen.setdefault(m.queue, None)
        return tuple(seen)

    def as_dict(self) -> dict[str, object]:
        return {
            "route": self.route,
            "severity": self.severity,
            "queue": self.queue,
            "rule": self.rule_id,
            "ruleset_version": self.ruleset_version,
            "why": self.why,
            "terms": list(self.terms),
            "matches": [m.rule_id for m in self.matches],
            "fail_closed": self.fail_closed,
        }
