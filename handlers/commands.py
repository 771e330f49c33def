"""The ``/handoff`` command, the same on every platform.

Slack's slash command and a Teams message starting with ``/handoff`` both arrive here as plain text.
The first word picks a registered command (``help``, and what later features register: ``rules``,
``status``, ``oncall`` …); anything else is a request and goes through intake, so
``/handoff my laptop will not boot`` opens a ticket.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, cast

from handlers.intake import Inbound, Intake, IntakeResult
from handlers.ports import Actor
from handlers.text_input import redact_to_fit
from routing.redact import redact

__all__ = ["Actor", "Command", "CommandReply", "CommandRouter", "EventHandler", "Handler"]


@dataclass(frozen=True, slots=True)
class CommandReply:
    """What the command answers: markdown text (both Slack mrkdwn and Teams markdown read it)."""

    text: str
    ticket: str | None = None
    intake: IntakeResult | None = None
    blocks: list[dict[str, Any]] | None = None


Handler = Callable[[Actor, str], Awaitable[CommandReply]]
#: A command that changes something once per platform event: it also gets the event id, to record
#: in its own transaction so that a platform's retry of the same message does not do it twice.
EventHandler = Callable[[Actor, str, str], Awaitable[CommandReply]]
_MAX_BLOCK_TEXT = 3_000  # Slack refuses a section text longer than this


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    summary: str
    usage: str
    handler: Handler | EventHandler
    examples: tuple[str, ...] = field(default=())
    #: ``handler`` is an :data:`EventHandler`.
    once_per_event: bool = False


class CommandRouter:
    """Maps the first word of ``/handoff …`` to a command; everything else is a request."""

    def __init__(self, *, intake: Intake) -> None:
        self._intake = intake
        self._commands: dict[str, Command] = {}
        self.register(Command("help", "what I can do", "help [command]", self._help, ("help", "help rules")))

    def register(self, command: Command) -> None:
        if command.name in self._commands:
            raise ValueError(f"command {command.name!r} is registered twice")
        self._commands[command.name] = command

    @property
    def commands(self) -> tuple[Command, ...]:
        return tuple(self._commands.values())

    async def dispatch(self, actor: Actor, text: str, *, event_id: str, reply_target: dict[str, Any] | None = None,
                       reply_kind: str | None = None) -> CommandReply:
        """Run ``text`` (what followed ``/handoff``) for ``actor``.

        ``event_id`` deduplicates platform retries when the text is a request, and for the commands
        that change something once (``once_per_event``). ``reply_kind``: the outbox kind that answers
        a request in its conversation, written in the ticket's own transaction (Teams); None when the
        platform shows the returned text itself (Slack's slash-command response).
        """
        text = text.strip()
        word, _, rest = text.partition(" ")
        name = word.lower().lstrip("-")
        if not text or name in {"h", "?"}:
            name = "help"
        command = self._commands.get(name)
        if command is not None and command.once_per_event:
            return _redacted(await cast(EventHandler, command.handler)(actor, rest.strip(), event_id))
        if command is not None:
            return _redacted(await cast(Handler, command.handler)(actor, rest.strip()))
        result = await self._intake.handle(
            Inbound(platform=actor.platform, event_id=event_id, text=text, user_id=actor.user_id,
                    user_name=actor.user_name, channel_id=actor.channel_id, channel_type="command",
                    user_groups=actor.groups, reply_kind=reply_kind, reply_target=reply_target or {})
        )
        if result.duplicate or result.reply is None:
            return CommandReply(text="Already received; the ticket id follows shortly.", intake=result)
        return CommandReply(text=result.reply.text, ticket=result.ticket, intake=result)

    async def _help(self, actor: Actor, args: str) -> CommandReply:
        topic = self._commands.get(args.split(" ", 1)[0].lower()) if args else None
        if topic is not None and topic.name != "help":
            lines = [f"*/handoff {topic.usage}*: {topic.summary}"]
            lines += [f"• `/handoff {e}`" for e in topic.examples]
            return CommandReply(text="\n".join(lines))
        lines = [
            "*handoff* routes IT requests. Write to me in a DM or @mention me with what is wrong, e.g. "
            "`outlook keeps crashing`: I answer with a ticket id, where it went and why. Critical issues "
            "(security incidents, outages) page the on-call engineer; everything else goes to the right "
            "queue without waking anyone.",
            "• `/handoff <your request>`: open a ticket from anywhere (only you see the answer)",
        ]
        lines += [f"• `/handoff {c.usage}`: {c.summary}" for c in self._commands.values()]
        return CommandReply(text="\n".join(lines))


def _redacted(reply: CommandReply) -> CommandReply:
    """``reply`` with the secrets in its text and blocks redacted.

    Commands echo what was typed ("`pwd:…` is not a ticket id", ``rules test "…"``, a refused
    value), and in Teams the answer is a ``teams.post`` outbox row: stored, then sent. Redacting
    here covers every command on every platform, including echoes not written yet. An intake reply
    does not come through here: it is built from the redacted request.
    """
    text = redact(reply.text).text
    blocks = _redact_blocks(reply.blocks) if reply.blocks else reply.blocks
    return reply if text == reply.text and blocks == reply.blocks else replace(reply, text=text, blocks=blocks)


def _redact_blocks(value: Any) -> Any:
    """Every ``text`` string of Block Kit blocks redacted, kept within Slack's 3,000 characters a
    section (a placeholder can be longer than what it replaces)."""
    if isinstance(value, dict):
        return {k: redact_to_fit(v, _MAX_BLOCK_TEXT) if k == "text" and isinstance(v, str) else _redact_blocks(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_blocks(v) for v in value]
    return value
