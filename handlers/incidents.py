"""Page actions: acknowledge, resolve, escalate, "not critical", from a button or ``/handoff ack IT-1042``.

Implements :class:`handlers.ports.PageActions`. Every action runs in one transaction with the incident
row locked (PostgreSQL ``FOR UPDATE``; SQLite is serialised), so a button pressed twice, or by two
people at once, acts once: the second press gets ``ok=False`` and who did it when. Each action is
recorded on the incident and as a history line on every linked ticket; the pager hears it
(PagerDuty ``acknowledge`` / ``resolve``, Opsgenie ``acknowledge`` / ``close``, same ``dedup_key``);
every requester of the incident is told in their thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from handlers.notify import requester_row
from handlers.paging import (
    ACKED_ACTIONS,
    CHANNEL,
    OPEN_ACTIONS,
    Roster,
    Row,
    channel_rows,
    page_text,
    pager_row,
)
from handlers.paging_escalation import Escalation
from handlers.ports import PAGE_ACTIONS, ActionOutcome, Actor
from handlers.rules_access import AdminAccess
from storage import incidents as store
from storage import service
from storage.models import Incident, ticket_key

log = logging.getLogger(__name__)

#: A second Escalate within this long of the last one by hand is taken as the same press (two people
#: at once): it answers who escalated to whom instead of skipping the next person's turn.
ESCALATE_DEBOUNCE = timedelta(seconds=60)

#: The answer to someone who may not act on pages.
ONCALL_ONLY = ("Only on-call people (the rotation in app.yaml, overrides) and admins may do that. To report a "
               "problem, just write it: `/handoff <what is wrong>`.")


async def may_act_on_pages(*, session: AsyncSession, roster: Roster, access: AdminAccess, actor: Actor,
                           detail: dict[str, Any], at: datetime) -> bool:
    """On-call people (rotation, secondary, overrides, whoever this page reached) and admins may act
    on a page; the same rule for a button, a card and ``/handoff ack``."""
    if roster.is_member(actor.platform, actor.user_id) or actor.ref in detail.get("paged", []):
        return True
    for override in await roster.overrides(session=session, at=at):
        if override.person.user_on(actor.platform) == actor.user_id:
            return True
    return (await access.check(actor.platform, actor.user_id)).allowed


def when(at: datetime | None, timezone: str = "UTC") -> str:
    """A timestamp for people: ``"09:42 on Mon 30 Nov (Europe/Berlin)"``."""
    if at is None:
        return "an unknown time"
    local = at.astimezone(ZoneInfo(timezone))
    zone = "UTC" if timezone in ("UTC", "Etc/UTC") else timezone
    return f"{local:%H:%M} on {local:%a %d %b} ({zone})"


def name_of(actor: Actor) -> str:
    return actor.user_name or actor.ref


class IncidentActions:
    """The :class:`~handlers.ports.PageActions` use case. Share one instance per process."""

    def __init__(self, *, sessionmaker: async_sessionmaker[AsyncSession], escalation: Escalation,
                 clock: Callable[[], datetime], access: AdminAccess | None = None,
                 on_commit: Callable[[], None] = lambda: None) -> None:
        """``access``: who besides the on-call people may act (admins); None lets anyone act (tests)."""
        self._sessionmaker = sessionmaker
        self._access = access
        self._escalation = escalation
        self._options = escalation.options
        self._tz = escalation.roster.timezone
        self._clock = clock
        self._on_commit = on_commit

    async def act(self, *, actor: Actor, action: str, incident_id: int, event_id: str) -> ActionOutcome:
        """Apply ``action`` to the incident; never raises for a user error (answers ``ok=False``)."""
        if action not in PAGE_ACTIONS:
            return ActionOutcome(False, f"Unknown action {action!r}; use one of {', '.join(PAGE_ACTIONS)}.")
        now = self._clock()
        if self._access is not None and not await self._allowed(actor, action, incident_id, now):
            return ActionOutcome(False, f":no_entry: {ONCALL_ONLY}")
        async with self._sessionmaker.begin() as session:
            incident = await store.get_incident(session=session, incident_id=incident_id, for_update=True)
            if incident is None:
                return ActionOutcome(False, f"There is no incident #{incident_id}.")
            if action == "acknowledge":
                outcome = await self._acknowledge(session, incident, actor, now)
            elif action == "escalate":
                outcome = await self._escalate(session, incident, actor, now)
            else:
                outcome = await self._resolve(session, incident, actor, now, resolution=(
                    "fixed" if action == "resolve" else "not_critical"))
        if outcome.ok:
            log.info("incident %s: %s by %s (event %s)", incident_id, action, actor.ref, event_id)
            self._on_commit()
        return outcome

    async def _allowed(self, actor: Actor, action: str, incident_id: int, now: datetime) -> bool:
        """Whether ``actor`` may act on the incident; a refusal is audited. Checked before the
        incident is locked: an admin check may ask Slack or Microsoft Graph for group members."""
        assert self._access is not None
        async with self._sessionmaker() as session:
            incident = await store.get_incident(session=session, incident_id=incident_id)
            if incident is None or await may_act_on_pages(session=session, roster=self._escalation.roster,
                                                          access=self._access, actor=actor, detail=incident.detail,
                                                          at=now):
                return True
        async with self._sessionmaker.begin() as session:
            await service.audit(session=session, actor=actor.ref, action=f"page.{action}", target=f"incident {incident_id}",
                                allowed=False, detail={"outcome": "refused", "reason": "not on call and not an admin"},
                                now=now)
        log.warning("incident %s: %s by %s refused (not on call, not an admin)", incident_id, action, actor.ref)
        return False

    # -- the actions ------------------------------------------------------------------------------

    def _refusal(self, incident: Incident) -> ActionOutcome | None:
        if incident.status == "resolved":
            how = " as not critical" if incident.resolution == "not_critical" else ""
            return ActionOutcome(False, f"Incident #{incident.id} was already resolved{how} by "
                                        f"{self._who(incident, 'resolved')} at {when(incident.resolved_at, self._tz)}.",
                                 card=self.card(incident))
        return None

    async def _acknowledge(self, session: AsyncSession, incident: Incident, actor: Actor, now: datetime) -> ActionOutcome:
        refused = self._refusal(incident)
        if refused is not None:
            return refused
        if incident.status == "acknowledged":
            return ActionOutcome(False, f"Incident #{incident.id} was already acknowledged by "
                                        f"{self._who(incident, 'acknowledged')} at "
                                        f"{when(incident.acknowledged_at, self._tz)}.", card=self.card(incident))
        name = name_of(actor)
        incident.status, incident.acknowledged_at, incident.acknowledged_by = "acknowledged", now, actor.ref
        incident.assignee = actor.ref
        incident.detail = {**incident.detail, "acknowledged_by_name": name}
        rows = self._pager(incident, "acknowledge", name)
        rows += await self._record(session, incident, "acknowledged", actor, now,
                                   "on-call {name} acknowledged the problem you reported and is working on it.")
        rows += self._channel_note(incident, "ack", f"Acknowledged by {name}.")
        await store.enqueue_ignoring_duplicates(session=session, rows=rows, now=now)
        return ActionOutcome(True, f"You acknowledged incident #{incident.id}: escalation stopped. Resolve it here "
                                   "when it is fixed.", card=self.card(incident))

    async def _resolve(self, session: AsyncSession, incident: Incident, actor: Actor, now: datetime, *,
                       resolution: str) -> ActionOutcome:
        refused = self._refusal(incident)
        if refused is not None:
            return refused
        name = name_of(actor)
        incident.status, incident.resolved_at, incident.resolved_by = "resolved", now, actor.ref
        incident.resolution = resolution
        incident.detail = {**incident.detail, "resolved_by_name": name}
        rows = self._pager(incident, "resolve", name)
        if resolution == "fixed":
            told = "resolved: on-call {name} reports the problem you reported is fixed."
            mine = f"You resolved incident #{incident.id}; {incident.reports} reporter(s) are being told."
        else:
            told = ("on-call {name} looked into your report and closed the page: it was not a critical incident "
                    "after all.")
            mine = (f"You closed incident #{incident.id} as not critical (a false page); {incident.reports} "
                    "reporter(s) are being told.")
        told += " If it still affects you, reply here or use `/handoff reopen {ticket}`."
        rows += await self._record(session, incident, "resolved", actor, now, told, resolution=resolution)
        await store.resolve_tickets(session=session, incident_id=incident.id, now=now)
        note = "Resolved" if resolution == "fixed" else "Closed as not critical"
        rows += self._channel_note(incident, "resolve", f"{note} by {name}.")
        await store.enqueue_ignoring_duplicates(session=session, rows=rows, now=now)
        return ActionOutcome(True, mine, card=self.card(incident))

    async def _escalate(self, session: AsyncSession, incident: Incident, actor: Actor, now: datetime) -> ActionOutcome:
        refused = self._refusal(incident)
        if refused is not None:
            return refused
        name = name_of(actor)
        if incident.pager == "held":  # a held page: page it now, as if the cap had not held it back
            incident.pager = self._options.pager
            incident.detail = {**incident.detail, "released_by": actor.ref}
            if incident.pager == "chat":
                step = await self._escalation.step(session=session, incident=incident, level=0, now=now)
                label = step.label
            else:
                row = pager_row(incident, "trigger", ticket=str(incident.detail.get("ticket", "")),
                                source=self._options.pager_source, priority=self._options.opsgenie_priority,
                                details={"incident": incident.id, "rule": incident.rule_id,
                                         "released_by": actor.ref})
                rows = [row] if row else []
                if incident.status == "acknowledged":  # acknowledged while held: the pager must not page on
                    rows += self._pager(incident, "acknowledge", self._who(incident, "acknowledged"))
                await store.enqueue_ignoring_duplicates(session=session, rows=rows, now=now)
                label = self._options.pager_name
            return ActionOutcome(True, f"Incident #{incident.id} was held back by the page cap; you paged it now "
                                       f"({label}).", card=self.card(incident))
        if incident.pager != "chat":
            return ActionOutcome(False, f"{self._options.pager_name} escalates this page by its own escalation "
                                        "policy; escalate it there.")
        level = incident.escalation_level + 1
        if level > CHANNEL:
            return ActionOutcome(False, f"Incident #{incident.id} has already gone to everyone there is "
                                        f"({incident.detail.get('escalated_to', 'the on-call channel')}).")
        last = _when(incident.detail.get("escalated_by_hand_at"))
        if last is not None and now - last < ESCALATE_DEBOUNCE:  # two people pressing at once escalate once
            return ActionOutcome(False, f"Incident #{incident.id} was just escalated to "
                                        f"{incident.detail.get('escalated_to', 'the next level')} by "
                                        f"{incident.detail.get('escalated_by_name', 'someone')}; give them a moment, "
                                        "or escalate again in a minute.", card=self.card(incident))
        step = await self._escalation.step(session=session, incident=incident, level=level, now=now,
                                           reason=f"{name} escalated the page")
        incident.detail = {**incident.detail, "escalated_by_hand_at": now.isoformat(), "escalated_by_name": name}
        return ActionOutcome(True, f"Escalated incident #{incident.id} to {step.label}.", card=self.card(incident))

    # -- helpers ----------------------------------------------------------------------------------

    def _who(self, incident: Incident, what: str) -> str:
        return str(incident.detail.get(f"{what}_by_name") or getattr(incident, f"{what}_by") or "someone")

    def _pager(self, incident: Incident, action: str, name: str) -> list[Row]:
        row = pager_row(incident, action, actor=name)
        return [row] if row is not None else []

    def _channel_note(self, incident: Incident, tag: str, text: str) -> list[Row]:
        if incident.pager != "chat":
            return []
        ticket = str(incident.detail.get("ticket", ""))
        return channel_rows(incident=incident, text=f"*{ticket}* incident #{incident.id}: {text}", ticket=ticket,
                            options=self._options, level=0, tag=f":{tag}", actions=(), title="Page update")

    async def _record(self, session: AsyncSession, incident: Incident, kind: str, actor: Actor, now: datetime,
                      told: str, **detail: Any) -> list[Row]:
        """A ``kind`` history line on every linked ticket and the note ``told`` to each requester."""
        tickets = await store.incident_tickets(session=session, incident_id=incident.id)
        name = name_of(actor)
        await store.add_ticket_events(session=session, now=now, events=[
            {"ticket_id": t.id, "kind": kind, "actor": actor.ref, "text": f"{kind.capitalize()} by on-call {name}.",
             "detail": {"incident_id": incident.id, **detail}} for t in tickets])
        rows: list[Row] = []
        for t in tickets:
            key = ticket_key(t.id)
            row_kind, payload = requester_row(platform=t.platform, user_id=t.user_id, conversation=t.conversation,
                                              text=f"{key}: " + told.format(name=name, ticket=key), ticket=key)
            rows.append({"kind": row_kind, "payload": payload, "ticket_id": t.id,
                         "idempotency_key": f"incident:{incident.id}:{kind}:tell:{t.id}"})
        return rows

    def card(self, incident: Incident) -> dict[str, Any]:
        """The page message as it should look now (``chat.notify``-shaped, without ``to``)."""
        ticket = str(incident.detail.get("ticket", ""))
        state: list[str] = []
        actions: Sequence[str] = OPEN_ACTIONS
        if incident.status in ("acknowledged", "resolved") and incident.acknowledged_at is not None:
            state.append(f"Acknowledged by {self._who(incident, 'acknowledged')} at "
                         f"{when(incident.acknowledged_at, self._tz)}.")
            actions = ACKED_ACTIONS
        if incident.status == "resolved":
            how = "Closed as not critical" if incident.resolution == "not_critical" else "Resolved"
            state.append(f"{how} by {self._who(incident, 'resolved')} at {when(incident.resolved_at, self._tz)}.")
            actions = ()
        elif incident.escalation_level and incident.detail.get("escalated_to"):
            state.append(f"Escalated to {incident.detail['escalated_to']}.")
        text = page_text(incident, ticket=ticket, why=str(incident.detail.get("why", "")),
                         requester=str(incident.detail.get("requester", "")), note=" ".join(state))
        card: dict[str, Any] = {"title": "Page" if incident.status != "resolved" else "Page (resolved)", "text": text,
                                "ticket": ticket, "incident_id": incident.id}
        if actions:
            card["actions"] = list(actions)
        return card


def _when(value: Any) -> datetime | None:
    """A timestamp stored in an incident's ``detail`` (ISO text), or None."""
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
