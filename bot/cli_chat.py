"""``handoff chat``: a terminal conversation with the bot as an employee.

The same core as Slack and Teams (intake, commands, storage, the outbox worker run after each
message), so a newcomer sees the whole path without any chat account: the reply, then what went to
the MSP, the pager or the in-house channel.

Input is read on the event loop (:class:`_Lines`), not in a thread: a thread blocked in ``readline``
cannot be interrupted and ``asyncio.run`` waits for it at exit, so Ctrl-C used to end chat only at
the next Enter. Ctrl-C now ends it at once (exit status 130, as for any command).
"""

from __future__ import annotations

import asyncio
import io
import os
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
        lines = _Lines(stdin)
        while True:
            if interactive:
                stdout.write("you> ")
            stdout.flush()
            try:
                line = await lines.readline()
            except asyncio.CancelledError:  # Ctrl-C: the shell's prompt goes on a line of its own
                stdout.write("\n" if interactive else "")
                raise
            if not line:
                stdout.write("\n" if interactive else "")  # Ctrl-D: likewise
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


class _Lines:
    """Lines of ``stdin``, read on the event loop so that a cancellation (Ctrl-C) ends the wait at once.

    A real file descriptor is watched with ``add_reader`` and read with ``os.read``; bytes that are
    not UTF-8 become U+FFFD (a person's message is always taken, as on the other edges). Regular
    files and in-memory streams never block: they are read directly.
    """

    def __init__(self, stdin: TextIO) -> None:
        self._stdin = stdin
        self._fd = _fileno(stdin)
        self._pending = b""
        self._eof = False

    async def readline(self) -> str:
        """The next line, with its newline; "" at the end of input."""
        if self._fd is None:
            return self._stdin.readline()
        while not self._eof and b"\n" not in self._pending:
            chunk = await self._read(self._fd)
            self._eof = not chunk
            self._pending += chunk
        line, newline, self._pending = self._pending.partition(b"\n")
        return (line + newline).decode("utf-8", "replace")

    @staticmethod
    async def _read(fd: int) -> bytes:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()

        def wake() -> None:  # may run again before the reader is removed
            if not ready.done():
                ready.set_result(None)

        try:
            loop.add_reader(fd, wake)
        except (OSError, ValueError):  # a regular file or /dev/null: epoll refuses it, and it never blocks
            return os.read(fd, 1 << 16)
        try:
            await ready
        finally:
            loop.remove_reader(fd)
        return os.read(fd, 1 << 16)


def _fileno(stream: TextIO) -> int | None:
    """The descriptor under ``stream``, or None for an in-memory one (tests)."""
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None


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
