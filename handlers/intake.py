"""Intake: one employee message in, one ticket and its deliveries out, in one transaction.

The order is fixed by the architecture: redact (nothing secret goes further), classify (fail closed),
then write the inbound event id, the ticket and every outbox row in a single transaction. A duplicate
event id (a platform retry) writes nothing. Deliveries happen later, in the outbox worker.
Requests that arrive together share that transaction (group commit, :mod:`handlers.batching`): each
caller still returns only once its own rows are committed.

In the same transaction: a ``page`` decision opens or joins an incident (storm control,
:mod:`handlers.paging_storm`); an ``internal`` request outside business hours is answered with the
next opening and its in-house notice is due then (nobody is woken); an ``msp`` ticket gets its SLA
deadline (``sla_due_at``) and the ``sla.check`` job that watches it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from handlers.batching import GroupCommitter
from handlers.paging import PagingOptions
from handlers.paging_storm import PageOutcome, PageReport, StormControl
from handlers.ports import ThreadMessage
from handlers.replies import Reply, intake_reply, slack_blocks
from handlers.rules_state import RuleSource
from handlers.sla import check_row
from handlers.text_input import TRUNCATED, clean_name, clean_text, clipped
from routing.calendar import BusinessCalendar
from routing.engine import classify_safely
from routing.model import Decision, Message
from routing.redact import Redaction, redact
from storage import bulk
from storage.models import ticket_key

__all__ = ["TRUNCATED", "Inbound", "Intake", "IntakeOptions", "IntakeResult"]


@dataclass(frozen=True, slots=True)
class Inbound:
    """A request as the edge hands it over.

    Attributes:
        platform: ``slack``, ``teams`` or ``console``.
        event_id: The platform's id for this delivery; retries carry the same one.
        reply_kind: Outbox kind that delivers the reply (``slack.post``), or None when the caller
            answers in its immediate response (slash commands, console).
        reply_target: What that connector needs to reach the thread (channel, thread_ts, ...).
    """

    platform: str
    event_id: str
    text: str
    user_id: str
    channel_id: str = ""
    channel_type: str = ""
    user_name: str = ""
    thread_ref: str | None = None
    user_groups: frozenset[str] = frozenset()
    reply_kind: str | None = None
    reply_target: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class IntakeResult:
    duplicate: bool
    ticket: str | None = None
    decision: Decision | None = None
    reply: Reply | None = None
    redacted: tuple[str, ...] = ()
    outbox: tuple[str, ...] = ()
    #: The incident a page report opened or joined, and what became of it (``paged``, ``joined``,
    #: ``held``, ``unstaffed``); None for other routes.
    incident_id: int | None = None
    page: str | None = None
    #: Seconds spent redacting and classifying this request.
    classify_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class IntakeOptions:
    """Tunables.

    Attributes:
        calendar: In-house IT's business hours: an ``internal`` request while closed is answered with
            the next opening and its notice is delivered then. None: always open.
        sla_first_response: Business time the MSP has for a first response (sets ``Ticket.sla_due_at``
            and enqueues the ``sla.check`` job); None: no SLA. Needs ``calendar``.
    """

    max_message_chars: int = 8_000
    internal_channel: str | None = None
    pager_source: str = "handoff"
    calendar: BusinessCalendar | None = None
    sla_first_response: timedelta | None = None


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A request redacted and classified, waiting for its transaction."""

    inbound: Inbound
    text: str
    redacted: tuple[str, ...]
    decision: Decision
    uid: str
    #: Seconds spent redacting and classifying (exported as a metric by the edge).
    classify_seconds: float = 0.0


class Intake:
    """The intake use case. Share one instance per process: it batches concurrent commits."""

    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        rules: RuleSource,
        clock: Callable[[], datetime],
        on_commit: Callable[[], None] = lambda: None,
        options: IntakeOptions = IntakeOptions(),
        storm: StormControl | None = None,
        max_batch: int = 64,
        linger: float = 0.002,
        writers: int = 1,
    ) -> None:
        """``storm`` opens or joins incidents for page decisions; the default pages through PagerDuty.
        ``writers``: group-commit transactions in flight at once (1 on SQLite, which has one writer)."""
        self._sessionmaker = sessionmaker
        self._rules = rules
        self._clock = clock
        self._on_commit = on_commit
        self._options = options
        self._storm = storm or StormControl(options=PagingOptions(
            pager="pagerduty", pager_source=options.pager_source, internal_channel=options.internal_channel))
        self._committer: GroupCommitter[_Prepared, IntakeResult] = GroupCommitter(
            self._write, max_batch=max_batch, linger=linger, concurrency=writers
        )

    async def handle(self, inbound: Inbound) -> IntakeResult:
        """Redact, classify and commit one request; returns once it is durable (or a duplicate)."""
        return await self._committer.submit(self._prepare(inbound))

    def is_critical(self, message: ThreadMessage) -> bool:
        """Whether ``message`` (written in a ticket's thread) would page as a request of its own."""
        inbound = Inbound(platform=message.platform, event_id=message.event_id, text=message.text,
                          user_id=message.user_id, channel_id=message.channel_id, channel_type="channel")
        return self.decide(inbound)[1].route == "page"

    def decide(self, inbound: Inbound) -> tuple[Redaction, Decision]:
        """What :meth:`handle` would store and decide for ``inbound``, writing nothing (``handoff classify``)."""
        return self._decide(_cleaned(inbound))

    def _prepare(self, inbound: Inbound) -> _Prepared:
        started = time.perf_counter()
        inbound = _cleaned(inbound)
        redaction, decision = self._decide(inbound)
        return _Prepared(inbound, redaction.text, redaction.kinds, decision, uuid.uuid4().hex[:12],
                         time.perf_counter() - started)

    def _decide(self, inbound: Inbound) -> tuple[Redaction, Decision]:
        """The redacted text of a cleaned request, clipped for storage, and its routing decision.

        The whole redacted text is classified, not the clipped one: a long paste (a log, a mail
        thread) that ends with "ransomware note on my screen" must page, not go to the MSP because
        the words that matter were cut off. The decision's ``why`` names them. (The edge's body
        limit bounds the work; every regex is held to 1 ms per 10 kB, see routing/regexes.py.)
        """
        # Redact the whole text, then clip: a secret at the cut is still recognised whole.
        whole = redact(clean_text(inbound.text.strip()))
        redaction = clipped(whole, self._options.max_message_chars)
        message = Message(
            text=whole.text, platform=inbound.platform, user_id=inbound.user_id,
            channel_id=inbound.channel_id, user_groups=inbound.user_groups, channel_type=inbound.channel_type,
            at=self._clock(),
        )
        return redaction, classify_safely(self._rules.classifier, message)

    async def _write(self, batch: Sequence[_Prepared]) -> list[IntakeResult]:
        """One transaction for a batch: event ids, tickets, incidents (storm control), outbox rows."""
        now = self._clock()
        results: list[IntakeResult] = [IntakeResult(duplicate=True)] * len(batch)
        async with self._sessionmaker.begin() as session:
            fresh = await bulk.record_inbound_many(
                session=session, events=[(p.inbound.platform, p.inbound.event_id) for p in batch], now=now
            )
            accepted: list[int] = []
            reserved: list[int | None] = []  # ticket ids reserved with the event ids (PostgreSQL)
            for i, p in enumerate(batch):
                event = (p.inbound.platform, p.inbound.event_id)
                if event in fresh:  # first of its event id in this batch and never seen before
                    reserved.append(fresh.pop(event))
                    accepted.append(i)
            if not accepted:
                return results
            sla_due = {i: self._sla_due(batch[i].decision, now) for i in accepted}
            ids = await bulk.create_tickets(
                session=session, rows=[{**self._ticket_row(batch[i]), "sla_due_at": sla_due[i]} for i in accepted],
                now=now, ids=None if None in reserved else sorted(cast(list[int], reserved)),  # ascending, as allocated
            )
            pages = [(i, PageReport(ticket_id=t, ticket=ticket_key(t), uid=batch[i].uid, text=batch[i].text,
                                    decision=batch[i].decision, requester=_requester(batch[i].inbound)))
                     for i, t in zip(accepted, ids) if batch[i].decision.route == "page"]
            outcomes = dict(zip((i for i, _ in pages),
                                await self._storm.page(session=session, reports=[r for _, r in pages], now=now)))
            rows: list[dict[str, Any]] = []
            for i, ticket_id in zip(accepted, ids):
                p = batch[i]
                key = ticket_key(ticket_id)
                reply = intake_reply(key, p.decision, p.redacted)
                page = outcomes.get(i)
                opening = self._after_hours(p.decision, now)
                if page is not None:
                    reply = _with_lead(reply, page.lead)
                elif opening is not None and self._options.calendar is not None:
                    when = self._options.calendar.describe(opening, now=now)
                    reply = _with_lead(reply, f"Ticket {key} is with in-house IT, who are out of the office now: they "
                                              f"will pick this up at {when}. Nobody is woken for this; only critical "
                                              "problems page the on-call engineer.")
                deliveries = self._deliveries(key, ticket_id, p, reply, now, page, opening, sla_due[i])
                rows.extend(deliveries)
                results[i] = IntakeResult(
                    duplicate=False, ticket=key, decision=p.decision, reply=reply, redacted=p.redacted,
                    outbox=tuple(row["kind"] for row in deliveries), incident_id=page.incident_id if page else None,
                    page=page.status if page else None, classify_seconds=p.classify_seconds,
                )
            await bulk.enqueue_many(session=session, rows=rows, now=now)
        self._on_commit()
        return results

    def _sla_due(self, decision: Decision, now: datetime) -> datetime | None:
        """When the MSP's first response is due (business hours), for ``msp`` tickets when an SLA is set."""
        return self.sla_due_from(now) if decision.route == "msp" else None

    def sla_due_from(self, now: datetime) -> datetime | None:
        """When the MSP's first response to an MSP ticket (re)opened at ``now`` is due; None without an SLA."""
        opts = self._options
        if opts.calendar is None or opts.sla_first_response is None:
            return None
        return opts.calendar.add_business_time(now, opts.sla_first_response)

    def _after_hours(self, decision: Decision, now: datetime) -> datetime | None:
        """The next opening when an ``internal`` request arrives while in-house IT is closed, else None.

        Only the ``internal`` route waits; a page pages whatever the hour, and a request that could not
        be classified (fail closed) is not held back either: it might be critical.
        """
        calendar = self._options.calendar
        if decision.route != "internal" or decision.fail_closed or calendar is None or calendar.is_open(now):
            return None
        return calendar.next_open(now)

    @staticmethod
    def _ticket_row(p: _Prepared) -> dict[str, Any]:
        inbound, decision = p.inbound, p.decision
        return {
            "platform": inbound.platform, "user_id": inbound.user_id, "user_name": inbound.user_name,
            "channel_id": inbound.channel_id, "thread_ref": inbound.thread_ref, "text": p.text,
            "route": decision.route, "severity": decision.severity, "queue": decision.queue,
            "rule_id": decision.rule_id, "ruleset_version": decision.ruleset_version, "why": decision.why,
            "terms": list(decision.terms), "redactions": list(p.redacted), "fail_closed": decision.fail_closed,
            "conversation": {"reply_kind": inbound.reply_kind, **inbound.reply_target} if inbound.reply_kind else None,
        }

    def _deliveries(
        self, key: str, ticket_id: int, p: _Prepared, reply: Reply, now: datetime, page: PageOutcome | None,
        opening: datetime | None, sla_due: datetime | None,
    ) -> list[dict[str, Any]]:
        """The outbox rows of one accepted request.

        Only the ``msp`` route ever produces an ``msp`` row: security and stability matters never
        leave the building, whatever other rules matched with ``continue``. An ``internal`` notice
        that arrives after hours is due at the next opening (``opening``); page rows come from storm
        control (``page``).
        """
        inbound, decision, text, uid = p.inbound, p.decision, p.text, p.uid
        requester = _requester(inbound)
        common = {
            "id": key, "text": text, "queue": decision.queue, "severity": decision.severity,
            "route": decision.route, "rule": decision.rule_id, "ruleset_version": decision.ruleset_version,
            "why": decision.why, "requester": requester, "created_at": now.isoformat(),
        }
        rows: list[dict[str, Any]] = []

        def add(kind: str, payload: dict[str, Any], suffix: str, due: datetime | None = None) -> None:
            rows.append({"kind": kind, "payload": payload, "idempotency_key": f"handoff-{uid}-{key}-{suffix}",
                         "ticket_id": ticket_id, "next_attempt_at": due or now})

        if decision.route == "msp":
            add("msp", {**common, "event": "ticket.created"}, "msp")
            if sla_due is not None:
                rows.append(check_row(ticket_id, sla_due))
        elif page is None or page.internal:
            notice = _internal_text(key, decision, text) + (f"\n{page.note}" if page and page.note else "")
            if opening is not None:
                notice += f"\n(Arrived after hours at {now:%Y-%m-%d %H:%M} UTC; posted at the next opening.)"
            add("internal", {**common, "channel": self._options.internal_channel, "text": notice}, "internal", opening)
        if page is not None:
            rows.extend({**row, "next_attempt_at": row.get("next_attempt_at", now)} for row in page.rows)
        if inbound.reply_kind:
            add(inbound.reply_kind,
                {**inbound.reply_target, "text": reply.text, "blocks": slack_blocks(reply), "ticket": key}, "reply")
        return rows


def _cleaned(inbound: Inbound) -> Inbound:
    """``inbound`` with its free text storable on every database (see :func:`clean_text`)."""
    text, name = clean_text(inbound.text), clean_name(inbound.user_name)
    if text == inbound.text and name == inbound.user_name:
        return inbound
    return replace(inbound, text=text, user_name=name)


def _requester(inbound: Inbound) -> dict[str, Any]:
    return {"platform": inbound.platform, "user_id": inbound.user_id, "name": inbound.user_name,
            "channel": inbound.channel_id}


def _with_lead(reply: Reply, lead: str) -> Reply:
    """``reply`` with its first line (the lead) replaced."""
    _, sep, rest = reply.text.partition("\n")
    return replace(reply, text=lead + sep + rest)


def _internal_text(key: str, decision: Decision, text: str) -> str:
    head = "PAGE" if decision.route == "page" else "New in-house ticket"
    return f"{head} {key} [{decision.severity}] queue {decision.queue}: {text[:500]}\nWhy: {decision.why}"
