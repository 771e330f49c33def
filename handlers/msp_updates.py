"""MSP updates coming back: a status change or a comment from the MSP's ticketing system.

The HTTP edge (:mod:`bot.msp_callback`) verifies the signature; this module checks the shape of the
body (:func:`parse_update`) and applies it (:class:`MspUpdates`) in one transaction: the event id is
remembered (``inbound_events``, platform ``msp``: a replay changes nothing), the ticket's MSP status,
status, MSP id and first-response time are updated, a ``msp_update`` history line is written, and
the employee is told in their thread. Text from the MSP is redacted like anyone's.

Only tickets that were sent to the MSP (route ``msp``) exist for the MSP: security incidents and
in-house tickets are never forwarded, and an MSP cannot probe for or write into them.
``first_response_at`` is the time *we* received the MSP's first update (the MSP's own ``at`` is
kept in the history): the SLA measures when the employee could have heard back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from handlers.notify import requester_row
from handlers.text_input import BadJson, TooDeep, clean_text, load_json, valid_id
from handlers.ticket_views import STATUS_LABEL
from routing.redact import redact
from storage import service, tickets
from storage.models import Ticket, ticket_id_from_key

#: Longest comment the MSP may send (characters); longer is refused with 400.
MAX_COMMENT_CHARS = 8_000
MspStatus = Literal["open", "in_progress", "waiting", "resolved", "closed"]


class BadUpdate(ValueError):
    """The body is not a valid MSP update; the message names the field and what is wrong."""


class MspUpdate(BaseModel):
    """The body of ``POST /msp/callback`` (see docs/msp-webhook.md). Unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=True)

    event_id: str = Field(min_length=1, max_length=255)
    ticket: str = Field(min_length=1, max_length=40)
    type: Literal["status", "comment"]
    status: MspStatus | None = None
    comment: str | None = Field(default=None, max_length=MAX_COMMENT_CHARS)
    author: str = Field(default="", max_length=255)
    remote_id: str | None = Field(default=None, min_length=1, max_length=255)
    at: AwareDatetime | None = None

    @field_validator("event_id", "remote_id")
    @classmethod
    def _id(cls, value: str | None) -> str | None:
        if value is not None and not valid_id(value, max_chars=255):
            raise ValueError("must not contain control characters")
        return value

    @field_validator("comment", "author", mode="before")
    @classmethod
    def _text(cls, value: object) -> object:
        """Free text is taken, made storable (lone surrogates, NUL): see :func:`clean_text`."""
        return clean_text(value) if isinstance(value, str) else value

    @field_validator("ticket")
    @classmethod
    def _key(cls, value: str) -> str:
        try:
            ticket_id_from_key(value)
        except ValueError:
            raise ValueError("not a handoff ticket id (expected e.g. IT-1042)") from None
        return value.upper()

    @model_validator(mode="after")
    def _payload(self) -> MspUpdate:
        if self.type == "status" and self.status is None:
            raise ValueError("a status update needs `status` (open, in_progress, waiting, resolved or closed)")
        if self.type == "comment" and not self.comment:
            raise ValueError("a comment update needs a non-empty `comment`")
        return self


def parse_update(body: bytes) -> MspUpdate:
    """The update in ``body``.

    Raises:
        BadUpdate: not UTF-8 JSON, or not the documented shape (the message names each field path;
            it never repeats the values sent).
    """
    try:
        data = load_json(body)
    except BadJson as exc:
        raise BadUpdate(str(exc) if isinstance(exc, TooDeep) else "body is not UTF-8 JSON") from None
    if not isinstance(data, dict):
        raise BadUpdate("body must be a JSON object")
    try:
        return MspUpdate.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_input=False, include_url=False)[:5]:
            path = ".".join(str(part) for part in error["loc"]) or "body"
            problems.append(f"{path}: {error['msg']}")
        raise BadUpdate("; ".join(problems)) from None


@dataclass(frozen=True, slots=True)
class UpdateOutcome:
    """``applied``; ``duplicate`` (this event id was applied before); ``unknown_ticket`` (nothing changed)."""

    result: Literal["applied", "duplicate", "unknown_ticket"]
    ticket: str
    status: str | None = None


class MspUpdates:
    """Applies MSP updates. Stateless apart from its collaborators; one per process is enough."""

    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Callable[[], datetime],
        on_commit: Callable[[], None] = lambda: None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._clock = clock
        self._on_commit = on_commit

    async def apply(self, update: MspUpdate) -> UpdateOutcome:
        now = self._clock()
        ticket_id = ticket_id_from_key(update.ticket)
        comment = redact(update.comment or "")
        author = redact(update.author).text
        async with self._sessionmaker.begin() as session:
            ticket = await tickets.lock_ticket(session=session, ticket_id=ticket_id)
            if ticket is None or ticket.route != "msp":
                return UpdateOutcome("unknown_ticket", update.ticket)
            if not await service.record_inbound(session=session, platform="msp", event_id=update.event_id, now=now):
                return UpdateOutcome("duplicate", ticket.key, ticket.status)
            previous = ticket.status
            if ticket.first_response_at is None:
                ticket.first_response_at = now
            if update.remote_id:
                ticket.remote_id = update.remote_id
            kept_closed = False
            if update.status is not None:
                ticket.msp_status = update.status
                # A ticket the employee closed stays closed; one the MSP closed, the MSP may open again.
                kept_closed = previous == "closed" and update.status != "closed" and \
                    await tickets.closed_by_requester(session=session, ticket_id=ticket.id)
                if not kept_closed:
                    _set_status(ticket, update.status, now)
            ticket.updated_at = now
            detail: dict[str, object] = {"event_id": update.event_id, "type": update.type, "author": author,
                                         "redacted": list(comment.kinds)}
            if update.status is not None:
                detail.update(status=update.status, previous=previous, kept_closed=kept_closed)
            if update.remote_id:
                detail["remote_id"] = update.remote_id
            if update.at is not None:
                detail["msp_at"] = update.at.isoformat()
            text = comment.text if update.type == "comment" else f"status {update.status}"
            event = await tickets.add_event(session=session, ticket_id=ticket.id, kind="msp_update", now=now,
                                            actor="msp", text=text, detail=detail)
            message = _tell(ticket.key, update, comment.text, author, previous, kept_closed,
                            answer=answer_hint(ticket.key, ticket.conversation))
            if message:
                kind, payload = requester_row(platform=ticket.platform, user_id=ticket.user_id,
                                              conversation=ticket.conversation, text=message, ticket=ticket.key)
                await tickets.enqueue_once(session=session, rows=[(kind, payload, f"msp-update:{event.id}:requester")],
                                           now=now, ticket_id=ticket.id)
            outcome = UpdateOutcome("applied", ticket.key, ticket.status)
        self._on_commit()
        return outcome


def _set_status(ticket: Ticket, status: str, now: datetime) -> None:
    ticket.status = status
    if status in tickets.DONE_STATUSES:
        ticket.resolved_at = ticket.resolved_at or now
        ticket.closed_at = (ticket.closed_at or now) if status == "closed" else None
    else:
        ticket.resolved_at = None
        ticket.closed_at = None


def answer_hint(key: str, conversation: dict[str, Any] | None) -> str:
    """How the employee answers on ``key``: in the thread where a reply there is a comment (a Slack DM;
    a channel thread with a mention, as the bot hears nothing else there), else the command (a Teams
    1:1 or group chat has no threads)."""
    c = conversation or {}
    if c.get("reply_kind") == "slack.post" and str(c.get("channel") or "").startswith("D"):
        return "reply in this thread"
    if (c.get("reply_kind") == "slack.post" and c.get("thread_ts")) or (
            c.get("reply_kind") == "teams.post" and c.get("conversation_type") == "channel"):
        return "reply in this thread and mention me"
    return f"`/handoff comment {key} <text>`"


def _tell(key: str, update: MspUpdate, comment: str, author: str, previous: str, kept_closed: bool,
          *, answer: str) -> str | None:
    """What the employee reads, or None when there is nothing new for them."""
    who = f"the service desk ({author})" if author else "the service desk"
    status = update.status or ""
    changed = bool(status) and not kept_closed and status != previous
    label = STATUS_LABEL.get(status, status)
    if update.type == "comment":
        text = f"*{key}*: {who} wrote: {comment}"
        if changed:
            text += f"\n{who[0].upper()}{who[1:]} set the status to *{label}*."
        if changed and status in tickets.DONE_STATUSES:
            return text + f" Not fixed? `/handoff reopen {key} <why>`."
        return text + f"\n(To answer, {answer}.)"
    if not changed:
        return None
    text = f"*{key}*: {who} set the status to *{label}*."
    if status in tickets.DONE_STATUSES:
        text += f" Not fixed? `/handoff reopen {key} <why>`."
    elif status == "waiting":
        text += f" They may be waiting for you: to answer, {answer}."
    return text
