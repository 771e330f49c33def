"""On-call, paging, business hours and intake options from :class:`~bot.config.Settings` (for ``open_core``).

Small pure functions: the settings' sections become the values :mod:`handlers` works with
(:class:`~handlers.paging.Roster`, :class:`~handlers.paging.PagingOptions`,
:class:`~routing.calendar.BusinessCalendar`), so handlers never import ``bot``.
"""

from __future__ import annotations

from datetime import timedelta

from bot.config import Settings, teams_mode
from bot.config_oncall import RotationConfig
from handlers.intake import IntakeOptions
from handlers.paging import PagingOptions, Roster
from routing.calendar import BusinessCalendar
from routing.oncall import Override, Person, Rotation


def rotation(config: RotationConfig) -> Rotation:
    """A rotation section (``oncall.rotation`` or ``oncall.secondary``)."""
    return Rotation.build(people=[Person(name=p.name, slack=p.slack, teams=p.teams) for p in config.people],
                          timezone=config.timezone, handoff_time=config.handoff_time, period=config.period,
                          start=config.start)


def roster(settings: Settings) -> Roster:
    """Who is on call: ``oncall.rotation``, ``oncall.secondary`` and the planned ``oncall.overrides``."""
    oc = settings.oncall
    primary = rotation(oc.rotation)
    secondary = rotation(oc.secondary) if oc.secondary.people else None
    people = (*primary.people, *(p for p in (secondary.people if secondary else ()) if p not in primary.people))
    base = Roster(rotation=primary, secondary=secondary, people=people, timezone=oc.rotation.timezone)
    planned = [Override(person=base.person(o.person), starts_at=o.start, ends_at=o.end) for o in oc.overrides]
    return Roster(rotation=primary, secondary=secondary, people=people, planned=planned,
                  timezone=oc.rotation.timezone)


def connected_platforms(settings: Settings) -> tuple[str, ...]:
    """Chat platforms the bot can DM people on."""
    return tuple(name for name, on in (("slack", settings.slack.bot_token is not None),
                                       ("teams", teams_mode(settings) != "disabled")) if on)


def paging_options(settings: Settings) -> PagingOptions:
    """The pager, on-call channels, acknowledgement timeout and storm control of ``app.yaml``."""
    oc, storm = settings.oncall, settings.storm
    channels = tuple((platform, channel) for platform, channel in (("slack", oc.slack_channel),
                                                                   ("teams", oc.teams_channel)) if channel)
    return PagingOptions(
        pager=settings.pager, pager_source=settings.pagerduty.source, opsgenie_priority=settings.opsgenie.priority,
        channels=channels, platforms=connected_platforms(settings),
        ack_timeout=timedelta(minutes=oc.ack_timeout_minutes), storm_window=timedelta(minutes=storm.window_minutes),
        max_pages_per_hour=storm.max_pages_per_rule_per_hour, internal_channel=settings.internal.slack_channel,
    )


def business_calendar(settings: Settings) -> BusinessCalendar:
    """In-house IT's opening hours (``business_hours``)."""
    bh = settings.business_hours
    return BusinessCalendar.build(timezone=bh.timezone, weekdays=bh.weekdays, open=bh.open, close=bh.close,
                                  holidays=bh.holidays)


def sla_first_response(settings: Settings) -> timedelta | None:
    """``sla.msp_first_response_hours`` as a duration, or None when the watchdog is off."""
    hours = settings.sla.msp_first_response_hours
    return None if hours is None else timedelta(hours=hours)


def intake_options(settings: Settings) -> IntakeOptions:
    """The intake's tunables: for ``open_core`` and for ``handoff classify``, which must decide the same way."""
    return IntakeOptions(
        max_message_chars=settings.server.max_message_chars,
        internal_channel=settings.internal.slack_channel,
        pager_source=settings.pagerduty.source,
        calendar=business_calendar(settings),
        sla_first_response=sla_first_response(settings),
    )
