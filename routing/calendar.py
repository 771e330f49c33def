"""Business hours: when in-house IT works, and deadlines that count only working time.

Opening hours are wall-clock times of the calendar's IANA zone: on a DST day a business day is still
08:00-18:00 local (so it lasts one hour less or more in absolute time). Instants going in must be
timezone-aware (a naive datetime raises ``ValueError``); instants coming out are in UTC.

A local time that does not exist (the hour skipped when clocks spring forward) is taken as the instant
the clock would have shown it without the jump (``02:30`` on 2026-03-29 in Berlin is 03:30 CEST); a
local time that occurs twice (clocks falling back) means its first occurrence.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
#: How many consecutive days without opening hours a search accepts before giving up.
MAX_CLOSED_DAYS = 366
#: The longest span (in calendar days) any computation walks through.
MAX_SPAN_DAYS = 366 * 50


def zone(name: str) -> ZoneInfo:
    """The IANA zone called ``name``, or ``ValueError`` saying what a valid name looks like."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(f"unknown IANA time zone {name!r} (e.g. Europe/Berlin, America/New_York, UTC)") from None


def parse_hhmm(value: str, *, allow_24: bool = False) -> time:
    """Parse ``HH:MM`` (24-hour). With ``allow_24``, ``24:00`` (end of day) is read as ``time.max``."""
    text = str(value).strip()
    if allow_24 and text == "24:00":
        return time.max
    hours, sep, minutes = text.partition(":")
    if sep and len(hours) == 2 and len(minutes) == 2 and hours.isdigit() and minutes.isdigit():
        h, m = int(hours), int(minutes)
        if h < 24 and m < 60:
            return time(h, m)
    raise ValueError(f"{value!r} is not a time of day as HH:MM (24-hour, e.g. 08:00)")


def parse_weekday(value: str) -> int:
    """``mon``..``sun`` (or the full English name, any case) as 0..6."""
    text = str(value).strip().lower()
    if text in _FULL_DAYS:
        return _FULL_DAYS.index(text)
    if text in WEEKDAYS:
        return WEEKDAYS.index(text)
    raise ValueError(f"unknown weekday {value!r}; use mon, tue, wed, thu, fri, sat, sun")


def require_aware(at: datetime, what: str = "datetime") -> datetime:
    """Return ``at`` unchanged, or raise ``ValueError`` if it has no UTC offset."""
    if not isinstance(at, datetime):
        raise TypeError(f"{what} must be a datetime, got {type(at).__name__}")
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{what} {at.isoformat()} is naive; give a timezone-aware datetime (e.g. tzinfo=UTC)")
    return at


def local_instant(day: date, clock: time, tz: ZoneInfo) -> datetime:
    """The UTC instant at which the wall clock of ``tz`` shows ``clock`` on ``day`` (see module doc)."""
    return datetime.combine(day, clock, tzinfo=tz).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class BusinessCalendar:
    """Opening hours in one zone: ``weekdays`` (0 = Monday) from ``opens`` to ``closes``, minus ``holidays``.

    Build it with :meth:`build`. Open time is the half-open interval ``[opens, closes)`` of each
    business day, local wall-clock time.
    """

    timezone: str
    tz: ZoneInfo
    weekdays: frozenset[int]
    opens: time
    closes: time
    holidays: frozenset[date]

    @classmethod
    def build(
        cls, *, timezone: str, weekdays: Iterable[str], open: str, close: str,
        holidays: Iterable[date] = (),
    ) -> BusinessCalendar:
        """Validate and build a calendar. Raises ``ValueError`` saying what to fix."""
        days = frozenset(parse_weekday(d) for d in weekdays)
        if not days:
            raise ValueError("business hours need at least one weekday")
        opens, closes = parse_hhmm(open), parse_hhmm(close, allow_24=True)
        if closes <= opens:
            raise ValueError(f"close ({close}) must be after open ({open}) on the same day")
        return cls(timezone=timezone, tz=zone(timezone), weekdays=days, opens=opens, closes=closes,
                   holidays=frozenset(holidays))

    # -- days -----------------------------------------------------------------------------------

    def _hours(self, day: date) -> tuple[datetime, datetime] | None:
        """The open interval of ``day`` in UTC, or None when the office is closed all day."""
        if day.weekday() not in self.weekdays or day in self.holidays:
            return None
        start = local_instant(day, self.opens, self.tz)
        if self.closes == time.max:  # "24:00": open until the next midnight (round the clock with 00:00)
            end = local_instant(day + timedelta(days=1), time.min, self.tz)
        else:
            end = local_instant(day, self.closes, self.tz)
        return (start, end) if start < end else None

    def _days_from(self, at: datetime) -> Iterator[tuple[datetime, datetime]]:
        """The open intervals from the local day of ``at`` on; ValueError after a year of none."""
        day = at.astimezone(self.tz).date()
        closed = 0
        for _ in range(MAX_SPAN_DAYS):
            hours = self._hours(day)
            if hours is None:
                closed += 1
                if closed > MAX_CLOSED_DAYS:
                    raise ValueError(
                        f"business hours in {self.timezone} have no open day in the year after "
                        f"{at.astimezone(self.tz).date().isoformat()}: check the weekdays and holidays"
                    )
            else:
                closed = 0
                yield hours
            day += timedelta(days=1)
        raise ValueError(f"a business-time computation spans more than {MAX_SPAN_DAYS} days; use a shorter duration")

    # -- queries --------------------------------------------------------------------------------

    def is_open(self, at: datetime) -> bool:
        """Whether in-house IT works at ``at``."""
        at = require_aware(at, "at")
        hours = self._hours(at.astimezone(self.tz).date())
        return hours is not None and hours[0] <= at < hours[1]

    def next_open(self, at: datetime) -> datetime:
        """``at`` (in UTC) when open, else the next opening."""
        at = require_aware(at, "at").astimezone(UTC)
        for start, end in self._days_from(at):
            if at < end:
                return max(at, start)
        raise AssertionError("unreachable: _days_from raises first")  # pragma: no cover

    def add_business_time(self, start: datetime, duration: timedelta) -> datetime:
        """The instant (UTC) at which ``duration`` of open time has passed since ``start``.

        A deadline that uses up a day's last minute lands exactly at closing time (Friday 16:00 + 2 h
        is Friday 18:00, not Monday 08:00); 4 h from Friday 16:00 is Monday 10:00. A zero duration is
        ``start`` itself.
        """
        start = require_aware(start, "start").astimezone(UTC)
        if duration < timedelta(0):
            raise ValueError("duration must not be negative")
        if duration == timedelta(0):
            return start
        remaining = duration
        for opens, closes in self._days_from(start):
            begin = max(start, opens)
            if begin >= closes:
                continue
            available = closes - begin
            if remaining <= available:
                return begin + remaining
            remaining -= available
        raise AssertionError("unreachable: _days_from raises first")  # pragma: no cover

    def business_time_between(self, start: datetime, end: datetime) -> timedelta:
        """Open time in ``[start, end)``; zero when ``end`` is not after ``start``."""
        start = require_aware(start, "start").astimezone(UTC)
        end = require_aware(end, "end").astimezone(UTC)
        total = timedelta(0)
        if end <= start:
            return total
        day = start.astimezone(self.tz).date()
        last = end.astimezone(self.tz).date()
        if (last - day).days > MAX_SPAN_DAYS:
            raise ValueError(f"a business-time computation spans more than {MAX_SPAN_DAYS} days; use a shorter span")
        while day <= last:
            hours = self._hours(day)
            if hours is not None:
                lo, hi = max(start, hours[0]), min(end, hours[1])
                if lo < hi:
                    total += hi - lo
            day += timedelta(days=1)
        return total

    def describe(self, at: datetime, *, now: datetime) -> str:
        """``at`` for a person: "08:00 today", "08:00 tomorrow", "08:00 on Monday 30 Nov".

        Days are counted in the calendar's zone, which is named unless it is UTC
        ("08:00 tomorrow (Europe/Berlin)"); a year other than ``now``'s is written out.
        """
        local = require_aware(at, "at").astimezone(self.tz)
        today = require_aware(now, "now").astimezone(self.tz).date()
        clock = local.strftime("%H:%M")
        days = (local.date() - today).days
        if days == 0:
            text = f"{clock} today"
        elif days == 1:
            text = f"{clock} tomorrow"
        else:
            year = f" {local.year}" if local.year != today.year else ""
            weekday = _FULL_DAYS[local.weekday()].capitalize()
            text = f"{clock} on {weekday} {local.day} {_MONTHS[local.month - 1]}{year}"
        if self.timezone not in ("UTC", "Etc/UTC"):
            text += f" ({self.timezone})"
        return text


__all__ = [
    "WEEKDAYS",
    "BusinessCalendar",
    "local_instant",
    "parse_hhmm",
    "parse_weekday",
    "require_aware",
    "zone",
]
