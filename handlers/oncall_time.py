"""``<when>`` in ``/handoff oncall override … --until <when> [--from <when>]``: small on purpose.

Accepted (times are wall-clock in the rotation's time zone unless an offset is given):

* ``+30m``, ``+8h``, ``+2d``: from now;
* ``18:00``: today at 18:00, or tomorrow if that has passed;
* ``today 18:00``, ``tomorrow 09:00``, ``monday 09:00`` (``mon`` … ``sun``; the next such day,
  today included while that time is still ahead);
* ISO 8601: ``2026-12-24``, ``2026-12-24 18:00``, ``2026-12-24T18:00+01:00``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

_RELATIVE = re.compile(r"\+\s*(\d{1,4})\s*(m|min|mins|h|hr|hrs|d|day|days)", re.IGNORECASE)
_CLOCK = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
EXAMPLES = "`+8h`, `18:00`, `tomorrow 09:00`, `monday 09:00` or `2026-12-24T18:00+01:00`"


class WhenError(ValueError):
    """A ``<when>`` that could not be read; the message says what is accepted."""


def parse_when(text: str, *, now: datetime, timezone: str) -> datetime:
    """The instant (UTC) ``text`` names, relative to ``now``, local times in ``timezone``."""
    raw = " ".join(text.split()).lower()
    tz = ZoneInfo(timezone)
    if not raw:
        raise WhenError(f"give a time, e.g. {EXAMPLES}")
    if m := _RELATIVE.fullmatch(raw):
        n, unit = int(m.group(1)), m.group(2)[0]
        return now + {"m": timedelta(minutes=n), "h": timedelta(hours=n), "d": timedelta(days=n)}[unit]
    day_word, _, clock_text = raw.rpartition(" ") if " " in raw else ("", "", raw)
    if m := _CLOCK.fullmatch(clock_text):
        clock = time(int(m.group(1)), int(m.group(2)))
        local_now = now.astimezone(tz)
        if day_word in ("", "today", "tomorrow"):
            day = local_now.date() + timedelta(days=1 if day_word == "tomorrow" else 0)
            at = datetime.combine(day, clock, tzinfo=tz)
            if day_word == "" and at <= now:
                at = datetime.combine(day + timedelta(days=1), clock, tzinfo=tz)
            return at.astimezone(UTC)
        weekday = day_word[:3]
        if weekday in _DAYS and (day_word == weekday or _full(day_word)):
            ahead = (_DAYS.index(weekday) - local_now.weekday()) % 7
            at = datetime.combine(local_now.date() + timedelta(days=ahead), clock, tzinfo=tz)
            if at <= now:
                at += timedelta(days=7)
            return at.astimezone(UTC)
    try:
        parsed = datetime.fromisoformat(raw.upper().replace(" ", "T", 1) if "-" in raw else raw)
    except ValueError:
        raise WhenError(f"cannot read {text.strip()!r} as a time; use e.g. {EXAMPLES}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed.astimezone(UTC)


def _full(word: str) -> bool:
    return word in ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
