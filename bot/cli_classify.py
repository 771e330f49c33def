"""``handoff classify``: where a message would go and why, writing nothing.

The rules are those of app.yaml (``HANDOFF_CONFIG`` or ``--config``) as they are on disk, reported
as version 0: an operator editing a local copy sees what that copy decides, before any replica
imports it. No database is opened, so nothing can be stored by a command that only reads (it used
to import the file as a new live version, the way ``serve`` does at start). ``--live`` reads the
version the bot runs on (chat edits included) from ``HANDOFF_DATABASE_URL`` instead, and reports
its number; it migrates nothing and writes nothing either.

The text goes through the intake's own decision (:meth:`handlers.intake.Intake.decide`): cleaning,
redaction, clipping to ``server.max_message_chars`` and the message's time for rules with
``active``/``mute`` windows (now, or ``--at``), so the answer is the one the bot would give.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from bot.config import Settings

if TYPE_CHECKING:
    from handlers.intake import Intake
    from routing.engine import Classifier
    from routing.model import Decision

_SURROGATE = re.compile(r"[\ud800-\udfff]")
DESCRIPTION = (
    "Show where a message would go and why, with the rules of app.yaml as they are on disk (HANDOFF_CONFIG or "
    "--config; reported as rules version 0), or with --live the stored version the bot runs on (read from "
    "HANDOFF_DATABASE_URL, chat edits included); stores nothing either way."
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
    p.add_argument("--live", action="store_true", help="the stored rule-set version the bot runs on (reads "
                   "HANDOFF_DATABASE_URL; writes nothing) instead of app.yaml")
    # Once "use app.yaml instead of the stored version", which is now the default. Kept for scripts.
    p.add_argument("--rules-file", action="store_true", help=argparse.SUPPRESS)


async def classify(settings: Settings, args: argparse.Namespace, stdin: TextIO, stdout: TextIO) -> int:
    """``handoff classify``: the decision for ``args.text``, or one JSON line per input line with ``--jsonl``."""
    from handlers.intake import Inbound

    at: datetime | None = args.at
    clock = (lambda: at) if at is not None else _now
    if args.live:
        try:
            classifier = await _live_classifier(settings)
        except Exception as exc:  # noqa: BLE001 - no database, not migrated, no rules: the operator's to fix
            from bot.cli import _safe_url

            print(f"handoff classify --live: cannot read the stored rules from {_safe_url(settings.database_url)} "
                  f"({type(exc).__name__}); check HANDOFF_DATABASE_URL and run `handoff db upgrade` and "
                  "`handoff serve` once", file=sys.stderr)
            return 2
        source = "stored, what the bot runs on"
    else:
        from routing.engine import compile_ruleset

        classifier, source = compile_ruleset(settings.ruleset()), str(settings.config_path)
    intake = _intake(settings, classifier, clock)

    def decide(text: str) -> Decision:
        inbound = Inbound(platform=args.platform, event_id="classify", text=text, user_id="", channel_id=args.channel)
        return intake.decide(inbound)[1]

    if args.jsonl:
        utf8_stdio(stdin, stdout)
        return _jsonl(stdin, stdout, decide)
    if not args.text:
        print('handoff classify: give the message text, e.g. handoff classify "outlook keeps crashing"', file=sys.stderr)
        return 2
    d = decide(args.text)
    pages = "yes" if d.pages else "no"
    stdout.write(
        f"route:    {d.route}\nqueue:    {d.queue}\nseverity: {d.severity}\npages:    {pages}\n"
        f"rule:     {d.rule_id} (rules v{d.ruleset_version}: {source})\nwhy:      {d.why}\n"
    )
    return 0


class BadLine(ValueError):
    """An input line of ``--jsonl`` that cannot be answered; the message says why."""


def utf8_stdio(stdin: TextIO, stdout: TextIO) -> None:
    """Read stdin as UTF-8 with undecodable bytes kept as lone surrogates, so that a bad line is refused
    on its own instead of a UnicodeDecodeError ending the run; write UTF-8 whatever the locale."""
    if isinstance(stdin, io.TextIOWrapper):
        stdin.reconfigure(encoding="utf-8", errors="surrogateescape")
    if isinstance(stdout, io.TextIOWrapper):
        stdout.reconfigure(encoding="utf-8", errors="strict")


def _jsonl(stdin: TextIO, stdout: TextIO, decide: Callable[[str], Decision]) -> int:
    """One JSON line out per line in: the decision with the line's id, or ``{"line": N, "error": ...}``
    (and exit status 1). Every line out is standard JSON in UTF-8: no NaN, no lone surrogate."""
    status = 0
    for lineno, line in enumerate(stdin, 1):
        if not line.strip():
            continue
        try:
            item_id, text = _item(line)
            out = _dumps({"id": item_id, **decide(text).as_dict()})
        except ValueError as exc:  # BadLine, or an answer that is not standard JSON (UnicodeEncodeError...)
            out = json.dumps({"line": lineno, "error": str(exc)})  # ASCII: always valid
            status = 1
        stdout.write(out + "\n")
    return status


def _item(line: str) -> tuple[str | int | float, str]:
    """The id and the text of one input line.

    Raises:
        BadLine: not UTF-8, not JSON, no string ``text``, or no id that can be echoed as standard JSON.
    """
    if _SURROGATE.search(line):
        raise BadLine("not valid UTF-8")
    try:
        item = json.loads(line)
    except RecursionError:
        raise BadLine("JSON nested too deeply") from None
    except ValueError as exc:
        raise BadLine(f"not JSON: {exc}") from None
    if not isinstance(item, dict) or not isinstance(item.get("text"), str):
        raise BadLine('expected an object with a string "text"')
    if "id" not in item:
        raise BadLine('missing "id": each line needs one to match its answer')
    item_id = item["id"]
    if not _echoable(item_id):
        raise BadLine('"id" must be a string or a finite number')
    return item_id, item["text"]


def _echoable(value: object) -> bool:
    """An id written back as standard JSON: a string without lone surrogates, an integer or a finite number."""
    if isinstance(value, bool):
        return False
    if isinstance(value, str):
        return not _SURROGATE.search(value)
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


def _dumps(obj: dict[str, Any]) -> str:
    """``obj`` as one line of standard JSON; ValueError (UnicodeEncodeError) if it is not UTF-8 text."""
    line = json.dumps(obj, ensure_ascii=False, allow_nan=False)
    line.encode("utf-8")
    return line


def _intake(settings: Settings, classifier: Classifier, clock: Callable[[], datetime]) -> Intake:
    """An intake that only decides, with ``classifier``: its sessionmaker is bound to no database, so a
    write would fail instead of storing anything."""
    from sqlalchemy.ext.asyncio import async_sessionmaker

    from bot.paging_setup import intake_options
    from handlers.intake import Intake
    from handlers.rules_state import FixedRules

    return Intake(sessionmaker=async_sessionmaker(), rules=FixedRules(classifier), clock=clock,
                  options=intake_options(settings))


async def _live_classifier(settings: Settings) -> Classifier:
    """The live stored rule-set version, read (not migrated, not imported from app.yaml)."""
    from sqlalchemy.engine import make_url

    from handlers.rules_state import ActiveRules
    from storage import db

    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
        raise FileNotFoundError("no such database file")  # connecting would create an empty one
    engine = db.make_engine(settings.database_url, pool_size=1)
    try:
        rules = ActiveRules(sessionmaker=db.make_sessionmaker(engine), clock=_now)
        await rules.refresh(force=True)
        return rules.classifier
    finally:
        await engine.dispose()


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
