"""Who is on call: rotations, overrides and finding a person from what an admin typed.

A :class:`Rotation` hands off at a wall-clock time of its zone: shifts are counted in local dates,
so a weekly hand-off stays "Monday 09:00" across DST changes (that shift lasts an hour more or less).
``start`` is the date of the first shift, held by ``people[0]``; the rotation is cyclic in both
directions, so an instant before ``start`` falls in the shift the cycle gives it (the shift just
before ``start`` belongs to the last person).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from routing.calendar import local_instant, parse_hhmm, require_aware, zone

PERIODS: dict[str, int] = {"daily": 1, "weekly": 7}
Source = Literal["override", "rotation", "none"]
_SLACK_MENTION = re.compile(r"<@([A-Z0-9]+)(?:\|[^>]*)?>", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Person:
    """Someone who can be on call and the chat ids that reach them."""

    name: str
    slack: str | None = None
    teams: str | None = None

    def user_on(self, platform: str) -> str | None:
        """Their user id on ``platform`` (``slack`` or ``teams``), or None."""
        if platform == "slack":
            return self.slack
        if platform == "teams":
            return self.teams
        return None

    def same_as(self, other: Person | None) -> bool:
        """Whether ``other`` is the same human: same chat id on a platform, or the same name."""
        if other is None:
            return False
        if self.slack and self.slack == other.slack:
            return True
        if self.teams and self.teams == other.teams:
            return True
        return self.name.casefold() == other.name.casefold()


@dataclass(frozen=True, slots=True)
class Shift:
    """One turn: ``person`` (``people[index]``) is on call from ``starts_at`` until ``ends_at`` (UTC)."""

    person: Person
    index: int
    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True, slots=True)
class Rotation:
    """People taking turns, one ``period_days`` each, handing off at ``handoff`` local time."""

    people: tuple[Person, ...]
    timezone: str
    tz: ZoneInfo
    handoff: time
    period_days: int
    start: date

    @classmethod
    def build(
        cls, *, people: Sequence[Person], timezone: str, handoff_time: str, period: str, start: date,
    ) -> Rotation:
        """Validate and build a rotation (``period``: ``daily`` or ``weekly``). ``ValueError`` says what to fix."""
        if period not in PERIODS:
            raise ValueError(f"unknown rotation period {period!r}; use daily or weekly")
        return cls(people=tuple(people), timezone=timezone, tz=zone(timezone), handoff=parse_hhmm(handoff_time),
                   period_days=PERIODS[period], start=start)

    def _handoff_at(self, day: date) -> datetime:
        return local_instant(day, self.handoff, self.tz)

    def shift_at(self, at: datetime) -> Shift | None:
        """The shift that covers ``at``, or None for a rotation without people."""
        at = require_aware(at, "at")
        if not self.people:
            return None
        day = at.astimezone(self.tz).date()
        if at < self._handoff_at(day):
            day -= timedelta(days=1)
        number = (day - self.start).days // self.period_days  # floor: negative before ``start``
        first = self.start + timedelta(days=number * self.period_days)
        index = number % len(self.people)
        return Shift(
            person=self.people[index], index=index, starts_at=self._handoff_at(first),
            ends_at=self._handoff_at(first + timedelta(days=self.period_days)),
        )

    def after(self, at: datetime) -> Person | None:
        """The person whose turn follows the shift at ``at``; None with fewer than two people."""
        shift = self.shift_at(at)
        if shift is None or len(self.people) < 2:
            return None
        return self.people[(shift.index + 1) % len(self.people)]


@dataclass(frozen=True, slots=True)
class Override:
    """``person`` is on call instead of the rotation in ``[starts_at, ends_at)``."""

    person: Person
    starts_at: datetime
    ends_at: datetime

    def covers(self, at: datetime) -> bool:
        return self.starts_at <= at < self.ends_at


@dataclass(frozen=True, slots=True)
class OnCall:
    """The answer to "who is on call at that moment".

    Attributes:
        primary: Who is paged first (None: nobody, the page goes to the channel).
        next: Whom an unacknowledged page escalates to: the rotation's next person, skipping the primary.
        secondary: Who is on the secondary rotation's shift.
        until: When ``primary`` may change next (end of the shift or override, or the start of an
            override); None when nothing is scheduled.
        source: ``override``, ``rotation`` or ``none``.
    """

    primary: Person | None
    next: Person | None
    secondary: Person | None
    until: datetime | None
    source: Source


def on_call(*, rotation: Rotation, secondary: Rotation | None, overrides: Sequence[Override],
            at: datetime) -> OnCall:
    """Who is on call at ``at``. ``overrides`` in creation order: of those active, the latest wins."""
    at = require_aware(at, "at")
    for o in overrides:
        require_aware(o.starts_at, "override start")
        require_aware(o.ends_at, "override end")
    shift = rotation.shift_at(at)
    active = [i for i, o in enumerate(overrides) if o.covers(at)]
    if active:
        winner = active[-1]
        primary: Person | None = overrides[winner].person
        source: Source = "override"
        until: datetime | None = overrides[winner].ends_at
        # A later override starting before this one ends takes over then.
        later = [o.starts_at for o in overrides[winner + 1:] if at < o.starts_at < overrides[winner].ends_at]
        if later:
            until = min(later)
    else:
        primary = shift.person if shift else None
        source = "rotation" if shift else "none"
        starts = [o.starts_at for o in overrides if o.starts_at > at]
        ends = [shift.ends_at] if shift else []
        until = min(starts + ends) if starts or ends else None

    following = rotation.after(at)
    if following is not None and shift is not None and following.same_as(primary):
        following = rotation.people[(shift.index + 2) % len(rotation.people)]  # skip the primary
        if following.same_as(primary):
            following = None
    sec = secondary.shift_at(at) if secondary is not None else None
    return OnCall(primary=primary, next=following, secondary=sec.person if sec else None, until=until,
                  source=source)


def find_person(people: Sequence[Person], text: str) -> Person | None:
    """The person ``text`` names: a name (any case, a leading ``@`` ignored), a Slack or Teams id,
    ``slack:U1`` / ``teams:x``, or a Slack mention (``<@U123>``, ``<@U123|name>``)."""
    text = (text or "").strip()
    if not text:
        return None
    mention = _SLACK_MENTION.fullmatch(text)
    if mention:
        return next((p for p in people if p.slack == mention.group(1)), None)
    platform, sep, ref = text.partition(":")
    if sep and platform.lower() in ("slack", "teams") and ref.strip():
        ref = ref.strip()
        return next((p for p in people if p.user_on(platform.lower()) == ref), None)
    name = text.removeprefix("@").strip().casefold()
    by_name = next((p for p in people if p.name.casefold() == name), None)
    if by_name is not None:
        return by_name
    return next((p for p in people if text in (p.slack, p.teams)), None)


__all__ = ["PERIODS", "OnCall", "Override", "Person", "Rotation", "Shift", "find_person", "on_call"]
