"""The values of ``rules …`` options, each parsed and checked: choices, ids, numbers, versions,
times, mentions, and the lists of terms and regexes (with the limits of :mod:`routing.rules`).

Each function returns the value or raises :class:`~handlers.rules_tokens.CommandError` saying what was
wrong, with the command's usage line; :mod:`handlers.rules_grammar` puts them together.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from handlers.rules_help import Flag
from handlers.rules_tokens import CommandError
from routing.regexes import compile_regex
from routing.rules import (
    ID_PATTERN,
    MAX_REGEX_CHARS,
    MAX_TERM_CHARS,
    MAX_TERMS_PER_LIST,
)
from routing.text import term_key

_ID = re.compile(ID_PATTERN)


def scalar(spec: Flag, raw: str | None, usage: str) -> object:
    name = spec.name
    if spec.kind == "bool":
        return True
    value = (raw or "").strip()
    if spec.kind == "choice":
        low = value.lower()
        if low not in spec.choices:
            raise CommandError(f"--{name} {value[:40]!r} is not one of {', '.join(spec.choices)}", usage)
        return low
    if spec.kind == "id":
        return rule_id(value, usage, what=f"--{name}")
    if spec.kind == "int":
        return whole_number(value, name, spec.low, spec.high, usage)
    if spec.kind == "version":
        return version(value, usage)
    if spec.kind == "time":
        return instant(value, usage)
    if spec.kind == "user":
        return mention(value, "@", usage, name)
    if spec.kind == "channel":
        return mention(value, "#", usage, name)
    if len(value) > 500:
        raise CommandError(f"--{name} is {len(value)} characters; the limit is 500", usage)
    return value


def items(spec: Flag, raw: str, usage: str) -> list[str]:
    name = spec.name
    if spec.kind == "regex":
        pattern = raw
        if not pattern:
            return []
        if len(pattern) > MAX_REGEX_CHARS:
            raise CommandError(f"--{name}: regex is {len(pattern)} characters; the limit is {MAX_REGEX_CHARS}", usage)
        try:
            compile_regex(pattern)
        except ValueError as exc:
            raise CommandError(f"--{name}: {exc}", usage) from None
        return [pattern]
    items = [t.strip() for t in raw.replace("，", ",").split(",")]
    items = [t for t in items if t]
    if len(items) > MAX_TERMS_PER_LIST:
        raise CommandError(f"--{name}: {len(items)} values; the limit is {MAX_TERMS_PER_LIST}", usage)
    kind = name.split("-", 1)[1] if name.startswith(("add-", "remove-")) else name
    for item in items:
        if len(item) > MAX_TERM_CHARS:
            raise CommandError(f"--{name}: {item[:30]!r}… is {len(item)} characters; the limit is {MAX_TERM_CHARS}", usage)
        if kind in ("any", "all", "none"):
            try:
                term_key(item)
            except ValueError as exc:
                raise CommandError(f"--{name}: {exc}", usage) from None
        elif kind == "platforms" and item.lower() not in ("slack", "teams", "console"):
            raise CommandError(f"--{name}: {item[:30]!r} is not slack, teams or console", usage)
    return [i.lower() for i in items] if kind == "platforms" else items


def rule_id(value: str, usage: str, *, what: str = "rule id") -> str:
    candidate = value.strip()
    if not _ID.fullmatch(candidate):
        raise CommandError(
            f"{what} {candidate[:40]!r} is not a valid id: use 1-64 lowercase letters, digits, '-', '_' or '.', "
            "starting with a letter or digit", usage,
        )
    return candidate


def whole_number(value: str, name: str, low: int, high: int, usage: str) -> int:
    if not value.isascii() or not value.isdigit() or len(value) > 9:
        raise CommandError(f"--{name} needs a whole number from {low} to {high}, not {value[:20]!r}", usage)
    number = int(value)
    if not low <= number <= high:
        raise CommandError(f"--{name} must be from {low} to {high}", usage)
    return number


def version(value: str, usage: str) -> int:
    raw = value.strip().lower().removeprefix("v")
    if not raw.isascii() or not raw.isdigit() or len(raw) > 9 or int(raw) < 1:
        raise CommandError(f"{value[:20]!r} is not a version number (e.g. 12 or v12; see `rules history`)", usage)
    return int(raw)


def instant(value: str, usage: str) -> datetime:
    try:
        at = datetime.fromisoformat(value.strip().replace("z", "Z"))
        at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)  # OverflowError at year 1 or 9999
    except ValueError:
        raise CommandError(f"--at {value[:40]!r} is not an ISO time (e.g. 2024-05-02T09:14 or 2024-05-02T09:14Z)", usage) from None
    except OverflowError:
        at = datetime.min.replace(tzinfo=UTC)
    if not 1970 <= at.year <= 2999:  # rule windows are computed around it: keep it far from datetime's limits
        raise CommandError(f"--at {value[:40]!r} is out of range: give a time between 1970 and 2999", usage)
    return at


def mention(value: str, sigil: str, usage: str, name: str) -> str:
    """``<@U123|alex>`` / ``<#C123|general>`` (Slack's escaped mentions) or a plain id."""
    v = value.strip()
    if v.startswith("<" + sigil) and v.endswith(">"):
        v = v[2:-1].partition("|")[0]
    v = v.lstrip(sigil)
    if not v or len(v) > 255 or any(c.isspace() for c in v):
        raise CommandError(f"--{name} needs an id such as U0123ABC or a mention, not {value[:40]!r}", usage)
    return v
