"""The ticket's life seen from the employee: ``status``, ``close``, ``reopen``, ``comment``, thread comments.

Only the requester (or an admin) may see or change a ticket; anyone else is told it cannot be found,
exactly as for a ticket that does not exist, so ticket ids reveal nothing. A change is one
transaction: the ticket, a :class:`~storage.models.TicketEvent`, and the outbox rows that forward it
to where the ticket lives (an ``msp`` webhook event for MSP tickets, an ``internal`` post for
in-house and paged ones) and that answer the employee. Comment text is redacted before it is stored
or forwarded, as a request is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from handlers.commands import Command, CommandReply
from handlers.notify import requester_row
from handlers.ports import Actor, ThreadMessage, ThreadOutcome
from handlers.replies import secret_warning
from handlers.rules_access import AdminAccess
from handlers.sla import SLA_KIND
from handlers.text_input import redact_clipped
from handlers.ticket_views import STATUS_LABEL, render_list, render_ticket, when
from storage import service, tickets
from storage.models import Ticket, ticket_id_from_key, ticket_key

Row = tuple[str, dict[str, Any], str]
#: Who a forwarded event reaches, as the employee is told.
FORWARDED_TO = {"msp": "the service desk (MSP)"}
IN_HOUSE = "in-house IT"


@dataclass(frozen=True, slots=True)
class TicketOptions:
    """Tunables: the in-house channel of ``internal`` rows, comment size, list and history caps."""

    internal_channel: str | None = None
    max_comment_chars: int = 8_000
    list_limit: int = 10
    history_limit: int = 40


def forwarded_to(ticket: Ticket) -> str:
    """Who :func:`forward_rows` reaches for ``ticket``, as the employee is told."""
    if ticket.route == "msp" and ticket.sla_breached_at is not None:
        return f"{FORWARDED_TO['msp']} and {IN_HOUSE}"
    return FORWARDED_TO.get(ticket.route, IN_HOUSE)


def forward_rows(
    ticket: Ticket, *, event: str, text: str, internal_text: str, now: datetime, key: str,
    author: dict[str, str] | None = None, internal_channel: str | None = None,
) -> list[Row]:
    """The rows that tell whoever works on ``ticket`` about ``event`` (``ticket.comment`` …).

    MSP tickets: an ``msp`` webhook event (same URL and signature as new tickets, see
    docs/msp-webhook.md), and also an ``internal`` post once the SLA watchdog escalated the ticket in
    house. In-house and paged tickets: an ``internal`` post of ``internal_text``. Idempotency keys
    derive from ``key``.
    """
    rows: list[Row] = []
    if ticket.route == "msp":
        payload: dict[str, Any] = {"event": event, "id": ticket.key, "remote_id": ticket.remote_id, "text": text,
                                   "at": now.isoformat()}
        if author is not None:
            payload["author"] = author
        rows.append(("msp", payload, key))
        if ticket.sla_breached_at is None:
            return rows
        key += ":in-house"
    internal: dict[str, Any] = {"text": internal_text, "ticket": ticket.key, "event": event}
    if internal_channel:
        internal["channel"] = internal_channel
    rows.append(("internal", internal, key))
    return rows


def _person(platform: str, user_id: str, name: str) -> dict[str, str]:
    return {"platform": platform, "user_id": user_id, "name": name}


def _display(name: str, ref: str) -> str:
    return name or ref


def _clean_key(word: str) -> str:
    return word.strip("`*_\"'.,;:()[]<>")


class Tickets:
    """The ticket commands and :class:`~handlers.ports.ThreadComments`. One instance per process."""

    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Callable[[], datetime],
        access: AdminAccess | None = None,
        options: TicketOptions = TicketOptions(),
        on_commit: Callable[[], None] = lambda: None,
        critical: Callable[[ThreadMessage], bool] | None = None,
        sla_due: Callable[[datetime], datetime | None] | None = None,
    ) -> None:
        """``critical``: whether a thread message would page as a request of its own
        (:meth:`handlers.intake.Intake.is_critical`); such a message is not taken as a comment.
        ``sla_due``: when the MSP's first response to a ticket reopened at a time is due
        (:meth:`handlers.intake.Intake.sla_due_from`), so that reopening restarts the SLA watchdog."""
        self._critical = critical
        self._sla_due = sla_due
        self._sessionmaker = sessionmaker
        self._clock = clock
        self._access = access
        self._options = options
        self._on_commit = on_commit

    def commands(self) -> list[Command]:
        return [
            Command("status", "your open tickets, or one ticket with its history", "status [IT-1042]", self.status,
                    ("status", "status IT-1042")),
            Command("close", "close your ticket (whoever works on it is told)", "close IT-1042 [note]", self.close,
                    ("close IT-1042", "close IT-1042 works again since the update")),
            Command("reopen", "reopen your resolved or closed ticket", "reopen IT-1042 [reason]", self.reopen,
                    ("reopen IT-1042 it is crashing again",)),
            Command("comment", "add to your ticket (forwarded to whoever works on it)", "comment IT-1042 <text>",
                    self.comment_command, ("comment IT-1042 it also happens on my phone",), once_per_event=True),
        ]

    # -- access -----------------------------------------------------------------------------------

    async def _is_admin(self, actor: Actor) -> bool:
        return self._access is not None and (await self._access.check(actor.platform, actor.user_id)).allowed

    async def _find(self, actor: Actor, args: str, usage: str) -> tuple[int, bool, str] | CommandReply:
        """``(ticket id, actor is the requester, rest of args)`` of a ticket the actor may see, or a refusal."""
        word, _, rest = args.strip().partition(" ")
        if not word:
            return CommandReply(f"Which ticket? Type e.g. `/handoff {usage}`; `/handoff status` lists your open tickets.")
        try:
            ticket_id = ticket_id_from_key(_clean_key(word))
        except ValueError:
            return CommandReply(f"`{_clean_key(word)[:40]}` is not a ticket id. Type it as in my answers, e.g. "
                                f"`/handoff {usage}`; `/handoff status` lists your open tickets.")
        async with self._sessionmaker() as session:
            ticket = await service.get_ticket(session=session, key_or_id=ticket_id)
            owner = (ticket.platform, ticket.user_id) if ticket is not None else None
        mine = owner == (actor.platform, actor.user_id)
        if owner is None or (not mine and not await self._is_admin(actor)):
            return CommandReply(f"I can't find {ticket_key(ticket_id)} among your tickets. Check the number in my answer; "
                                "`/handoff status` lists your open tickets.")
        return ticket_id, mine, rest.strip()

    # -- status -----------------------------------------------------------------------------------

    async def status(self, actor: Actor, args: str) -> CommandReply:
        now = self._clock()
        if not args.strip():
            async with self._sessionmaker() as session:
                found, total = await tickets.open_tickets(session=session, platform=actor.platform,
                                                          user_id=actor.user_id, limit=self._options.list_limit)
                return CommandReply(render_list(found, total, now=now))
        found_one = await self._find(actor, args, "status IT-1042")
        if isinstance(found_one, CommandReply):
            return found_one
        ticket_id = found_one[0]
        async with self._sessionmaker() as session:
            ticket = await service.get_ticket(session=session, key_or_id=ticket_id)
            assert ticket is not None  # tickets are never deleted
            events = await tickets.list_events(session=session, ticket_id=ticket_id, limit=self._options.history_limit)
            facts = await tickets.delivery_facts(session=session, ticket_id=ticket_id)
            incident = (await tickets.get_incident(session=session, incident_id=ticket.incident_id)
                        if ticket.incident_id is not None else None)
            return CommandReply(render_ticket(ticket, events, facts, incident, now=now), ticket=ticket.key)

    # -- close / reopen ---------------------------------------------------------------------------

    async def close(self, actor: Actor, args: str) -> CommandReply:
        return await self._transition(actor, args, closing=True)

    async def reopen(self, actor: Actor, args: str) -> CommandReply:
        return await self._transition(actor, args, closing=False)

    async def _transition(self, actor: Actor, args: str, *, closing: bool) -> CommandReply:
        verb, past = ("close", "closed") if closing else ("reopen", "reopened")
        found = await self._find(actor, args, f"{verb} IT-1042")
        if isinstance(found, CommandReply):
            return found
        ticket_id, mine, note_raw = found
        note = redact_clipped(note_raw, self._options.max_comment_chars)  # cleaned, redacted whole, then clipped
        now = self._clock()
        async with self._sessionmaker.begin() as session:
            ticket = await tickets.lock_ticket(session=session, ticket_id=ticket_id)
            assert ticket is not None
            key, status = ticket.key, STATUS_LABEL.get(ticket.status, ticket.status)
            if closing and ticket.status == "closed":
                since = f" since {when(ticket.closed_at)}" if ticket.closed_at else ""
                return CommandReply(f"{key} is already closed{since}. `/handoff reopen {key} <why>` opens it again.",
                                    ticket=key)
            changed = await (tickets.close if closing else tickets.reopen)(session=session, ticket_id=ticket_id, now=now)
            if not changed:
                return CommandReply(f"{key} is {status}, not resolved or closed: nothing to reopen. "
                                    f"`/handoff comment {key} <text>` adds to it.", ticket=key)
            name = _display(actor.user_name, actor.ref)
            event = await tickets.add_event(
                session=session, ticket_id=ticket_id, kind="closed" if closing else "reopened", now=now,
                actor=actor.ref, text=note.text, detail={"name": name, "previous": ticket.status,
                                                         "redacted": list(note.kinds)},
            )
            said = f": {note.text}" if note.text else ""
            rows = forward_rows(
                ticket, event=f"ticket.{past}", text=note.text, internal_text=f"{key} {past} by {name}{said}", now=now,
                key=f"ticket-event:{event.id}:forward", author=_person(actor.platform, actor.user_id, actor.user_name),
                internal_channel=self._options.internal_channel,
            )
            if not mine:
                rows.append(self._tell_requester(ticket, f"{key} was {past} by {name}{said}",
                                                 key=f"ticket-event:{event.id}:requester"))
            if not closing:
                await self._restart_sla(session, ticket, now, key=f"sla:{ticket_id}:reopened:{event.id}")
            await tickets.enqueue_once(session=session, rows=rows, now=now, ticket_id=ticket_id)
            where = forwarded_to(ticket)
        self._on_commit()
        warning = secret_warning(note.kinds)
        tail = f"\n:warning: {warning}" if warning else ""
        if closing:
            return CommandReply(f"Closed {key}; I told {where}. `/handoff reopen {key} <why>` if it comes back.{tail}",
                                ticket=key)
        return CommandReply(f"Reopened {key}; I told {where}.{tail}", ticket=key)

    # -- comments ---------------------------------------------------------------------------------

    async def comment_command(self, actor: Actor, args: str, event_id: str) -> CommandReply:
        """``/handoff comment IT-1042 <text>``; a platform's retry of the same message adds nothing."""
        found = await self._find(actor, args, "comment IT-1042 <text>")
        if isinstance(found, CommandReply):
            return found
        ticket_id, mine, text = found
        if not text:
            return CommandReply(f"What should I add? Type `/handoff comment {ticket_key(ticket_id)} <your text>`.")
        now = self._clock()
        async with self._sessionmaker.begin() as session:
            ticket = await tickets.lock_ticket(session=session, ticket_id=ticket_id)
            assert ticket is not None
            if not await service.record_inbound(session=session, platform=actor.platform, event_id=event_id, now=now):
                return CommandReply(f"Already added to {ticket.key}.", ticket=ticket.key)
            answer, rows, stored = await self._comment(session, ticket, actor.platform, actor.user_id,
                                                       actor.user_name, text, now)
            if not mine:
                rows.append(self._tell_requester(ticket, f"{_display(actor.user_name, actor.ref)} added to {ticket.key}: "
                                                 f"{stored}", key=rows[0][2] + ":requester"))
            await tickets.enqueue_once(session=session, rows=rows, now=now, ticket_id=ticket_id)
            key = ticket.key
        self._on_commit()
        return CommandReply(answer, ticket=key)

    async def _restart_sla(self, session: AsyncSession, ticket: Ticket, now: datetime, *, key: str) -> None:
        """A reopened MSP ticket the MSP never answered is watched again: its check may have found it
        closed and ended, and nothing else would escalate it."""
        due = self._sla_due(now) if self._sla_due is not None else None
        if due is None or ticket.route != "msp" or ticket.first_response_at is not None \
                or ticket.sla_breached_at is not None:
            return
        ticket.sla_due_at = due
        await tickets.enqueue_once(session=session, rows=[(SLA_KIND, {"ticket_id": ticket.id}, key)], now=now,
                                   ticket_id=ticket.id, due=due)

    async def comment(self, message: ThreadMessage) -> ThreadOutcome:
        """:class:`~handlers.ports.ThreadComments`: a message in a ticket's thread becomes a comment.

        Except a critical one ("ransomware note on my screen" under a printer ticket): as a comment it
        would only be forwarded to whoever has the ticket (the MSP, perhaps) and page no one. It is
        left to intake as a request of its own (``request``), which pages and keeps it in house.
        """
        text = message.text.strip()
        now = self._clock()
        critical = self._critical is not None and self._critical(message)  # CPU: not while holding the lock
        async with self._sessionmaker.begin() as session:
            ticket = await tickets.ticket_in_thread(session=session, platform=message.platform,
                                                    channel_id=message.channel_id, thread_ref=message.thread_ref)
            if ticket is None:
                return "no-ticket"
            if critical:
                return "request"
            if not text or not await service.record_inbound(session=session, platform=message.platform,
                                                               event_id=message.event_id, now=now):
                return "comment"  # nothing to add, or a platform retry of a message already added
            answer, rows, _ = await self._comment(session, ticket, message.platform, message.user_id,
                                                  message.user_name, text, now)
            rows.append(self._tell_requester(ticket, answer, key=rows[0][2] + ":answer"))
            await tickets.enqueue_once(session=session, rows=rows, now=now, ticket_id=ticket.id)
        self._on_commit()
        return "comment"

    async def _comment(
        self, session: AsyncSession, ticket: Ticket, platform: str, user_id: str, user_name: str, raw: str,
        now: datetime,
    ) -> tuple[str, list[Row], str]:
        """Store a comment (redacted) and build its forward row.

        Returns:
            The answer for the author, the rows to enqueue, the comment as stored (redacted).
        """
        red = redact_clipped(raw, self._options.max_comment_chars)  # cleaned, redacted whole, then clipped
        ref, name = f"{platform}:{user_id}", _display(user_name, f"{platform}:{user_id}")
        event = await tickets.add_event(session=session, ticket_id=ticket.id, kind="comment", now=now, actor=ref,
                                        text=red.text, detail={"name": name, "redacted": list(red.kinds)})
        rows = forward_rows(ticket, event="ticket.comment", text=red.text,
                          internal_text=f"{ticket.key}: comment from {name}: {red.text}", now=now,
                          key=f"ticket-event:{event.id}:forward", author=_person(platform, user_id, user_name),
                          internal_channel=self._options.internal_channel)
        answer = f"Added to {ticket.key} and sent to {forwarded_to(ticket)}."
        if ticket.status == "closed":
            answer += f" {ticket.key} is closed: `/handoff reopen {ticket.key} <why>` if the problem is back."
        warning = secret_warning(red.kinds)
        if warning:
            answer += f"\n:warning: {warning}"
        return answer, rows, red.text

    @staticmethod
    def _tell_requester(ticket: Ticket, text: str, *, key: str) -> Row:
        kind, payload = requester_row(platform=ticket.platform, user_id=ticket.user_id,
                                      conversation=ticket.conversation, text=text, ticket=ticket.key)
        return kind, payload, key
