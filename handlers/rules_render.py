"""How ``rules`` answers look in chat: markdown text plus Slack Block Kit, paged when long.

Pure functions. Every answer is a :class:`~handlers.commands.CommandReply` whose ``text`` is
markdown (Slack mrkdwn and Teams read it) and whose ``blocks`` are section blocks of at most
:data:`MAX_SECTION` characters, at most :data:`MAX_BLOCKS` of them; code blocks split across
sections are closed and reopened. Long lists are paged with a footer saying how to see more.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import yaml

from handlers.commands import CommandReply
from handlers.rules_grammar import CommandError
from handlers.rules_replay import ReplayReport
from routing.model import Decision, Rule
from routing.windows import describe as describe_windows

MAX_SECTION = 2_900
MAX_BLOCKS = 50
MAX_TEXT = 12_000
EXPORT_PAGE_CHARS = 11_000


def escape(text: str) -> str:
    """Slack mrkdwn control characters in user-supplied text (Slack shows them as typed; copying them
    back into a command sends them escaped again, which the grammar undoes)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def quote(text: str, limit: int = 80) -> str:
    """A user text shortened to ``limit`` characters, on one line, escaped, in typographic quotes."""
    one = " ".join(text.split())
    short = one[:limit] + ("…" if len(one) > limit else "")
    return f"“{escape(short)}”"


def split_section(text: str, limit: int = MAX_SECTION) -> list[str]:
    """Split markdown at line ends into pieces of at most ``limit`` characters, keeping code fences whole."""
    width = limit - 10
    lines: list[str] = []
    for line in text.split("\n"):
        lines.extend(line[i:i + width] for i in range(0, len(line), width)) if len(line) > width else lines.append(line)
    pieces: list[str] = []
    current: list[str] = []
    size = 0
    in_code = False
    for line in lines:
        if current and size + len(line) + 1 > limit - 4:
            pieces.append("\n".join(current) + ("\n```" if in_code else ""))
            current, size = (["```"], 4) if in_code else ([], 0)
        current.append(line)
        size += len(line) + 1
        if line.lstrip().startswith("```"):
            in_code = not in_code
    if current:
        pieces.append("\n".join(current))
    return [p for p in pieces if p.strip()] or [""]


def reply(*sections: str, footer: str | None = None) -> CommandReply:
    """An answer made of markdown sections (and an optional footer line)."""
    blocks: list[dict[str, Any]] = []
    for section in sections:
        for piece in split_section(section):
            if piece.strip():
                blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": piece}})
    if len(blocks) > MAX_BLOCKS - 1:
        blocks = blocks[: MAX_BLOCKS - 2]
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "… (cut: use --page to see the rest)"}})
    if footer:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": footer}]})
    text = "\n\n".join(s for s in sections if s.strip()) + (f"\n\n_{footer}_" if footer else "")
    if len(text) > MAX_TEXT:
        text = text[: MAX_TEXT - 40] + "\n… (cut: use --page to see the rest)"
    return CommandReply(text=text, blocks=blocks or None)


def error_reply(err: CommandError) -> CommandReply:
    body = f":x: {err.message if err.markdown else escape(err.message)}"
    if err.usage:
        body += f"\nUsage: `{err.usage}`\n`/handoff rules help` lists every subcommand with examples."
    return reply(body)


def paged(items: Sequence[str], page: int, per_page: int, command: str) -> tuple[list[str], str | None]:
    """The items of ``page`` (1-based) and a footer naming the next page, if there is more."""
    pages = max(1, -(-len(items) // per_page))
    page = min(max(page, 1), pages)
    chunk = list(items[(page - 1) * per_page: page * per_page])
    if pages == 1:
        return chunk, None
    nxt = f" · next: `/handoff {command} --page {page + 1}`" if page < pages else ""
    return chunk, f"Page {page} of {pages} ({len(items)} items){nxt}"


# --- rules ---------------------------------------------------------------------------------------


def rule_line(position: int | None, rule: Rule) -> str:
    w = rule.when
    conds = [f"{len(v)} {k}" for k, v in (("any", w.any), ("all", w.all), ("none", w.none), ("regex", w.regex)) if v]
    conds += [k for k, v in (("channels", w.channels), ("groups", w.user_groups), ("platforms", w.platforms)) if v]
    flags = [f for f, on in (("continue", rule.continue_), ("ignores negated", rule.ignore_negated),
                             ("DISABLED", not rule.enabled)) if on]
    where = f"{position}. " if position is not None else "– "
    what = ", ".join(conds) or "everything else (default)"
    extra = f" · _{', '.join(flags)}_" if flags else ""
    if rule.active:
        extra += f" · only {describe_windows(rule.active)}"
    if rule.mute:
        extra += f" · muted {describe_windows(rule.mute)}" + (" (ignored: page rules)" if rule.route == "page" else "")
    return f"{where}`{rule.id}` → *{rule.route}* ({rule.queue}, {rule.severity}) · {what}{extra}"


def rule_yaml(rule: Mapping[str, Any]) -> str:
    text = yaml.safe_dump([dict(rule)], sort_keys=False, allow_unicode=True, width=100).rstrip()
    return "```\n" + escape(text).replace("```", "ʼʼʼ") + "\n```"


def decision_line(label: str, d: Decision) -> str:
    pages = ":rotating_light: *pages the on-call*" if d.pages else "does not page"
    head = f"*{label}*: → *{d.route}* via `{d.rule_id}` (queue {d.queue}, severity {d.severity}); {pages}"
    if d.fail_closed:
        head += " — classification failed, sent to in-house triage"
    return f"{head}\nWhy: {escape(d.why)}"


def routing_yaml(content: Mapping[str, Any]) -> str:
    return yaml.safe_dump({"routing": dict(content)}, sort_keys=False, allow_unicode=True, width=110)


def export_pages(yaml_text: str, page: int, command: str) -> tuple[str, str | None]:
    """One page of an export as a code block, and the footer when there are more pages."""
    pages: list[list[str]] = [[]]
    size = 0
    for line in yaml_text.rstrip("\n").split("\n"):
        if size + len(line) + 1 > EXPORT_PAGE_CHARS and pages[-1]:
            pages.append([])
            size = 0
        pages[-1].append(line)
        size += len(line) + 1
    n = len(pages)
    page = min(max(page, 1), n)
    body = "```\n" + escape("\n".join(pages[page - 1])).replace("```", "ʼʼʼ") + "\n```"
    if n == 1:
        return body, None
    nxt = f" · next: `/handoff {command} --page {page + 1}`" if page < n else " · last page"
    return body, f"Page {page} of {n} of the YAML (join the pages in order to re-import){nxt}"


def history_line(row: Any, live: int) -> str:
    version, created_at, author, source, note, digest = row
    when = created_at.strftime("%Y-%m-%d %H:%M UTC") if isinstance(created_at, datetime) else str(created_at)
    tag = " *(live)*" if version == live else ""
    note_text = f" · {quote(note, 100)}" if note else ""
    return f"• *v{version}*{tag} · {when} · {source} by {escape(str(author))}{note_text} · `{str(digest)[:8]}`"


def replay_sections(r: ReplayReport, page: int, *, label: str, per_page: int = 15,
                    command: str = "rules replay") -> tuple[list[str], str | None]:
    """The replay summary and one page of the requests whose paging changes."""
    moves = ", ".join(f"{a}→{b} {n}" for a, b, n in r.moves) or "none"
    partial = "" if r.complete else (f"\n:hourglass: Stopped after {r.replayed:,} of {r.total:,} (newest first): "
                                     "narrow the window with --days for a complete run.")
    head = (f"*Replay* of the {r.replayed:,} stored requests of the last {r.days} day(s) through {label}, "
            f"{r.seconds:.1f} s.\n"
            f"• change route: *{r.route_changed:,}* ({moves}) · change rule only: {r.rule_changed:,}\n"
            f"• newly page: *{r.newly_paging_count:,}* · stop paging: *{r.stopped_paging_count:,}*{partial}")
    rows = [f":rotating_light: *newly pages* {x.ticket} {quote(x.text)} — {x.old_route}/`{x.old_rule}` → "
            f"{x.new_route}/`{x.new_rule}`" for x in r.newly_paging]
    rows += [f":zzz: *stops paging* {x.ticket} {quote(x.text)} — {x.old_route}/`{x.old_rule}` → "
             f"{x.new_route}/`{x.new_rule}`" for x in r.stopped_paging]
    if r.paging_changes > len(rows):
        rows.append(f"… and {r.paging_changes - len(rows):,} more not listed")
    shown, footer = paged(rows, page, per_page, command)
    return [head, "\n".join(shown)] if shown else [head], footer
