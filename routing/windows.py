"""Time windows of rules (``active:`` / ``mute:``): parsing with key-path problems, and the clock check.

A window is ``{days: [mon, ...], from: "HH:MM", to: "HH:MM"}`` in the routing section's ``timezone``.
``days`` defaults to every day and also takes full names and ranges (``mon-fri``, ``fri-mon``);
``to`` may be ``24:00``; ``to`` before ``from`` runs overnight, closing the next morning (a Friday
22:00-06:00 window covers Saturday 03:00). Times written unquoted in YAML (``to: 18:00``) are read
by YAML 1.1 as base-60 numbers (1080); those are taken back as the minutes they stand for.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from routing.calendar import parse_hhmm, parse_weekday
from routing.model import ALL_DAYS, DAY_NAMES, Window

MAX_WINDOWS = 20
MINUTES_PER_DAY = 24 * 60


def _minute(value: Any, *, allow_24: bool) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{value!r} is not a time of day as \"HH:MM\" (24-hour, quoted, e.g. \"08:00\")")
    if isinstance(value, int):  # YAML 1.1 read an unquoted 18:00 as 18 * 60 + 0
        top = MINUTES_PER_DAY if allow_24 else MINUTES_PER_DAY - 1
        if 60 <= value <= top:
            return value
        raise ValueError(f"{value!r} is not a time of day: write it as \"HH:MM\" in quotes, e.g. \"08:00\"")
    if not isinstance(value, str):
        raise TypeError(f"expected a time of day as \"HH:MM\", got {type(value).__name__}")
    clock = parse_hhmm(value, allow_24=allow_24)
    return MINUTES_PER_DAY if clock == time.max else clock.hour * 60 + clock.minute


def _days(value: Any) -> frozenset[int]:
    if value is None:
        return ALL_DAYS
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise TypeError(f"expected a list of weekdays (mon, tue, ...), got {type(value).__name__}")
    if not value:
        raise ValueError("an empty list of days never matches; leave `days` out for every day")
    days: set[int] = set()
    for item in value:
        if not isinstance(item, str):
            raise TypeError(f"{item!r} is not a weekday; use mon, tue, wed, thu, fri, sat, sun")
        first, dash, last = item.partition("-")
        if dash:
            a, b = parse_weekday(first), parse_weekday(last)
            days.update((a + n) % 7 for n in range((b - a) % 7 + 1))
        else:
            days.add(parse_weekday(item))
    return frozenset(days)


def parse_windows(raw: Iterable[Any], at: str) -> tuple[tuple[Window, ...], list[str]]:
    """Windows from their validated-shape YAML form; problems as ``path: what to fix``.

    Args:
        raw: Objects with ``days``, ``from_`` and ``to`` attributes (the schema's window model).
        at: The key path of the list, e.g. ``rules[3].active``.
    """
    windows: list[Window] = []
    problems: list[str] = []
    for i, w in enumerate(raw):
        here = f"{at}[{i}]"
        found: dict[str, Any] = {}
        for key, value, parse in (("days", w.days, _days),
                                  ("from", w.from_, lambda v: _minute(v, allow_24=False)),
                                  ("to", w.to, lambda v: _minute(v, allow_24=True))):
            try:
                found[key] = parse(value)
            except (ValueError, TypeError) as exc:
                problems.append(f"{here}.{key}: {exc}")
        if len(found) < 3:
            continue
        if found["from"] == found["to"]:
            problems.append(f"{here}: `from` and `to` are both {w.from_!r}, an empty window; "
                            "for the whole day use from: \"00:00\", to: \"24:00\"")
            continue
        windows.append(Window(start=found["from"], end=found["to"], days=found["days"]))
    return tuple(windows), problems


def local_clock(at: datetime, tz: ZoneInfo) -> tuple[int, int]:
    """(weekday, minute after midnight) of the wall clock in ``tz`` at ``at``."""
    try:
        local = at.astimezone(tz)
    except OverflowError:  # hours from year 1 or 9999 (``rules test --at``): shift the wall clock by hand
        offset = (tz.utcoffset(at.replace(tzinfo=None)) or timedelta(0)) - (at.utcoffset() or timedelta(0))
        minute = (at.weekday() * MINUTES_PER_DAY + at.hour * 60 + at.minute + offset // timedelta(minutes=1)) % (
            7 * MINUTES_PER_DAY)
        return minute // MINUTES_PER_DAY, minute % MINUTES_PER_DAY
    return local.weekday(), local.hour * 60 + local.minute


def inside(windows: Iterable[Window], weekday: int, minute: int) -> bool:
    return any(w.contains(weekday, minute) for w in windows)


def describe(windows: Iterable[Window]) -> str:
    """``mon-fri 08:00-18:00; sat 10:00-14:00``."""
    return "; ".join(w.describe() for w in windows)


__all__ = ["DAY_NAMES", "MAX_WINDOWS", "describe", "inside", "local_clock", "parse_windows"]
