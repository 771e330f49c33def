"""The Teams bot: what each activity means (botbuilder's ``ActivityHandler``), behind :mod:`bot.teams`.

A 1:1 message or a channel @mention becomes an intake request whose reply (ticket id, route, reason
as an Adaptive Card) is a ``teams.post`` outbox row; ``/handoff …`` goes to the command router.
On-call page cards (:func:`bot.page_cards.page_card`): an ``adaptiveCard/action`` invoke with verb
``handoff.page.<action>`` calls :class:`~handlers.ports.PageActions` and is answered in the invoke
response itself, with the updated card (``application/vnd.microsoft.card.adaptive``: Teams replaces
the card in place) when the outcome has one, else a message (``…activity.message``) shown to the
presser; a malformed one gets ``statusCode`` 400 (``application/vnd.microsoft.error``). The
``Action.Submit`` fallback (a message whose ``value`` is ``{"verb", "incident_id"}``) acts the same
and is answered with a ``teams.post`` reply. A channel message in a reply chain (conversation id
``…;messageid=<root>`` with another activity id) goes first to :class:`~handlers.ports.ThreadComments`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from botbuilder.core import ActivityHandler, TurnContext
from botbuilder.schema import InvokeResponse
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.metrics import Metrics
from bot.page_cards import BadButton, PagePress, card_action, page_card
from bot.teams_cards import CARD_TYPE, TeamsActivity
from bot.teams_refs import ConversationBook
from handlers.commands import Actor, CommandRouter
from handlers.intake import Inbound, Intake
from handlers.ports import (
    ActionOutcome,
    PageActions,
    ThreadComments,
    ThreadMessage,
    ThreadOutcome,
)
from storage import service
from storage.models import ticket_id_from_key

log = logging.getLogger(__name__)

#: turn_state keys under which the parsed :class:`TeamsActivity` and the raw JSON reach the handler.
ACTIVITY = "handoff.teams.activity"
BODY = "handoff.teams.body"
#: ``/handoff <text>`` (what the Slack slash command does) in a Teams message.
COMMAND = re.compile(r"/handoff(?:\s+(.*))?", re.IGNORECASE | re.DOTALL)
#: Titles of the app manifest's command menu: picking one sends the bare word.
MENU_COMMANDS = frozenset({"help"})
CHANNEL_TYPES = {"personal": "personal", "channel": "channel", "groupChat": "group"}
ADAPTIVE_CARD_ACTION = "adaptiveCard/action"
MESSAGE_TYPE = "application/vnd.microsoft.activity.message"
NOT_WIRED = ActionOutcome(ok=False, text="On-call actions are not enabled on this server yet; nothing was changed.")

__all__ = ["ACTIVITY", "BODY", "COMMAND", "MENU_COMMANDS", "ConversationBook", "HandoffTeamsBot"]


class HandoffTeamsBot(ActivityHandler):
    """Turns Teams activities into intake requests and ``/handoff`` commands.

    * ``message`` in a 1:1 chat, or mentioning the bot in a channel or group chat: the mention is
      removed; ``/handoff …`` (or a bare command-menu word such as ``help``) goes to the command
      router, anything else to intake with ``reply_kind="teams.post"``. A channel reply in a
      ticket's thread is a comment on it (``threads``), mentioned or not. Page-button submits (a
      ``value``) act; other submits and unmentioned channel messages are ignored.
    * ``invoke``: page buttons (``adaptiveCard/action``) act and answer with a card or a message;
      other invokes are answered 200 and ignored.
    * Where we saw someone (1:1) or a channel/group chat, and when the bot is added somewhere, the
      conversation reference is stored for proactive messages (:class:`ConversationBook`).
    """

    def __init__(self, *, intake: Intake, commands: CommandRouter, sessionmaker: async_sessionmaker[AsyncSession],
                 clock: Callable[[], datetime], metrics: Metrics, on_commit: Callable[[], None] = lambda: None,
                 remembered: int = 10_000, page_actions: PageActions | None = None,
                 threads: ThreadComments | None = None) -> None:
        self.page_actions = page_actions
        self.threads = threads
        self._intake = intake
        self._commands = commands
        self._sessionmaker = sessionmaker
        self._clock = clock
        self._metrics = metrics
        self._on_commit = on_commit
        self.book = ConversationBook(sessionmaker=sessionmaker, clock=clock, remembered=remembered)

    async def close(self) -> None:
        await self.book.close()

    async def on_message_activity(self, turn_context: TurnContext) -> None:
        act: TeamsActivity = turn_context.turn_state[ACTIVITY]
        if act.from_id == act.bot_id:
            return  # our own message
        if act.has_value:
            await self._submit(act, turn_context.turn_state[BODY].get("value"))
            return
        command = COMMAND.fullmatch(act.text) if act.text else None
        is_command = command is not None or act.text.lower() in MENU_COMMANDS
        in_thread = await self._thread_comment(act) if not is_command and act.text else "no-ticket"
        if in_thread == "comment":
            return
        if act.conversation_type not in ("personal", "") and not act.bot_mentioned and in_thread != "request":
            return  # channel chatter not addressed to us (a critical reply in a ticket's thread is a request)
        if act.text:
            if is_command:
                await self._command(act, (command.group(1) or "") if command is not None else act.text)
            else:
                result = await self._intake.handle(Inbound(
                    platform="teams", event_id=act.event_id, text=act.text, user_id=act.user_id,
                    user_name=act.user_name, channel_id=act.team_channel_id or act.base_conversation_id,
                    channel_type=CHANNEL_TYPES.get(act.conversation_type, act.conversation_type or "personal"),
                    thread_ref=_thread(act), reply_kind="teams.post", reply_target=act.reply_target(),
                ))
                self._metrics.observe_intake("teams", result)
        self.book.note(act)

    async def on_invoke_activity(self, turn_context: TurnContext) -> InvokeResponse:
        act: TeamsActivity = turn_context.turn_state[ACTIVITY]
        if act.name == ADAPTIVE_CARD_ACTION:  # Teams shows an error unless this has a body
            return InvokeResponse(status=200, body=await self._card_action(act, turn_context.turn_state[BODY]))
        return InvokeResponse(status=200)

    async def _card_action(self, act: TeamsActivity, body: dict[str, Any]) -> dict[str, Any]:
        """The ``adaptiveCard/action`` answer: an updated card, a message, or an error."""
        try:
            press = card_action(body.get("value"))
        except BadButton as exc:
            log.warning("teams page button refused: %s", exc)
            return {"statusCode": 400, "type": "application/vnd.microsoft.error",
                    "value": {"code": "BadRequest", "message": str(exc)}}
        if press is None:
            return {"statusCode": 200, "type": MESSAGE_TYPE, "value": "Received."}
        outcome = await self._act(act, press)
        if outcome.card is not None:
            return {"statusCode": 200, "type": CARD_TYPE, "value": page_card(outcome.card)}
        return {"statusCode": 200, "type": MESSAGE_TYPE, "value": outcome.text or "Done."}

    async def _submit(self, act: TeamsActivity, value: Any) -> None:
        """An ``Action.Submit`` (the page card's fallback): act, and answer in a reply."""
        try:
            press = card_action(value)
        except BadButton as exc:
            log.warning("teams page submit refused: %s", exc)
            return
        if press is not None:
            outcome = await self._act(act, press)
            await self._answer(act, outcome.text or "Done.")

    async def _act(self, act: TeamsActivity, press: PagePress) -> ActionOutcome:
        if self.page_actions is None:
            return NOT_WIRED
        actor = Actor(platform="teams", user_id=act.user_id, user_name=act.user_name,
                      channel_id=act.team_channel_id or act.base_conversation_id)
        return await self.page_actions.act(actor=actor, action=press.action, incident_id=press.incident_id,
                                           event_id=act.event_id)

    async def _thread_comment(self, act: TeamsActivity) -> ThreadOutcome:
        """What became of a channel reply in a ticket's thread (see :class:`~handlers.ports.ThreadComments`)."""
        root = act.conversation_id.partition(";messageid=")[2]
        if self.threads is None or act.conversation_type != "channel" or not root or root == act.id:
            return "no-ticket"
        handled = await self.threads.comment(ThreadMessage(
            platform="teams", event_id=act.event_id, user_id=act.user_id,
            channel_id=act.team_channel_id or act.base_conversation_id, thread_ref=root, text=act.text,
            user_name=act.user_name,
        ))
        if handled == "comment":
            self.book.note(act)
        return handled

    async def on_conversation_update_activity(self, turn_context: TurnContext) -> None:
        act: TeamsActivity = turn_context.turn_state[ACTIVITY]
        if act.bot_id in act.members_added:  # installed in a team, a group chat or a 1:1 chat
            self.book.note(act)

    async def on_installation_update(self, turn_context: TurnContext) -> None:
        act: TeamsActivity = turn_context.turn_state[ACTIVITY]
        if act.action.startswith("add"):
            self.book.note(act)

    async def _command(self, act: TeamsActivity, text: str) -> None:
        """Run a ``/handoff`` command; its answer is a ``teams.post`` row, once per activity."""
        actor = Actor(platform="teams", user_id=act.user_id, user_name=act.user_name,
                      channel_id=act.team_channel_id or act.base_conversation_id)
        reply = await self._commands.dispatch(actor, text, event_id=act.event_id, reply_target=act.reply_target(),
                                              reply_kind="teams.post")
        if reply.intake is not None:  # a request: intake wrote its answer with the ticket, in one transaction
            self._metrics.observe_intake("teams", reply.intake)
            return
        await self._answer(act, reply.text, ticket=reply.ticket)

    async def _answer(self, act: TeamsActivity, text: str, *, ticket: str | None = None) -> None:
        """Reply to ``act`` in its thread with a ``teams.post`` row, once per activity."""
        target = act.reply_target()
        payload = {**target, "text": text, **({"ticket": ticket} if ticket else {})}
        now = self._clock()
        async with self._sessionmaker.begin() as session:
            if not await service.record_inbound(session=session, platform="teams", event_id=f"{act.event_id}#reply",
                                                now=now):
                return
            await service.enqueue(session=session, kind="teams.post", payload=payload, now=now,
                                  idempotency_key=f"teams:{act.event_id}:reply",
                                  ticket_id=ticket_id_from_key(ticket) if ticket else None)
        self._on_commit()


def _thread(act: TeamsActivity) -> str:
    """The thread a message belongs to: a channel post's root message id, else the activity id."""
    _, _, suffix = act.conversation_id.partition(";messageid=")
    return suffix or act.id
