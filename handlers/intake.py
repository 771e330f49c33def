"""Intake: one employee message in, one ticket and its deliveries out, in one transaction.

The order is fixed by the architecture: redact (nothing secret goes further), classify (fail closed),
then write the inbound event id, the ticket and every outbox row in a single transaction. A duplicate
event id (a platform retry) writes nothing. Deliveries happen later, in the outbox worker.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from handlers.replies import Reply, intake_reply, slack_blocks
from handlers.rules_state import ActiveRules
from routing.engine import classify_safely
from routing.model import Decision, Message
from routing.redact import redact
from storage import service

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


class Intake:
    """The intake use case. Share one instance per process."""

    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        rules: ActiveRules,
        clock: Callable[[], datetime],
        on_commit: Callable[[], None] = lambda: None,
        options: IntakeOptions = IntakeOptions(),
    ) -> None:
        self._sessionmaker = sessionmaker
        self._rules = rules
        self._clock = clock
        self._on_commit = on_commit
        self._options = options

    async def handle(self, inbound: Inbound) -> IntakeResult:
        text = inbound.text.strip()
        if len(text) > self._options.max_message_chars:
            text = text[: self._options.max_message_chars] + TRUNCATED
        redaction = redact(text)
        message = Message(
            text=redaction.text, platform=inbound.platform, user_id=inbound.user_id,
            channel_id=inbound.channel_id, user_groups=inbound.user_groups, channel_type=inbound.channel_type,
        )
        decision = classify_safely(self._rules.classifier, message)
        now = self._clock()
        uid = uuid.uuid4().hex[:12]
        async with self._sessionmaker.begin() as session:
            fresh = await service.record_inbound(
                session=session, platform=inbound.platform, event_id=inbound.event_id, now=now
            )
            if not fresh:
                return IntakeResult(duplicate=True)
            ticket = await service.create_ticket(
                session=session, now=now, platform=inbound.platform, user_id=inbound.user_id,
                user_name=inbound.user_name, channel_id=inbound.channel_id, thread_ref=inbound.thread_ref,
                text=redaction.text, route=decision.route, severity=decision.severity, queue=decision.queue,
                rule_id=decision.rule_id, ruleset_version=decision.ruleset_version, why=decision.why,
                terms=list(decision.terms), redactions=list(redaction.kinds), fail_closed=decision.fail_closed,
                conversation={"reply_kind": inbound.reply_kind, **inbound.reply_target} if inbound.reply_kind else None,
            )
            reply = intake_reply(ticket.key, decision, redaction.kinds)
            kinds: list[str] = []
            for kind, payload, key in self._deliveries(ticket.key, uid, inbound, decision, redaction.text, reply, now):
                await service.enqueue(
                    session=session, kind=kind, payload=payload, idempotency_key=key, now=now, ticket_id=ticket.id
                )
                kinds.append(kind)
        self._on_commit()
        return IntakeResult(
            duplicate=False, ticket=ticket.key, decision=decision, reply=reply,
            redacted=redaction.kinds, outbox=tuple(kinds),
        )

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
