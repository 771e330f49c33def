"""The chat-native pager's escalation: primary, then the next person, the secondary, the channel @here.

Each step is an outbox row of kind ``oncall.escalate`` (``{"incident_id", "level"}``) due after the
acknowledgement timeout, run in-process by :class:`Escalation` (a :class:`~handlers.ports.Connector`),
so a pending escalation survives restarts. A step re-checks the incident first (acknowledged or
resolved: nothing to do; already at that level: it ran before) and enqueues its notices and the next
step under deterministic idempotency keys with insert-or-ignore, so a row that runs twice acts once.

Levels: 0 the primary (DM with buttons, and a post in the on-call channel(s)); 1 the next person in
the rotation; 2 the secondary; 3 the on-call channel(s) with @here. A level with nobody to reach
(nobody on call, the next person already paged, no secondary) is skipped. With no on-call channel,
level 3 tells the in-house IT channel and the admins instead: a page never silently reaches nobody.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from handlers.notify import requester_row
from handlers.paging import (
    ACKED_ACTIONS,
    CHANNEL,
    ESCALATE_KIND,
    NEXT,
    OPEN_ACTIONS,
    PRIMARY,
    SECONDARY,
    PagingOptions,
    Roster,
    Row,
    channel_rows,
    dm_rows,
    escalate_row,
    page_text,
    reachable,
    ref_of,
)
from handlers.ports import DeliveryResult
from routing.oncall import OnCall, Person
from storage import incidents as store
from storage.models import Incident, ticket_key

log = logging.getLogger(__name__)
ALERT_KIND = "admin.alert"


@dataclass(frozen=True, slots=True)
class StepResult:
    """Where a step went: ``level`` reached, ``label`` for people, ``fallback`` when nobody on call could
    be reached (only the in-house channel and the admins were told)."""

    level: int
    label: str
    fallback: bool = False


class Escalation:
    """Runs escalation steps: as the ``oncall.escalate`` connector, and for a manual "escalate"."""

    kind = ESCALATE_KIND

    def __init__(self, *, sessionmaker: async_sessionmaker[AsyncSession], roster: Roster, options: PagingOptions,
                 clock: Callable[[], datetime], on_commit: Callable[[], None] = lambda: None) -> None:
        self._sessionmaker = sessionmaker
        self.roster = roster
        self.options = options
        self._clock = clock
        self._on_commit = on_commit

    async def deliver(self, *, payload: dict[str, Any], idempotency_key: str) -> DeliveryResult:
        """Run one due step (the worker calls this); a bad payload is dead, a DB failure retried."""
        incident_id, level = payload.get("incident_id"), payload.get("level")
        if not isinstance(incident_id, int) or not isinstance(level, int) or not PRIMARY < level <= CHANNEL:
            return DeliveryResult(ok=False, retryable=False, detail="bad oncall.escalate payload")
        try:
            async with self._sessionmaker.begin() as session:
                incident = await store.get_incident(session=session, incident_id=incident_id, for_update=True)
                if incident is None:
                    return DeliveryResult(ok=False, retryable=False, detail=f"no incident {incident_id}")
                if incident.status != "triggered":
                    return DeliveryResult(ok=True, detail=f"incident {incident.status}: no escalation")
                if incident.pager != "chat":
                    return DeliveryResult(ok=True, detail=f"pager {incident.pager}: no escalation")
                if incident.escalation_level >= level:
                    return DeliveryResult(ok=True, detail=f"already at level {incident.escalation_level}")
                minutes = f"{self.options.ack_timeout.total_seconds() / 60:g}"
                result = await self.step(session=session, incident=incident, level=level, now=self._clock(),
                                         reason=f"Still not acknowledged after {minutes} min")
        except Exception as exc:
            log.warning("oncall.escalate incident %s: %s", incident_id, type(exc).__name__, exc_info=True)
            return DeliveryResult(ok=False, retryable=True, detail=f"failed: {type(exc).__name__}")
        self._on_commit()
        return DeliveryResult(ok=True, detail=f"level {result.level}: {result.label}"[:500])

    async def step(self, *, session: AsyncSession, incident: Incident, level: int, now: datetime,
                   reason: str = "") -> StepResult:
        """Page ``level`` (or the first level after it with someone to reach), in the caller's transaction.

        Level 0 is the first page (no requester is told: the intake reply says it). Later levels record
        an ``escalated`` event on every linked ticket and tell each requester ``reason``.
        """
        oncall = await self.roster.now(session=session, at=now)
        paged: list[str] = list(incident.detail.get("paged", []))
        detail = dict(incident.detail)
        for lvl in range(level, CHANNEL + 1):
            target = self._target(lvl, oncall, paged)
            if target is not None or lvl == CHANNEL:
                break
        person, label = target if target is not None else (None, "")
        rows = self._rows(incident, lvl, person, detail)
        fallback = False
        if not rows:  # level 3 without an on-call channel
            fallback = True
            label = "the in-house IT channel and the admins (nobody is on call and no on-call channel is set)"
            rows = self._fallback_rows(incident, detail)
        else:
            label = label or "the on-call channel (@here)"
        if lvl < CHANNEL and not fallback:
            rows.append(escalate_row(incident, level=lvl + 1, due=now + self.options.ack_timeout))
        if person is not None:
            incident.assignee = ref_of(person)
            paged.append(ref_of(person))
        incident.escalation_level = lvl
        # "unstaffed": this step reached no one (no rotation, no on-call channel); what the incident's
        # views and later reporters are told, instead of "paged".
        incident.detail = {**detail, "paged": paged, "escalated_to": label, "unstaffed": fallback}
        if level > PRIMARY:  # the first page (level 0, even when it skipped ahead) is told by intake's reply
            rows += await self._tell(session, incident, lvl, f"{reason or 'Escalated'}: escalated to {label}.", now)
        await store.enqueue_ignoring_duplicates(session=session, rows=rows, now=now)
        await session.flush()
        return StepResult(level=lvl, label=label, fallback=fallback)

    def _target(self, level: int, oncall: OnCall, paged: list[str]) -> tuple[Person | None, str] | None:
        """Who ``level`` reaches, or None when there is nobody (the level is skipped)."""
        if level == CHANNEL:
            return (None, "the on-call channel (@here)") if self.options.channels else None
        person, role = {PRIMARY: (oncall.primary, "on call"), NEXT: (oncall.next, "next in the rotation"),
                        SECONDARY: (oncall.secondary, "secondary")}[level]
        if person is None or not reachable(person, self.options) or ref_of(person) in paged:
            return None
        return person, f"{person.name} ({role})"

    def _rows(self, incident: Incident, level: int, person: Person | None, detail: dict[str, Any]) -> list[Row]:
        ticket, opts = str(detail.get("ticket", "")), self.options
        actions = OPEN_ACTIONS if incident.status == "triggered" else ACKED_ACTIONS
        minutes = f"{opts.ack_timeout.total_seconds() / 60:g}"
        if level == CHANNEL:
            text = page_text(incident, ticket=ticket, why=str(detail.get("why", "")), requester=str(
                detail.get("requester", "")), note="Nobody has acknowledged this page yet. Can anyone take it?")
            return channel_rows(incident=incident, text=text, ticket=ticket, options=opts, level=level,
                                actions=actions, mention_here=True)
        assert person is not None
        note = (f"You are on call. Acknowledge within {minutes} min or it escalates." if level == PRIMARY
                else f"Escalated to you: not acknowledged within {minutes} min.")
        text = page_text(incident, ticket=ticket, why=str(detail.get("why", "")),
                         requester=str(detail.get("requester", "")), note=note)
        rows = dm_rows(person, incident=incident, text=text, ticket=ticket, options=opts, level=level, actions=actions)
        if level == PRIMARY:
            rows += channel_rows(incident=incident, text=page_text(
                incident, ticket=ticket, why=str(detail.get("why", "")), requester=str(detail.get("requester", "")),
                note=f"Paged {person.name}."), ticket=ticket, options=opts, level=level, actions=actions)
        return rows

    def _fallback_rows(self, incident: Incident, detail: dict[str, Any]) -> list[Row]:
        ticket = str(detail.get("ticket", ""))
        text = (f"PAGE {ticket} reached NOBODY on call: nobody is on call and no on-call channel is configured "
                f"(oncall.rotation, oncall.slack_channel / oncall.teams_channel in app.yaml). Please take it: "
                f"{incident.summary[:300]}")
        key = f"incident:{incident.id}:unstaffed"
        return [
            {"kind": "internal", "payload": {"text": text, "channel": self.options.internal_channel,
                                             "ticket": ticket, "incident_id": incident.id},
             "idempotency_key": f"{key}:internal", "ticket_id": None},
            {"kind": ALERT_KIND, "payload": {"text": text, "incident_id": incident.id},
             "idempotency_key": f"{key}:alert", "ticket_id": None},
        ]

    async def _tell(self, session: AsyncSession, incident: Incident, level: int, text: str, now: datetime) -> list[Row]:
        """``escalated`` history and a note to every requester of the incident."""
        tickets = await store.incident_tickets(session=session, incident_id=incident.id)
        await store.add_ticket_events(session=session, now=now, events=[
            {"ticket_id": t.id, "kind": "escalated", "actor": "oncall", "text": text,
             "detail": {"incident_id": incident.id, "level": level}} for t in tickets])
        rows: list[Row] = []
        for t in tickets:
            kind, payload = requester_row(platform=t.platform, user_id=t.user_id, conversation=t.conversation,
                                          text=f"{ticket_key(t.id)}: {text}", ticket=ticket_key(t.id))
            rows.append({"kind": kind, "payload": payload, "ticket_id": t.id,
                         "idempotency_key": f"incident:{incident.id}:L{level}:tell:{t.id}"})
        return rows
