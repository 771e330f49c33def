"""The rule linter: what must hold before a rule set may go live. Pure; no I/O.

Errors refuse a publish; warnings are shown after every edit. What is checked:

* the schema (:func:`routing.rules.ruleset_from_dict`): RE2-rejected regexes, unknown routes and
  queues, duplicate ids, a missing, conditional or disabled default;
* rules that can never fire because an earlier rule always takes their messages first
  (:func:`shadowed`: exact and conservative, see there);
* terms that look like a secret (:func:`secret_terms`): intake redacts a message before the rules
  read it, so such a term can never match (and `rules show` would print it redacted);
* the canonical critical messages (:data:`CRITICAL_MESSAGES`): a change after which one of them no
  longer pages is refused, naming the message.

A problem the live set already has is a warning, not an error, so a legacy rule set can still be
changed; what a draft makes worse is an error.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from routing.engine import Classifier, classify_safely, compile_ruleset
from routing.model import Message, Rule, RuleSet
from routing.redact import redact
from routing.regexes import costly_regexes
from routing.rules import RuleSetError, ruleset_from_dict
from routing.text import term_key

#: Messages that must page, written the way employees write in chat. A draft under which one of
#: these stops paging (while it pages under the live rules) is refused.
CRITICAL_MESSAGES: tuple[str, ...] = (
    "help!! ransomware note on my screen and all my files are encrypted",
    "files on the S drive are being renamed to .locked one after the other",
    "I think I clicked a phishing link and typed my password",
    "i entered my credentials on a fake microsoft login page",
    "someone logged into my account from another country last night",
    "we got hacked, the website shows a hacker message",
    "virus is spreading across the network, several PCs infected",
    "my mouse is moving by itself and programs open on their own",
    "possible data breach: customer data was leaked online",
    "our website is down",
    "email down for everyone??",
    "whole office has no internet",
    "power outage at the warehouse",
    "the entire site is down",
    "nobody can log in to the ERP",
    "the file server is down, nobody can open their documents",
)


@dataclass(frozen=True, slots=True)
class Finding:
    """One lint result. ``level`` is ``error`` (refuses a publish) or ``warning``."""

    level: str
    code: str
    message: str
    rule_id: str | None = None


@dataclass(frozen=True, slots=True)
class LintReport:
    findings: tuple[Finding, ...]

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.level == "error")

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.level == "warning")

    @property
    def ok(self) -> bool:
        return not self.errors


# --- shadowing -----------------------------------------------------------------------------------


def _evaluation_order(ruleset: RuleSet) -> list[Rule]:
    enabled = [r for r in ruleset.rules if r.enabled]
    return [r for r in enabled if r.route == "page"] + [r for r in enabled if r.route != "page"]


def _any_only(rule: Rule) -> bool:
    """Only ``any`` terms and no time window: the rule fires on every message with one of them."""
    w = rule.when
    return bool(w.any) and not (w.all or w.none or w.regex or w.channels or w.user_groups or w.platforms
                                or rule.active or rule.mute)


def _covers(a_key: str, a_ignore_negated: bool, b_key: str, b_ignore_negated: bool) -> bool:
    """Does term ``a`` occur (as its rule counts it) wherever term ``b`` does (as its rule counts it)?

    Keys are :func:`routing.text.term_key` forms: ``a`` occurs wherever ``b`` does when ``a``'s key
    is a substring of ``b``'s. A rule that ignores negated terms only counts ``a`` where ``b`` is
    counted if ``b`` is counted only when affirmed too, and ``a`` starts where ``b`` starts (same
    preceding words, so the same negation verdict).
    """
    if a_ignore_negated:
        return b_ignore_negated and b_key.startswith(a_key)
    return a_key in b_key


def shadowed(ruleset: RuleSet) -> dict[str, tuple[str, ...]]:
    """Rules that can never fire -> the earlier rules that always take their messages first.

    Exact and conservative: only an earlier enabled, non-``continue`` rule whose *only* condition is
    ``any`` terms can shadow (it fires on every message containing one of those terms). A later rule
    is shadowed when every one of its ``any`` terms, or one of its ``all`` terms, is covered by such
    a rule (see :func:`_covers`). Rules without terms (regex or filters only) are never reported.
    Order is the engine's: page rules first, then the rest, each in file order.
    """
    order = _evaluation_order(ruleset)
    shadows: list[tuple[Rule, list[str]]] = []
    found: dict[str, tuple[str, ...]] = {}
    for rule in order:
        w = rule.when
        if w.any or w.all:
            def cover(term: str, rule: Rule = rule) -> list[str]:
                key = term_key(term)
                return [a.id for a, keys in shadows
                        if any(_covers(k, a.ignore_negated, key, rule.ignore_negated) for k in keys)]

            by: list[str] = []
            any_covers = [cover(t) for t in w.any]
            if w.any and all(any_covers):
                by = [i for c in any_covers for i in c]
            else:
                for t in w.all:
                    if c := cover(t):
                        by = c
                        break
            if by:
                found[rule.id] = tuple(dict.fromkeys(by))
        if _any_only(rule) and not rule.continue_:
            shadows.append((rule, [term_key(t) for t in rule.when.any]))
    return found


# --- canonical critical messages -------------------------------------------------------------------


def secret_terms(ruleset: RuleSet) -> dict[str, tuple[str, ...]]:
    """The terms of each rule that redaction would rewrite (``default pin 1234``), by rule id."""
    found: dict[str, tuple[str, ...]] = {}
    for rule in ruleset.rules:
        w = rule.when
        terms = dict.fromkeys([*w.any, *w.all, *w.none, *(t for group in w.any_of for t in group)])
        bad = tuple(t for t in terms if redact(t).text != t)
        if bad:
            found[rule.id] = bad
    return found


def _pages(classifier: Classifier, text: str) -> tuple[bool, str]:
    d = classify_safely(classifier, Message(text=text, platform="slack"))
    return d.pages, f"{d.route} via `{d.rule_id}`"


def critical_findings(draft: Classifier, live: Classifier | None,
                      messages: Sequence[str] = CRITICAL_MESSAGES) -> list[Finding]:
    """An error per canonical message that pages under ``live`` but not under ``draft``."""
    findings: list[Finding] = []
    never: list[str] = []
    for text in messages:
        now_pages, now_how = _pages(draft, text)
        if now_pages:
            continue
        live_pages = _pages(live, text)[0] if live is not None else True
        if live_pages:
            findings.append(Finding("error", "critical-no-page",
                                    f"“{text}” would no longer page (it would go {now_how})"))
        else:
            never.append(text)
    if never:
        findings.append(Finding("warning", "critical-never-paged",
                                f"{len(never)} canonical critical message(s) do not page under the live rules either: "
                                + "; ".join(f"“{t}”" for t in never[:5])))
    return findings


# --- the linter ----------------------------------------------------------------------------------


def lint(content: Mapping[str, Any], live: RuleSet | None, *,
         messages: Sequence[str] = CRITICAL_MESSAGES) -> LintReport:
    """Lint a ``routing:`` mapping against the live rule set (None when there is none)."""
    try:
        draft = ruleset_from_dict(content)
    except RuleSetError as exc:
        return LintReport(tuple(Finding("error", "invalid", p) for p in exc.problems))
    costly = costly_regexes(draft, live)
    if costly:  # a ReDoS guard: refused like any invalid rule
        return LintReport(tuple(Finding("error", "regex-cost", p) for p in costly))
    findings: list[Finding] = []
    try:
        draft_classifier = compile_ruleset(draft)
    except ValueError as exc:
        return LintReport((Finding("error", "invalid", str(exc)),))
    before = shadowed(live) if live is not None else {}
    for rule_id, by in shadowed(draft).items():
        who = ", ".join(f"`{b}`" for b in by)
        old = before.get(rule_id)
        level = "warning" if old is not None else "error"
        tail = " (already so in the live rules)" if old is not None else ""
        findings.append(Finding(level, "shadowed",
                                f"`{rule_id}` can never fire: {who} comes first in evaluation and takes every "
                                f"message it matches{tail}. Narrow or move one of them", rule_id))
    known = secret_terms(live) if live is not None else {}
    for rule_id, terms in secret_terms(draft).items():
        new = [t for t in terms if t not in known.get(rule_id, ())]
        level, shown = ("error", new) if new else ("warning", list(terms))
        findings.append(Finding(level, "secret-term",
                                f"`{rule_id}`: {', '.join(repr(t) for t in shown[:3])} looks like a secret; intake "
                                "removes secrets from a message before the rules read it, so it can never match. "
                                "Keep the words around it (`default pin`) and drop the value", rule_id))
    disabled_pages = [r.id for r in draft.rules if r.route == "page" and not r.enabled]
    if disabled_pages:
        findings.append(Finding("warning", "disabled-page",
                                "disabled page rules: " + ", ".join(f"`{i}`" for i in disabled_pages)))
    for r in draft.rules:
        if r.route == "page" and r.active:
            findings.append(Finding("warning", "page-window", f"page rule `{r.id}` has `active` windows: outside "
                                    f"them it does not page ({draft.timezone})", r.id))
        if r.route == "page" and r.mute:
            findings.append(Finding("warning", "page-mute", f"page rule `{r.id}` has `mute` windows: page rules "
                                    "ignore them (nothing that pages is muted)", r.id))
    live_classifier = compile_ruleset(live) if live is not None else None
    findings.extend(critical_findings(draft_classifier, live_classifier, messages))
    return LintReport(tuple(findings))


def render_findings(findings: Iterable[Finding]) -> list[str]:
    icon = {"error": ":no_entry:", "warning": ":warning:"}
    return [f"{icon.get(f.level, '•')} {f.message}" for f in findings]
