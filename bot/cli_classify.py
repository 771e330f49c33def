"""``handoff classify``: where a message would go and why, writing nothing.

The rules are those of app.yaml (``HANDOFF_CONFIG`` or ``--config``) as they are on disk, reported
as version 0: an operator editing a local copy sees what that copy decides, before any replica
imports it. No database is opened, so nothing can be stored by a command that only reads (it used
to import the file as a new live version, the way ``serve`` does at start). What the stored
versions decide, chat edits included, is what ``/handoff rules test`` shows.

The text goes through the intake's own decision (:meth:`handlers.intake.Intake.decide`): cleaning,
redaction, clipping to ``server.max_message_chars`` and the message's time for rules with
``active``/``mute`` windows (now, or ``--at``), so the answer is the one the bot would give.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

from bot.config import Settings

if TYPE_CHECKING:
    from handlers.intake import Intake
    from routing.model import Decision

DESCRIPTION = (
    "Show where a message would go and why, with the rules of app.yaml as they are on disk (HANDOFF_CONFIG or "
    "--config; reported as rules version 0), not the stored version the bot runs on. Opens no database and "
    "stores nothing. `/handoff rules test` in chat tries the stored rules."
)


def add_parser(sub: Any) -> None:
    """The ``classify`` subcommand of ``handoff``."""
    p = sub.add_parser("classify", help="where a message would go and why, with the rules of app.yaml; stores nothing",
                       description=DESCRIPTION)
    p.add_argument("text", nargs="?", help="the message; omit with --jsonl")
    p.add_argument("--jsonl", action="store_true", help='read {"id", "text"} JSON lines on stdin, write one decision per line')
    p.add_argument("--platform", default="console")
    p.add_argument("--channel", default="")
    p.add_argument("--at", metavar="ISO-TIME", type=_instant, help="the message's time for rules with active/mute windows, e.g. "
                   "2024-05-02T09:14Z (no offset: UTC); default now")
    # Once "use app.yaml instead of the stored version"; app.yaml is now the only source. Kept for scripts.
    p.add_argument("--rules-file", action="store_true", help=argparse.SUPPRESS)


async def classify(settings: Settings, args: argparse.Namespace, stdin: TextIO, stdout: TextIO) -> int:
    """``handoff classify``: the decision for ``args.text``, or one JSON line per input line with ``--jsonl``."""
    from handlers.intake import Inbound

    at: datetime | None = args.at
    intake = _intake(settings, (lambda: at) if at is not None else _now)

    def decide(text: str) -> Decision:
        inbound = Inbound(platform=args.platform, event_id="classify", text=text, user_id="", channel_id=args.channel)
        return intake.decide(inbound)[1]

    if args.jsonl:
        status = 0
        for lineno, line in enumerate(stdin, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                if not isinstance(item, dict) or not isinstance(item.get("text"), str):
                    raise ValueError('expected an object with a string "text"')
            except ValueError as exc:
                stdout.write(json.dumps({"line": lineno, "error": str(exc)}) + "\n")
                status = 1
                continue
            d = decide(item["text"])
            stdout.write(json.dumps({"id": item.get("id"), **d.as_dict()}, ensure_ascii=False) + "\n")
        return status
    if not args.text:
        print('handoff classify: give the message text, e.g. handoff classify "outlook keeps crashing"', file=sys.stderr)
        return 2
    d = decide(args.text)
    pages = "yes" if d.pages else "no"
    stdout.write(
        f"route:    {d.route}\nqueue:    {d.queue}\nseverity: {d.severity}\npages:    {pages}\n"
        f"rule:     {d.rule_id} (rules v0: {settings.config_path})\nwhy:      {d.why}\n"
    )
    return 0


def _intake(settings: Settings, clock: Callable[[], datetime]) -> Intake:
    """An intake that only decides, with the rules of app.yaml: its sessionmaker is bound to no
    database, so a write would fail instead of storing anything."""
    from sqlalchemy.ext.asyncio import async_sessionmaker

    from bot.paging_setup import intake_options
    from handlers.intake import Intake
    from handlers.rules_state import FixedRules
    from routing.engine import compile_ruleset

    return Intake(sessionmaker=async_sessionmaker(), rules=FixedRules(compile_ruleset(settings.ruleset())),
                  clock=clock, options=intake_options(settings))


def _now() -> datetime:
    return datetime.now(UTC)


def _instant(value: str) -> datetime:
    """``--at``: read as ``/handoff rules test --at`` reads it."""
    from handlers.rules_tokens import CommandError
    from handlers.rules_values import instant

    try:
        return instant(value, "")
    except CommandError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None
