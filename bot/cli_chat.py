"""``handoff chat``: a terminal conversation with the bot as an employee.

The same core as Slack and Teams (intake, commands, storage, the outbox worker run after each
message), so a newcomer sees the whole path without any chat account: the reply, then what went to
the MSP, the pager or the in-house channel.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import TextIO

from bot.config import Settings


async def chat(settings: Settings, stdin: TextIO, stdout: TextIO) -> int:
    """``handoff chat``: the terminal conversation; returns the exit status."""
    from bot.core import open_core, utcnow
    from handlers.intake import Inbound
    from handlers.ports import Actor
    from storage import service

    interactive = stdin.isatty()
    async with open_core(settings, clock=utcnow) as core:
        stdout.write(
            f"handoff chat: you are an employee writing to the IT bot (rules v{core.rules.version}).\n"
            "Type a request, e.g. 'outlook keeps crashing' or 'ransomware note on my screen', or a command such as\n"
            "'/handoff status' or '/handoff help'. Ctrl-D ends.\n"
        )
        while True:
            if interactive:
                stdout.write("you> ")
                stdout.flush()
            line = await asyncio.to_thread(stdin.readline)
            if not line:
                break
            text = line.strip()
            if not text:
                continue
            if text.lower().startswith("/handoff"):  # the same commands as Slack's /handoff
                reply = await core.commands.dispatch(
                    Actor(platform="console", user_id="console-user", user_name="you", channel_id="terminal"),
                    text[len("/handoff"):], event_id=uuid.uuid4().hex)
                stdout.write("bot> " + _terminal(reply.text).replace("\n", "\n     ") + "\n")
                while await core.worker.run_once():
                    pass
                stdout.flush()
                continue
            result = await core.intake.handle(
                Inbound(platform="console", event_id=uuid.uuid4().hex, text=text, user_id="console-user",
                        user_name="you", channel_id="terminal", channel_type="im")
            )
            assert result.reply is not None
            stdout.write("bot> " + _terminal(result.reply.text).replace("\n", "\n     ") + "\n")
            while await core.worker.run_once():
                pass
            async with core.sessionmaker() as session:
                ticket = await service.get_ticket(session=session, key_or_id=result.ticket or "")
                rows = await service.list_outbox(session=session, limit=20)
            now = utcnow()
            for row in reversed([r for r in rows if ticket is not None and r.ticket_id == ticket.id]):
                note = row.last_error if row.status != "delivered" else row.detail
                status = row.status
                if status == "pending" and row.next_attempt_at > now:
                    status = f"scheduled for {row.next_attempt_at:%a %d %b %H:%M} UTC"
                    note = _SCHEDULED.get(row.kind, note)
                stdout.write(f"     -> {row.kind}: {status}" + (f" - {note}" if note else "") + "\n")
            stdout.flush()
    return 0


_SCHEDULED = {
    "sla.check": "the MSP's first response is due by then, else in-house IT takes over",
    "internal": "in-house IT is told when it opens",
    "oncall.escalate": "escalates if nobody acknowledges the page by then",
}


#: Slack emoji codes in replies, as words in a terminal.
_EMOJI = {":warning:": "WARNING:", ":no_entry:": "REFUSED:", ":rotating_light:": "ALERT:", ":x:": "NO:",
          ":white_check_mark:": "OK:", ":hourglass:": "WAIT:", ":zzz:": "", ":pencil2:": "", ":wastebasket:": ""}


def _terminal(text: str) -> str:
    for code, word in _EMOJI.items():
        text = text.replace(code + " ", f"{word} " if word else "").replace(code, word)
    return text
