"""Storm control: a ``page`` decision becomes a new incident (and a page) or joins an open one.

Runs inside intake's transaction, after the tickets are inserted. For each page report:

1. lock the rule (PostgreSQL advisory lock, :func:`storage.incidents.lock_rule`; SQLite's
   ``BEGIN IMMEDIATE`` already serialises), so two replicas never both open the incident of one storm;
2. an open incident of the same rule and grouping key (:mod:`handlers.paging_group`) whose last
   report is within ``storm.window_minutes`` -> the ticket joins it: ``reports + 1``, a ``subscribed``
   history line, and the reporter is told it is a known issue and they will hear when it is resolved;
3. else a new incident. If the rule already paged ``storm.max_pages_per_rule_per_hour`` times in the
   last hour, it is **held**: no PagerDuty / Opsgenie / DM, but a notice in the on-call channel(s) (or the
   in-house channel) and a line in ``/handoff incidents``; never dropped. Otherwise it pages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from handlers.paging import (
    PagingOptions,
    Row,
    channel_rows,
    page_text,
    pager_row,
    unstaffed,
)
from handlers.paging_escalation import Escalation
from handlers.paging_group import group_key
from routing.model import Decision
from storage import incidents as store
from storage.models import Incident

HOUR = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class PageReport:
    """One accepted page request, its ticket already inserted."""

    ticket_id: int
    ticket: str
    uid: str
    text: str
    decision: Decision
    requester: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PageOutcome:
    """What became of a page report.

    Attributes:
        status: ``paged`` (new incident, someone reached), ``joined`` (known issue), ``held`` (page cap),
            ``unstaffed`` (new incident but nobody on call: the in-house channel and admins were told).
        lead: First line of the reporter's reply.
        rows: Outbox rows to enqueue with the ticket's own.
        internal: Whether the usual in-house ``internal`` notice is written (not for a joined report:
            forty "e-mail is down" notices would be a storm of their own).
        note: Added to the in-house notice.
    """

    incident_id: int
    status: str
    lead: str
    rows: list[Row] = field(default_factory=list)
    internal: bool = True
    note: str = ""


class StormControl:
    """Opens or joins incidents for intake (one instance per process)."""

    def __init__(self, *, options: PagingOptions, escalation: Escalation | None = None) -> None:
        self.options = options
        self._escalation = escalation

    async def page(self, *, session: AsyncSession, reports: Sequence[PageReport], now: datetime) -> list[PageOutcome]:
        """Decide every page report of one intake transaction, in order.

        Set-at-a-time: one lookup for every grouping key of the batch, then the reports that join an
        open incident join together (one update that returns the totals, one link and one history
        insert for the whole batch, whatever the number of incidents). Reports are decided in order, so a report
        that opens an incident is joined by the later reports of its storm in the same batch. Each
        reporter still gets their own report number. (Storm control was an eighth of a replica's CPU
        under load with a few statements per report; a batch with reports of many storms, the case
        in an outage, cost that many statements per incident.)
        """
        for rule_id in sorted({r.decision.rule_id for r in reports}):
            await store.lock_rule(session=session, rule_id=rule_id)
        keys = [(report.decision.rule_id, group_key(report.decision, report.text)) for report in reports]
        outcomes: list[PageOutcome | None] = [None] * len(reports)
        undecided = list(range(len(reports)))
        for _ in range(3):  # again only for reports whose incident on-call closed while we looked
            undecided = await self._decide(session, reports, keys, undecided, outcomes, now)
            if not undecided:
                break
        decided = [o for o in outcomes if o is not None]
        if len(decided) != len(reports):  # intake pairs outcomes with reports by position
            raise RuntimeError(f"storm control decided {len(decided)} of {len(reports)} page reports")
        return decided

    async def _decide(self, session: AsyncSession, reports: Sequence[PageReport], keys: Sequence[tuple[str, str]],
                      indexes: Sequence[int], outcomes: list[PageOutcome | None], now: datetime) -> list[int]:
        """Decide the reports of ``indexes`` into ``outcomes``; returns those to decide again: their
        incident was resolved between the lookup and the join (on-call's resolve locks the incident,
        not the rule), so they open or join another."""
        open_incidents = await store.find_open_incidents(
            session=session, keys={keys[i] for i in indexes}, since=now - self.options.storm_window)
        joins: dict[int, list[int]] = {}  # incident id -> indexes of the reports that join it
        for i in indexes:
            report, where = reports[i], keys[i]
            incident = open_incidents.get(where)
            if incident is not None:
                joins.setdefault(incident.id, []).append(i)
                continue
            incident = await self._create(session, report, where[1], now)
            open_incidents[where] = incident  # later reports of this batch join it
            outcomes[i] = await self._opened(session, incident, report, where[1], now)
        joined = await self._join(session, {iid: [reports[i] for i in members] for iid, members in joins.items()}, now)
        again: list[int] = []
        for iid, members in joins.items():
            if iid not in joined:
                again.extend(members)
                continue
            for i, outcome in zip(members, joined[iid]):
                outcomes[i] = outcome
        return sorted(again)

    async def _create(self, session: AsyncSession, report: PageReport, key: str, now: datetime) -> Incident:
        """A new incident for ``report`` (held back when the rule's page cap is reached), its ticket linked."""
        d, opts = report.decision, self.options
        held = await store.count_pages_since(session=session, rule_id=d.rule_id, since=now - HOUR) \
            >= opts.max_pages_per_hour
        requester = str(report.requester.get("name") or report.requester.get("user_id") or "")
        incident = await store.create_incident(
            session=session, now=now, rule_id=d.rule_id, group_key=key, status="triggered",
            pager="held" if held else opts.pager, dedup_key=f"handoff-{report.uid}-{report.ticket}",
            severity=d.severity if d.severity in ("critical", "high") else "critical", summary=report.text[:2000],
            first_ticket_id=report.ticket_id,
            detail={"ticket": report.ticket, "why": d.why, "requester": requester, "rule": d.rule_id,
                    "ruleset_version": d.ruleset_version},
        )
        await store.link_tickets(session=session, links={report.ticket_id: incident.id})
        return incident

    async def _opened(self, session: AsyncSession, incident: Incident, report: PageReport, key: str,
                      now: datetime) -> PageOutcome:
        """What became of the report that opened ``incident``: paged, held (page cap) or unstaffed."""
        d, opts = report.decision, self.options
        if incident.pager == "held":
            return self._held(incident, report)
        if incident.pager in ("pagerduty", "opsgenie"):
            details = {"ticket": report.ticket, "rule": d.rule_id, "why": d.why, "ruleset_version": d.ruleset_version,
                       "requester": report.requester, "incident": incident.id, "group": key}
            row = pager_row(incident, "trigger", ticket=report.ticket, source=opts.pager_source, details=details,
                            priority=opts.opsgenie_priority)
            return PageOutcome(incident.id, "paged", f"This looks critical. Ticket {report.ticket} is with in-house "
                               f"IT, and the on-call engineer has been paged.", rows=[row] if row else [])
        if self._escalation is None:
            raise RuntimeError("the chat pager needs an Escalation")
        step = await self._escalation.step(session=session, incident=incident, level=0, now=now)
        if step.fallback:
            return PageOutcome(incident.id, "unstaffed",
                               f"This looks critical. Ticket {report.ticket} is with in-house IT. Nobody is on call "
                               "right now, so I alerted the in-house IT channel and the admins.",
                               note="NOBODY ON CALL: no page was sent to a person.")
        return PageOutcome(incident.id, "paged", f"This looks critical. Ticket {report.ticket} is with in-house IT, "
                           f"and the on-call engineer has been paged ({step.label}).")

    async def _join(self, session: AsyncSession, joins: Mapping[int, Sequence[PageReport]],
                    now: datetime) -> dict[int, list[PageOutcome]]:
        """Reports join open incidents (``joins``: incident id -> its reports, in order); the outcomes
        by incident id, for the incidents still open (see :meth:`_decide`). One update (which returns
        the totals), one link and one history insert in all."""
        if not joins:
            return {}
        # The totals as stored: joins committed by other transactions are in them too.
        incidents = await store.add_reports(session=session, counts={iid: len(members) for iid, members in joins.items()},
                                            now=now)
        joins = {iid: members for iid, members in joins.items() if iid in incidents}  # the others closed meanwhile
        await store.link_tickets(session=session, links={r.ticket_id: iid for iid, members in joins.items() for r in members})
        events: list[dict[str, Any]] = []
        outcomes: dict[int, list[PageOutcome]] = {}
        for iid, members in joins.items():
            incident = incidents[iid]
            first = str(incident.detail.get("ticket", ""))
            if incident.status == "acknowledged":
                state = "the on-call engineer is already working on it"
            elif incident.pager == "held":
                state = "the on-call team has been told"
            elif unstaffed(incident):
                state = "nobody is on call right now, so the in-house IT channel and the admins have been alerted"
            else:
                state = "the on-call engineer has already been paged"
            numbers = range(incident.reports - len(members) + 1, incident.reports + 1)  # each reporter's own count
            events.extend({
                "ticket_id": report.ticket_id, "kind": "subscribed", "actor": "system",
                "text": f"Known issue: joined incident #{incident.id} ({first}); {n} reports.",
                "detail": {"incident_id": incident.id, "group_key": incident.group_key}} for report, n in zip(members, numbers))
            outcomes[iid] = [PageOutcome(
                incident.id, "joined", f"This is a known issue ({n} reports so far, first {first}): {state}. Ticket "
                f"{report.ticket} is linked to it and you're subscribed: I'll tell you here when it is resolved.",
                internal=False) for report, n in zip(members, numbers)]
        await store.add_ticket_events(session=session, now=now, events=events)
        return outcomes

    def _held(self, incident: Incident, report: PageReport) -> PageOutcome:
        opts = self.options
        d = report.decision
        cap = (f"held back by the page cap: {opts.max_pages_per_hour} pages for rule `{d.rule_id}` in the last "
               "hour. Nobody was paged for it: press Escalate to page it now, or acknowledge / resolve it here "
               "(`/handoff incidents` lists it).")
        text = page_text(incident, ticket=report.ticket, why=d.why, requester=str(incident.detail.get("requester", "")),
                         note=f"Page {cap}")
        rows = channel_rows(incident=incident, text=text, ticket=report.ticket, options=opts, level=0, tag=":held",
                            title="Held page")
        lead = (f"This looks critical. Ticket {report.ticket} is with in-house IT. The on-call engineer has already "
                "been paged several times this hour for similar reports, so this one was passed to the on-call team "
                "without paging again; it is not lost.")
        return PageOutcome(incident.id, "held", lead, rows=rows, note=f"HELD ({cap})")
