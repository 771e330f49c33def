"""The ``rules …`` command grammar: pure and total.

Whatever an admin types, :func:`parse` returns a :class:`Parsed` or raises :class:`CommandError`
(what was wrong, and the correct form); it never raises anything else. Words are split by
:func:`handlers.rules_tokens.tokenize` (quotes, escapes); options are ``--flag value`` or
``--flag=value``; lists are comma-separated inside one (quoted) value; ``--regex`` repeats. The
option tables, usage lines and help live in :mod:`handlers.rules_help`; each option's value is parsed
and checked by :mod:`handlers.rules_values` (with the limits of :mod:`routing.rules`).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field, replace
from datetime import datetime

from handlers import rules_values as option
from handlers.rules_help import FLAGS, LIST_KINDS, SUBCOMMANDS, USAGE, Flag
from handlers.rules_import import MAX_IMPORT_CHARS, import_block
from handlers.rules_tokens import CommandError, Token, slack_unescape, tokenize
from routing.rules import MAX_TERMS_PER_LIST

#: The longest command text accepted (an import may be longer, see MAX_IMPORT_CHARS).
MAX_COMMAND_CHARS = 8_000
MAX_REGEXES = 100


@dataclass(frozen=True, slots=True)
class RuleChange:
    """What ``rules add``/``rules edit`` set on a rule. None (or absent) means "not given"."""

    route: str | None = None
    queue: str | None = None
    severity: str | None = None
    description: str | None = None
    note: str | None = None
    continue_: bool | None = None
    ignore_negated: bool | None = None
    lists: dict[str, tuple[str, ...]] = field(default_factory=dict)
    add: dict[str, tuple[str, ...]] = field(default_factory=dict)
    remove: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        scalars = (self.route, self.queue, self.severity, self.description, self.note, self.continue_,
                   self.ignore_negated)
        return all(v is None for v in scalars) and not (self.lists or self.add or self.remove)


@dataclass(frozen=True, slots=True)
class Parsed:
    """A parsed ``rules`` command; only the fields its subcommand uses are set."""

    sub: str
    rule_id: str | None = None
    topic: str | None = None
    change: RuleChange = field(default_factory=RuleChange)
    before: str | None = None
    after: str | None = None
    page: int = 1
    days: int | None = None
    confirm: bool = False
    note: str | None = None
    draft: bool = False
    version: int | None = None
    text: str = ""
    as_user: str | None = None
    channel: str | None = None
    platform: str | None = None
    groups: tuple[str, ...] = ()
    at: datetime | None = None
    yaml_text: str = ""
    raw: str = ""


# --- parser --------------------------------------------------------------------------------------


def parse(text: str) -> Parsed:
    """Parse what followed ``rules`` (already Slack-unescaped when it came from Slack).

    Raises:
        CommandError: what is wrong, with the usage of the subcommand.
    """
    stripped = text.strip()
    parts = stripped.split(maxsplit=1)
    word = parts[0] if parts else ""
    rest = stripped[len(word):]
    sub = subcommand(word)
    usage = USAGE[sub]
    if sub == "import":
        if len(stripped) > MAX_IMPORT_CHARS:
            raise CommandError(f"the import is {len(stripped):,} characters; the limit is {MAX_IMPORT_CHARS:,}", usage)
        return Parsed(sub="import", yaml_text=import_block(rest, usage), raw=stripped)
    if len(stripped) > MAX_COMMAND_CHARS:
        raise CommandError(f"the command is {len(stripped):,} characters; the limit is {MAX_COMMAND_CHARS:,}", usage)
    positional, flags = _split(tokenize(rest, usage=usage), sub, usage)
    return replace(_build(sub, positional, flags, usage), raw=stripped)  # audit_text redacts, then clips


def subcommand(word: str) -> str:
    name = word.lower().strip().lstrip("-\u2014\u2013")
    if not name or name in ("help", "h", "?"):
        return "help"
    name = {"remove": "rm", "delete": "rm", "ls": "list", "log": "history"}.get(name, name)
    if name not in SUBCOMMANDS:
        close = difflib.get_close_matches(name, SUBCOMMANDS, n=1)
        hint = f"; did you mean `rules {close[0]}`?" if close else ""
        raise CommandError(f"unknown subcommand {word[:40]!r}{hint}", USAGE["help"])
    return name


def _split(tokens: list[Token], sub: str, usage: str) -> tuple[list[str], list[tuple[Flag, str | None]]]:
    allowed = SUBCOMMANDS[sub]
    positional: list[str] = []
    flags: list[tuple[Flag, str | None]] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        name = tok.flag
        if name is None:
            positional.append(tok.text)
            i += 1
            continue
        spec = FLAGS.get(name)
        if spec is None or name not in allowed:
            close = difflib.get_close_matches(name, allowed, n=1)
            hint = f"; did you mean --{close[0]}?" if close else ""
            raise CommandError(f"`rules {sub}` has no option --{name[:40]}{hint}", usage)
        inline = tok.text.partition("=")[2] if "=" in tok.text else None
        if spec.kind == "bool":
            if inline is not None:
                raise CommandError(f"--{name} takes no value", usage)
            flags.append((spec, None))
            i += 1
            continue
        if inline is not None:
            flags.append((spec, inline))
            i += 1
            continue
        if i + 1 >= len(tokens) or tokens[i + 1].flag is not None:
            raise CommandError(f"--{name} needs a value ({spec.help})", usage)
        flags.append((spec, tokens[i + 1].text))
        i += 2
    return positional, flags


def _build(sub: str, positional: list[str], flags: list[tuple[Flag, str | None]], usage: str) -> Parsed:
    values: dict[str, object] = {}
    lists: dict[str, list[str]] = {}
    add: dict[str, list[str]] = {}
    remove: dict[str, list[str]] = {}
    for spec, raw in flags:
        key = spec.name
        if spec.kind in ("list", "regex"):
            items = option.items(spec, raw or "", usage)
            target = add if key.startswith("add-") else remove if key.startswith("remove-") else lists
            kind = key.split("-", 1)[1] if key.startswith(("add-", "remove-")) else key
            merged = target.setdefault(LIST_KINDS.get(kind, kind), [])
            merged.extend(items)
            if len(merged) > (MAX_REGEXES if spec.kind == "regex" else MAX_TERMS_PER_LIST):
                raise CommandError(f"--{key}: too many values", usage)
            continue
        if key in values:
            raise CommandError(f"--{key} is given twice", usage)
        values[key] = option.scalar(spec, raw, usage)
    for a, b in (("before", "after"), ("continue", "no-continue"), ("ignore-negated", "count-negated"),
                 ("draft", "version")):
        if a in values and b in values:
            raise CommandError(f"use --{a} or --{b}, not both", usage)
    text = ""
    rule_id = topic = None
    version = values.get("version")
    if sub == "test":
        text = " ".join(positional).strip()
        if not text:
            raise CommandError("say what to test, e.g. `rules test \"my laptop is on fire\"`", usage)
    elif sub == "help":
        topic = positional[0].lower() if positional else None
        positional = positional[1:]
    elif sub in ("show", "add", "edit", "rm", "move", "enable", "disable"):
        if not positional:
            raise CommandError(f"`rules {sub}` needs a rule id", usage)
        rule_id = option.rule_id(positional.pop(0), usage)
    elif sub == "rollback":
        if not positional:
            raise CommandError("`rules rollback` needs the version to go back to (see `rules history`)", usage)
        version = option.version(positional.pop(0), usage)
    if positional and sub not in ("test",):
        raise CommandError(f"unexpected {positional[0][:40]!r}; put text with spaces in quotes", usage)
    if sub == "move" and "before" not in values and "after" not in values:
        raise CommandError("say where to: --before ID or --after ID", usage)
    change = RuleChange(
        route=_opt_str(values, "route"), queue=_opt_str(values, "queue"), severity=_opt_str(values, "severity"),
        description=_opt_str(values, "description"), note=_opt_str(values, "note") if sub in ("add", "edit") else None,
        continue_=True if "continue" in values else False if "no-continue" in values else None,
        ignore_negated=True if "ignore-negated" in values else False if "count-negated" in values else None,
        lists={k: tuple(v) for k, v in lists.items()}, add={k: tuple(v) for k, v in add.items()},
        remove={k: tuple(v) for k, v in remove.items()},
    )
    if sub == "add" and change.route is None:
        raise CommandError("a new rule needs --route msp|internal|page", usage)
    if sub == "edit" and change.empty:
        raise CommandError("say what to change, e.g. --add-any \"term\" or --severity high", usage)
    return Parsed(
        sub=sub, rule_id=rule_id, topic=topic, change=change,
        before=_opt_str(values, "before"), after=_opt_str(values, "after"),
        page=int(values.get("page", 1)),  # type: ignore[call-overload]
        days=values.get("days"),  # type: ignore[arg-type]
        confirm="confirm" in values, note=_opt_str(values, "note") if sub not in ("add", "edit") else None,
        draft="draft" in values, version=version,  # type: ignore[arg-type]
        text=text, as_user=_opt_str(values, "as"), channel=_opt_str(values, "channel"),
        platform=_opt_str(values, "platform"), groups=tuple(lists.get("user_groups", ())) if sub == "test" else (),
        at=values.get("at"),  # type: ignore[arg-type]
    )


def _opt_str(values: dict[str, object], key: str) -> str | None:
    value = values.get(key)
    return value if isinstance(value, str) else None


__all__ = [
    "MAX_COMMAND_CHARS",
    "MAX_IMPORT_CHARS",
    "CommandError",
    "Parsed",
    "RuleChange",
    "Token",
    "parse",
    "slack_unescape",
    "subcommand",
    "tokenize",
]
