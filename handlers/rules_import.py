"""Whole rule sets from outside: ``rules import`` YAML, and validation with readable problems.

:func:`load_import` turns pasted text into a validated, normalised ``routing:`` mapping or raises
:class:`CommandError`; it never raises anything else, whatever the text (unbalanced fences, YAML
aliases, deep nesting, wrong types, RE2-refused regexes). Nothing is stored here: a failing import
leaves the draft as it was.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml

from handlers.rules_tokens import CommandError
from handlers.text_input import redact_to_fit
from handlers.yaml_input import DuplicateKey, load_yaml
from routing.model import RuleSet
from routing.rules import RuleSetError, ruleset_from_dict, ruleset_to_dict

MAX_IMPORT_CHARS = 200_000
MAX_YAML_DEPTH = 12
MAX_YAML_NODES = 200_000
MAX_PROBLEMS_SHOWN = 15
_PATH = re.compile(r"^rules\[(\d+)\]")
_FREE_TEXT = ("description", "note")
#: The ``max_length`` of a rule's or a queue's description and note (routing.rules): a placeholder
#: may be longer than the secret it replaces, and a stored version must stay valid.
MAX_FREE_TEXT_CHARS = 500


def validate(content: Mapping[str, Any], *, usage: str = "") -> RuleSet:
    """The rule set of ``content``, or CommandError listing its problems (rule ids named)."""
    try:
        return ruleset_from_dict(content)
    except RuleSetError as exc:
        raise CommandError(problems_text(exc.problems, content), usage) from None


def problems_text(problems: tuple[str, ...], content: Mapping[str, Any]) -> str:
    rules = content.get("rules") if isinstance(content, Mapping) else None

    def named(p: str) -> str:
        m = _PATH.match(p)
        if m and isinstance(rules, list) and int(m.group(1)) < len(rules) and isinstance(rules[int(m.group(1))], dict):
            rid = rules[int(m.group(1))].get("id")
            return f"{m.group(0)} ({rid})" + p[m.end():] if isinstance(rid, str) else p
        return p

    shown = [f"• {named(p)}" for p in problems[:MAX_PROBLEMS_SHOWN]]
    if len(problems) > MAX_PROBLEMS_SHOWN:
        shown.append(f"• … and {len(problems) - MAX_PROBLEMS_SHOWN} more")
    return "the rules are not valid:\n" + "\n".join(shown)


def normalise(content: Mapping[str, Any], *, usage: str = "") -> dict[str, Any]:
    """``content`` validated, in canonical form, and with secrets redacted from its free text.

    Every draft edit, import and publish goes through here, so a description or note such as
    "svc password is …" reaches neither a draft, a version nor ``rules show`` in clear (only the
    audit copy used to be redacted). Matching terms and regexes stay as typed: they are what the
    rule matches, not prose about it.
    """
    return _redact_free_text(ruleset_to_dict(validate(content, usage=usage)))


def _redact_free_text(content: dict[str, Any]) -> dict[str, Any]:
    for item in (*content["rules"], *content["queues"]):
        for key in _FREE_TEXT:
            if item.get(key):
                item[key] = redact_to_fit(item[key], MAX_FREE_TEXT_CHARS)
    return content


def import_block(rest: str, usage: str) -> str:
    """The YAML of ``rules import``: the first fenced code block, else the whole text."""
    body = rest.strip()
    start = body.find("```")
    if start >= 0:
        end = body.find("```", start + 3)
        if end < 0:
            raise CommandError("the ```yaml code block is not closed: end it with ```", usage)
        inner = body[start + 3:end]
        first, nl, remainder = inner.partition("\n")
        if nl and first.strip().lower() in ("yaml", "yml"):
            inner = remainder
        body = inner
    if not body.strip():
        raise CommandError("paste the rules after `rules import` in a ```yaml code block", usage)
    return body


def load_import(text: str, *, usage: str = "") -> dict[str, Any]:
    """The normalised ``routing:`` mapping of pasted YAML (with or without the ``routing:`` key).

    Raises:
        CommandError: not YAML, aliases or too deep, not a rule set, or invalid (every problem listed).
    """
    data = _safe_yaml(text, usage)
    if isinstance(data, Mapping) and set(data) == {"routing"}:
        data = data["routing"]
    if not isinstance(data, Mapping) or not ({"queues", "rules"} & {k for k in data if isinstance(k, str)}):
        raise CommandError("expected the `routing:` section (a mapping with `queues` and `rules`), as "
                           "`rules export` prints it", usage)
    return normalise(data, usage=usage)


def _safe_yaml(text: str, usage: str) -> Any:
    depth = nodes = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise CommandError("YAML anchors and aliases (&, *) are not accepted: write the values out", usage)
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_YAML_DEPTH:
                    raise CommandError(f"the YAML nests deeper than {MAX_YAML_DEPTH} levels; a rule set needs 5", usage)
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
            nodes += 1
            if nodes > MAX_YAML_NODES:
                raise CommandError("the YAML is too large", usage)
        return load_yaml(text)
    except CommandError:
        raise
    except DuplicateKey as exc:
        raise CommandError(str(exc), usage) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise CommandError(f"not valid YAML{where}: {exc.problem or exc}", usage) from None
    except Exception as exc:  # noqa: BLE001 - PyYAML on hostile input (e.g. 2024-02-30 as a date)
        raise CommandError(f"not valid YAML: {type(exc).__name__}: {str(exc)[:200]}", usage) from None


__all__ = ["MAX_IMPORT_CHARS", "RuleSet", "import_block", "load_import", "normalise", "problems_text", "validate"]
