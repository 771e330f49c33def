"""Configuration of on-call and the ticket's life: pager, rotation, storm control, business hours, SLA.

Sections of ``app.yaml`` validated like the rest of :mod:`bot.config` (which re-exports them); kept
apart so each module stays readable.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from bot.config_base import HttpUrl, Section

OPSGENIE_API_URL = "https://api.opsgenie.com"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"([01]\d|2[0-3]):[0-5]\d")


_Section = Section


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA time zone {value!r} (e.g. Europe/Berlin, America/New_York, UTC)") from None
    return value


def _check_hhmm(value: Any, *, allow_24: bool = False) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 24 * 60:
        value = f"{value // 60:02d}:{value % 60:02d}"  # YAML 1.1 reads an unquoted 18:00 as 1080 (minutes)
    if allow_24 and value in ("24:00", 24 * 60):
        return "24:00"
    if not isinstance(value, str) or not _HHMM.fullmatch(value):
        raise ValueError(f"{value!r} is not a time of day as HH:MM (24-hour, e.g. 08:00)")
    return value


def _check_weekdays(value: list[str]) -> list[str]:
    full = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    days = [d[:3] if d in full else d for d in (str(v).strip().lower() for v in value)]
    unknown = [d for d in days if d not in WEEKDAYS]
    if unknown:
        raise ValueError(f"unknown weekday(s) {unknown}; use mon, tue, wed, thu, fri, sat, sun")
    return days


class OpsgenieConfig(_Section):
    """Opsgenie Alert API v2 as the pager (``OPSGENIE_API_KEY``; EU accounts: api.eu.opsgenie.com)."""

    api_url: HttpUrl = OPSGENIE_API_URL
    api_key: SecretStr | None = None
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    priority: Literal["P1", "P2", "P3", "P4", "P5"] = "P1"


class Person(_Section):
    """Someone who can be on call: a name and the chat ids that reach them."""

    name: str = Field(min_length=1, max_length=100)
    slack: str | None = Field(default=None, description="Slack user id (U0123…)")
    teams: str | None = Field(default=None, description="Teams user (AAD object id)")

    @model_validator(mode="after")
    def _reachable(self) -> Person:
        if not self.slack and not self.teams:
            raise ValueError(f"{self.name}: give a slack user id, a teams user id, or both")
        return self


class RotationConfig(_Section):
    """Who is on call: ``people`` take turns, each for one ``period``, handing off at ``handoff_time``.

    The first shift (``people[0]``) starts at ``handoff_time`` on ``start`` in ``timezone``; hand-offs
    follow the wall clock of that zone across DST changes.
    """

    people: list[Person] = Field(default_factory=list)
    timezone: str = "UTC"
    handoff_time: str = "09:00"
    period: Literal["daily", "weekly"] = "weekly"
    start: date = date(2026, 1, 5)

    _tz = field_validator("timezone")(classmethod(lambda cls, v: _check_timezone(v)))
    _time = field_validator("handoff_time", mode="before")(classmethod(lambda cls, v: _check_hhmm(v)))


class OverrideConfig(_Section):
    """A planned override from app.yaml (admins add more from chat: ``/handoff oncall override``)."""

    person: str = Field(min_length=1, description="a rotation member's name, or platform:user id")
    start: datetime
    end: datetime

    @model_validator(mode="after")
    def _order(self) -> OverrideConfig:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("start and end need a UTC offset (e.g. 2026-12-24T18:00:00+01:00)")
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class OncallConfig(_Section):
    """Paging and who is on call.

    ``pager``: ``auto`` pages through PagerDuty when ``PAGERDUTY_ROUTING_KEY`` is set (PagerDuty then
    decides who is on call and escalates), else Opsgenie when ``OPSGENIE_API_KEY`` is set, else the
    chat-native pager: the page is posted to the on-call channel and DMed to whoever is on call, with
    Acknowledge / Resolve / Escalate buttons; unacknowledged after ``ack_timeout_minutes`` it goes to
    the next person, then the secondary, then the channel with @here.
    """

    pager: Literal["auto", "pagerduty", "opsgenie", "chat"] = "auto"
    slack_channel: str | None = Field(default=None, description="On-call channel (Slack channel id)")
    teams_channel: str | None = Field(default=None, description="On-call channel (Teams channel id 19:…)")
    ack_timeout_minutes: float = Field(default=5.0, gt=0, le=240)
    rotation: RotationConfig = Field(default_factory=RotationConfig)
    secondary: RotationConfig = Field(default_factory=RotationConfig)
    overrides: list[OverrideConfig] = Field(default_factory=list)


class StormConfig(_Section):
    """Storm control: reports of the same page rule and grouping key within the window are one incident."""

    window_minutes: float = Field(default=60.0, gt=0, le=24 * 60)
    max_pages_per_rule_per_hour: int = Field(default=3, ge=1, le=1000)


class BusinessHoursConfig(_Section):
    """When in-house IT works: ``internal`` requests outside these hours wait for the next opening.

    ``close: "24:00"`` means until midnight; all seven days from 00:00 to 24:00 is round the clock.
    """

    timezone: str = "UTC"
    weekdays: list[str] = Field(default_factory=lambda: list(WEEKDAYS[:5]), min_length=1)
    open: str = "08:00"
    close: str = "18:00"
    holidays: list[date] = Field(default_factory=list)

    _tz = field_validator("timezone")(classmethod(lambda cls, v: _check_timezone(v)))
    _open = field_validator("open", mode="before")(classmethod(lambda cls, v: _check_hhmm(v)))
    _close = field_validator("close", mode="before")(classmethod(lambda cls, v: _check_hhmm(v, allow_24=True)))
    _days = field_validator("weekdays")(classmethod(lambda cls, v: _check_weekdays(v)))

    @model_validator(mode="after")
    def _order(self) -> BusinessHoursConfig:
        if self.close <= self.open:
            raise ValueError(f"close ({self.close}) must be after open ({self.open}) on the same day")
        return self


class SlaConfig(_Section):
    """The MSP contract, measured: a first response is due within this many business hours."""

    msp_first_response_hours: float | None = Field(default=4.0, gt=0, le=1000,
                                                   description="null switches the watchdog off")
