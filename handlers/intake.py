"""Intake: one employee message in, one ticket and its deliveries out, in one transaction.

The order is fixed by the architecture: redact (nothing secret goes further), classify (fail closed),
then write the inbound event id, the ticket and every outbox row in a single transaction. A duplicate
event id (a platform retry) writes nothing. Deliveries happen later, in the outbox worker.
Requests that arrive together share that transaction (group commit, :mod:`handlers.batching`): each
caller still returns only once its own rows are committed.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from handlers.batching import GroupCommitter
from handlers.replies import Reply, intake_reply, slack_blocks
from handlers.rules_state import ActiveRules
from routing.engine import classify_safely
from routing.model import Decision, Message
from routing.redact import redact
from storage import bulk
from storage.models import ticket_key

TRUNCATED = " …[truncated]"


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


@dataclass(frozen=True, slots=True)
class IntakeOptions:
    max_message_chars: int = 8_000
    internal_channel: str | None = None
    pager_source: str = "handoff"


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A request redacted and classified, waiting for its transaction."""

    inbound: Inbound
    text: str
    redacted: tuple[str, ...]
    decision: Decision
    uid: str


class Intake:
    """The intake use case. Share one instance per process: it batches concurrent commits."""

    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        rules: ActiveRules,
        clock: Callable[[], datetime],
        on_commit: Callable[[], None] = lambda: None,
        options: IntakeOptions = IntakeOptions(),
        max_batch: int = 64,
        linger: float = 0.002,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._rules = rules
        self._clock = clock
        self._on_commit = on_commit
        self._options = options
        self._committer: GroupCommitter[_Prepared, IntakeResult] = GroupCommitter(
            self._write, max_batch=max_batch, linger=linger
        )

    async def handle(self, inbound: Inbound) -> IntakeResult:
        """Redact, classify and commit one request; returns once it is durable (or a duplicate)."""
        return await self._committer.submit(self._prepare(inbound))

    def _prepare(self, inbound: Inbound) -> _Prepared:
        text = inbound.text.strip()
        if len(text) > self._options.max_message_chars:
            text = text[: self._options.max_message_chars] + TRUNCATED
        redaction = redact(text)
        message = Message(
            text=redaction.text, platform=inbound.platform, user_id=inbound.user_id,
            channel_id=inbound.channel_id, user_groups=inbound.user_groups, channel_type=inbound.channel_type,
        )
        decision = classify_safely(self._rules.classifier, message)
        return _Prepared(inbound, redaction.text, redaction.kinds, decision, uuid.uuid4().hex[:12])

    async def _write(self, batch: Sequence[_Prepared]) -> list[IntakeResult]:
        """One transaction for a batch: event ids, tickets, outbox rows."""
        now = self._clock()
        results: list[IntakeResult] = [IntakeResult(duplicate=True)] * len(batch)
        async with self._sessionmaker.begin() as session:
            fresh = await bulk.record_inbound_many(
                session=session, events=[(p.inbound.platform, p.inbound.event_id) for p in batch], now=now
            )
            accepted: list[int] = []
            for i, p in enumerate(batch):
                event = (p.inbound.platform, p.inbound.event_id)
                if event in fresh:  # first of its event id in this batch and never seen before
                    fresh.discard(event)
                    accepted.append(i)
            if not accepted:
                return results
            ids = await bulk.create_tickets(
                session=session, rows=[self._ticket_row(batch[i]) for i in accepted], now=now
            )
            rows: list[dict[str, Any]] = []
            for i, ticket_id in zip(accepted, ids):
                p = batch[i]
                key = ticket_key(ticket_id)
                reply = intake_reply(key, p.decision, p.redacted)
                deliveries = self._deliveries(key, p.uid, p.inbound, p.decision, p.text, reply, now)
                rows.extend(
                    {"kind": kind, "payload": payload, "idempotency_key": idem, "ticket_id": ticket_id}
                    for kind, payload, idem in deliveries
                )
                results[i] = IntakeResult(
                    duplicate=False, ticket=key, decision=p.decision, reply=reply, redacted=p.redacted,
                    outbox=tuple(kind for kind, _, _ in deliveries),
                )
            await bulk.enqueue_many(session=session, rows=rows, now=now)
        self._on_commit()
        return results

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
        self, key: str, uid: str, inbound: Inbound, decision: Decision, text: str, reply: Reply, now: datetime
    ) -> list[tuple[str, dict[str, Any], str]]:
        """The outbox rows of one accepted request: (kind, payload, idempotency key).

        Only the ``msp`` route ever produces an ``msp`` row: security and stability matters never
        leave the building, whatever other rules matched with ``continue``.
        """
        requester = {
            "platform": inbound.platform, "user_id": inbound.user_id, "name": inbound.user_name,
            "channel": inbound.channel_id,
        }
        common = {
            "id": key, "text": text, "queue": decision.queue, "severity": decision.severity,
            "route": decision.route, "rule": decision.rule_id, "ruleset_version": decision.ruleset_version,
            "why": decision.why, "requester": requester, "created_at": now.isoformat(),
        }
        rows: list[tuple[str, dict[str, Any], str]] = []
        if decision.route == "msp":
            rows.append(("msp", common, f"handoff-{uid}-{key}-msp"))
        else:
            rows.append((
                "internal",
                {**common, "channel": self._options.internal_channel, "text": _internal_text(key, decision, text)},
                f"handoff-{uid}-{key}-internal",
            ))
        if decision.route == "page":
            rows.append((
                "pagerduty",
                {
                    "event_action": "trigger",
                    "dedup_key": f"handoff-{uid}-{key}",
                    "summary": f"[{key}] {text}"[:1024],
                    "source": self._options.pager_source,
                    "severity": "critical",
                    "custom_details": {
                        "ticket": key, "rule": decision.rule_id, "why": decision.why,
                        "ruleset_version": decision.ruleset_version, "requester": requester,
                    },
                },
                f"handoff-{uid}-{key}-page",
            ))
        if inbound.reply_kind:
            rows.append((
                inbound.reply_kind,
                {**inbound.reply_target, "text": reply.text, "blocks": slack_blocks(reply), "ticket": key},
                f"handoff-{uid}-{key}-reply",
            ))
        return rows


def _internal_text(key: str, decision: Decision, text: str) -> str:
    head = "PAGE" if decision.route == "page" else "New in-house ticket"
    return f"{head} {key} [{decision.severity}] queue {decision.queue}: {text[:500]}\nWhy: {decision.why}"
