"""``handoff classify``: where a message would go and why, writing nothing.

The rules are those of app.yaml (``HANDOFF_CONFIG`` or ``--config``) as they are on disk, reported
as version 0: an operator editing a local copy sees what that copy decides, before any replica
imports it. No database is opened, so nothing can be stored by a command that only reads (it used
to import the file as a new live version, the way ``serve`` does at start). What the stored
versions decide, chat edits included, is what ``/handoff rules test`` shows.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from bot.config import Settings

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
    # Once "use app.yaml instead of the stored version"; app.yaml is now the only source. Kept for scripts.
    p.add_argument("--rules-file", action="store_true", help=argparse.SUPPRESS)


async def classify(settings: Settings, args: argparse.Namespace, stdin: TextIO, stdout: TextIO) -> int:
    """``handoff classify``: the decision for ``args.text``, or one JSON line per input line with ``--jsonl``."""
    from routing.engine import classify_safely, compile_ruleset
    from routing.model import Message

    classifier = compile_ruleset(settings.ruleset())

    def decide(text: str) -> Any:
        return classify_safely(classifier, Message(text=text, platform=args.platform, channel_id=args.channel))

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
