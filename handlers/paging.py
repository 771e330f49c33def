"""Paging: who is on call, and the outbox rows that reach them (shared by intake, escalation, actions).

The pager (``Settings.pager``) decides the rows of a new incident:

* ``pagerduty``: one Events API v2 ``trigger`` (``dedup_key`` = ``Incident.dedup_key``); PagerDuty
  decides who is on call and escalates;
* ``opsgenie``: one Alert API ``create`` (``alias`` = ``Incident.dedup_key``), likewise;
* ``chat``: a ``chat.notify`` DM to whoever is on call (on each platform they have an id for) with
  the page buttons, a post in the on-call channel(s), and an ``oncall.escalate`` job due after the
  acknowledgement timeout (:mod:`handlers.paging_escalation`).

Row builders are pure; :class:`Roster` reads the overrides admins stored in the database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from handlers.notify import notify_row
from routing.oncall import OnCall, Override, Person, Rotation, find_person, on_call
from storage import incidents as store
from storage.models import Incident

#: Outbox kind of the escalation job (run in-process by :class:`handlers.paging_escalation.Escalation`).
ESCALATE_KIND = "oncall.escalate"
#: Buttons on a page that is waiting for someone, and on one that somebody acknowledged.
OPEN_ACTIONS = ("acknowledge", "resolve", "escalate", "not_critical")
ACKED_ACTIONS = ("resolve", "escalate", "not_critical")
#: Escalation levels of the chat-native pager.
PRIMARY, NEXT, SECONDARY, CHANNEL = 0, 1, 2, 3
PAGER_NAMES = {"pagerduty": "PagerDuty", "opsgenie": "Opsgenie", "chat": "chat", "held": "held back", "none": "none"}

Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class PagingOptions:
    """How pages go out (built from ``app.yaml`` in :mod:`bot.paging_setup`).

    Attributes:
        pager: ``pagerduty``, ``opsgenie`` or ``chat`` (``Settings.pager``).
        channels: On-call channels as ``(platform, channel id)``.
        platforms: Chat platforms that are connected; a person is DMed on those they have an id on.
        ack_timeout: A chat page not acknowledged within this escalates one step.
        storm_window: Reports within this of an incident's last report join it.
        max_pages_per_hour: Pages per rule per hour; beyond that new incidents are held (not paged).
        internal_channel: In-house IT channel (Slack id) given to ``internal`` rows, if any.
    """

    pager: str = "pagerduty"
    pager_source: str = "handoff"
    opsgenie_priority: str = "P1"
    channels: tuple[tuple[str, str], ...] = ()
    platforms: tuple[str, ...] = ("slack", "teams")
    ack_timeout: timedelta = timedelta(minutes=5)
    storm_window: timedelta = timedelta(minutes=60)
    max_pages_per_hour: int = 3
    internal_channel: str | None = None

    @property
    def pager_name(self) -> str:
        return PAGER_NAMES.get(self.pager, self.pager)


class Roster:
    """Who is on call: the rotation and secondary from ``app.yaml``, planned overrides from ``app.yaml``
    and the overrides admins stored with ``/handoff oncall override`` (later ones win)."""

    def __init__(self, *, rotation: Rotation | None = None, secondary: Rotation | None = None,
                 people: Sequence[Person] = (), planned: Sequence[Override] = (), timezone: str = "UTC") -> None:
        self.rotation = rotation or Rotation.build(people=(), timezone=timezone, handoff_time="09:00", period="weekly",
                                                   start=date(2026, 1, 5))
        self.secondary = secondary
        self.people = tuple(people)
        self.planned = tuple(planned)
        self.timezone = timezone

    def person(self, ref: str) -> Person:
        """The person a stored reference names: a rotation member (name or id), else ``platform:id``."""
        found = find_person(self.people, ref)
        if found is not None:
            return found
        platform, _, user = ref.partition(":")
        if platform in ("slack", "teams") and user:
            return Person(name=ref, **{platform: user})
        return Person(name=ref)

    async def overrides(self, *, session: AsyncSession, at: datetime) -> list[Override]:
        """Planned overrides, then the stored ones (oldest created first)."""
        rows = await store.list_overrides(session=session, now=at)
        return [*self.planned, *(Override(person=self.person(r.person), starts_at=r.starts_at, ends_at=r.ends_at)
                                 for r in rows)]

    async def now(self, *, session: AsyncSession, at: datetime) -> OnCall:
        """Who is on call at ``at`` (primary, next, secondary, until when, and why)."""
        overrides = await self.overrides(session=session, at=at)
        return on_call(rotation=self.rotation, secondary=self.secondary, overrides=overrides, at=at)

    def is_member(self, platform: str, user_id: str) -> bool:
        """True if the user is in the rotation or the secondary rotation."""
        return any(p.user_on(platform) == user_id for p in self.people)

    @property
    def configured(self) -> bool:
        """Whether ``app.yaml`` names anyone to be on call."""
        return bool(self.people)


def ref_of(person: Person) -> str:
    """How a person is recorded (``Incident.assignee``): their first chat id as ``platform:id``, else the name."""
    for platform in ("slack", "teams"):
        user = person.user_on(platform)
        if user:
            return f"{platform}:{user}"
    return person.name


def reachable(person: Person | None, options: PagingOptions) -> list[tuple[str, str]]:
    """``(platform, user id)`` pairs a person can be DMed on."""
    if person is None:
        return []
    return [(p, u) for p in options.platforms if (u := person.user_on(p))]


def page_text(incident: Incident, *, ticket: str, why: str, requester: str, note: str = "") -> str:
    """What a page says (Slack mrkdwn subset)."""
    reports = f" ({incident.reports} reports)" if incident.reports > 1 else ""
    lines = [f"*{ticket}* [{incident.severity}] {incident.summary[:500]}{reports}",
             f"Why: {why}" if why else "", f"Reported by {requester}." if requester else "", note]
    return "\n".join(line for line in lines if line)


def dm_rows(person: Person, *, incident: Incident, text: str, ticket: str, options: PagingOptions, level: int,
            actions: Sequence[str] = OPEN_ACTIONS, title: str = "Page") -> list[Row]:
    """``chat.notify`` DMs (with buttons) to ``person`` on every platform they can be reached on."""
    rows = []
    for platform, user in reachable(person, options):
        kind, payload = notify_row(platform=platform, user=user, text=text, title=title, ticket=ticket,
                                   incident_id=incident.id, actions=actions)
        rows.append(_row(kind, payload, f"incident:{incident.id}:L{level}:dm:{platform}:{user}"))
    return rows


def channel_rows(*, incident: Incident, text: str, ticket: str, options: PagingOptions, level: int, tag: str = "",
                 actions: Sequence[str] = OPEN_ACTIONS, mention_here: bool = False, title: str = "Page") -> list[Row]:
    """``chat.notify`` posts to the on-call channel(s)."""
    rows = []
    for platform, channel in options.channels:
        kind, payload = notify_row(platform=platform, channel=channel, text=text, title=title, ticket=ticket,
                                   incident_id=incident.id, actions=actions, mention_here=mention_here)
        rows.append(_row(kind, payload, f"incident:{incident.id}:L{level}{tag}:channel:{platform}:{channel}"))
    return rows


def escalate_row(incident: Incident, *, level: int, due: datetime) -> Row:
    """The job that escalates to ``level`` at ``due`` unless someone acknowledged by then."""
    return {**_row(ESCALATE_KIND, {"incident_id": incident.id, "level": level}, f"incident:{incident.id}:escalate:{level}"),
            "next_attempt_at": due}


def pager_row(incident: Incident, action: str, *, ticket: str = "", why: str = "", source: str = "handoff",
              details: dict[str, Any] | None = None, actor: str = "", priority: str = "P1") -> Row | None:
    """The PagerDuty / Opsgenie row of an incident event (``trigger``, ``acknowledge``, ``resolve``), or None
    when the incident's pager is neither. Keyed on the first ticket, so the pager sees them in order."""
    dedup = incident.dedup_key
    if incident.pager == "pagerduty":
        payload: dict[str, Any] = {"event_action": action, "dedup_key": dedup}
        if action == "trigger":
            payload.update(summary=f"[{ticket}] {incident.summary}"[:1024], source=source, severity="critical",
                           custom_details=details or {})
    elif incident.pager == "opsgenie":
        og = {"trigger": "create", "acknowledge": "acknowledge", "resolve": "close"}[action]
        payload = {"action": og, "alias": dedup}
        if og == "create":
            payload.update(message=f"[{ticket}] {incident.summary}"[:130], description=incident.summary[:15000],
                           priority=priority, source=source,
                           details={k: str(v) for k, v in (details or {}).items() if not isinstance(v, dict)})
        else:
            payload.update(user=actor[:100] or "handoff", note=f"{og} from chat by {actor}"[:25000])
    else:
        return None
    return {**_row(incident.pager, payload, f"incident:{incident.id}:{incident.pager}:{action}"),
            "ticket_id": incident.first_ticket_id}


def _row(kind: str, payload: dict[str, Any], key: str) -> Row:
    return {"kind": kind, "payload": payload, "idempotency_key": key, "ticket_id": None}


def describe_person(person: Person | None) -> str:
    return person.name if person is not None else "nobody"


def unstaffed(incident: Incident) -> bool:
    """Whether the chat pager's last step reached nobody (no rotation, no on-call channel): see
    :meth:`handlers.paging_escalation.Escalation.step`, which records it."""
    return incident.pager == "chat" and bool(incident.detail.get("unstaffed"))
