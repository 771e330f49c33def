"""The compiled classifier: one Aho-Corasick pass for every term, one RE2 set pass for every regex.

Evaluation semantics (after Alertmanager's routing tree, flattened):

* rules routed to ``page`` are evaluated first, in file order, then every other rule in file order,
  so no ordinary rule can shadow a page rule;
* the first rule whose conditions hold wins; a rule with ``continue`` records its match and lets
  evaluation go on; among all matches the strongest route wins (page > internal > msp);
* the last rule is the unconditional default, so every message gets a decision;
* a rule with time windows (``active``/``mute``, read in the rule set's ``timezone`` at
  ``Message.at``) fires only inside an active window and outside every mute window; page rules
  ignore ``mute``. Without ``Message.at`` windows are not applied.

Cost: a message is scanned once by the automaton and once by the RE2 set, whatever the number of
rules; only the rules that one of its terms (or regexes) could trigger are then checked, in order,
and the clock only for rules whose conditions held.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import ahocorasick
import re2

from routing.calendar import zone
from routing.model import (
    ROUTE_RANK,
    Decision,
    Message,
    Rule,
    RuleMatch,
    RuleSet,
    Window,
)
from routing.regexes import compile_regex, regex_set
from routing.rules import RuleSetError
from routing.text import BREAK, NEGATION_WINDOW, NEGATORS, fold, padded_folded, term_key
from routing.windows import inside, local_clock

FAIL_CLOSED_RULE = "fail-closed"


@dataclass(frozen=True, slots=True)
class _Compiled:
    """A rule in the form the evaluator wants: term and regex indices instead of strings."""

    position: int
    rule: Rule
    any: tuple[int, ...]
    any_of: tuple[tuple[int, ...], ...]
    all: tuple[int, ...]
    none: tuple[int, ...]
    regex: tuple[int, ...]
    # The same conditions as sets, for C-speed checks against the hits of a message.
    any_set: frozenset[int]
    any_of_sets: tuple[frozenset[int], ...]
    all_set: frozenset[int]
    none_set: frozenset[int]
    regex_set: frozenset[int]
    channels: frozenset[str]
    user_groups: frozenset[str]
    platforms: frozenset[str]
    active: tuple[Window, ...]
    mute: tuple[Window, ...]  # empty for page rules: the page tier ignores mute windows


@dataclass(slots=True)
class _Hits:
    """Which terms occur in a message: ``plain`` at all, ``affirmed`` not under a negation."""

    plain: set[int]
    affirmed: set[int]


class Classifier:
    """A rule set compiled for fast, repeated classification. Immutable and thread-safe to share."""

    def __init__(self, ruleset: RuleSet) -> None:
        self.ruleset = ruleset
        self.version = ruleset.version
        self._tz = zone(ruleset.timezone)
        enabled = [r for r in ruleset.rules if r.enabled]
        ordered = [r for r in enabled if r.route == "page"] + [r for r in enabled if r.route != "page"]

        self._terms: list[str] = []
        term_ids: dict[str, int] = {}
        self._regexes: list[str] = []
        regex_ids: dict[str, int] = {}

        def term_id(term: str) -> int:
            key = term_key(term)
            if key not in term_ids:
                term_ids[key] = len(self._terms)
                self._terms.append(term)
            return term_ids[key]

        def regex_id(pattern: str) -> int:
            if pattern not in regex_ids:
                compile_regex(pattern)  # raises ValueError with the reason
                regex_ids[pattern] = len(self._regexes)
                self._regexes.append(pattern)
            return regex_ids[pattern]

        self._defaults = frozenset(r.id for r in ordered if r.when.is_empty)
        self._rules: list[_Compiled] = []
        for pos, r in enumerate(ordered):
            w = r.when
            any_ = tuple(term_id(t) for t in w.any)
            any_of = tuple(tuple(term_id(t) for t in g) for g in w.any_of)
            all_ = tuple(term_id(t) for t in w.all)
            none = tuple(term_id(t) for t in w.none)
            regex = tuple(regex_id(p) for p in w.regex)
            self._rules.append(
                _Compiled(
                    position=pos, rule=r, any=any_, any_of=any_of, all=all_, none=none, regex=regex,
                    any_set=frozenset(any_), any_of_sets=tuple(frozenset(g) for g in any_of),
                    all_set=frozenset(all_), none_set=frozenset(none), regex_set=frozenset(regex),
                    channels=frozenset(w.channels), user_groups=frozenset(w.user_groups),
                    platforms=frozenset(w.platforms),
                    active=r.active, mute=() if r.route == "page" else r.mute,
                )
            )

        # Trigger index: which rules a term or regex hit makes worth checking. A rule is indexed by
        # one necessary condition (any-terms, else the first any_of group, else all-terms, else
        # regexes); rules with none of
        # those (filters only, the default) are checked for every message.
        self._by_term: dict[int, list[int]] = {}
        self._by_regex: dict[int, list[int]] = {}
        self._always: list[int] = []
        for c in self._rules:
            if c.any or c.any_of:
                for t in c.any or c.any_of[0]:
                    self._by_term.setdefault(t, []).append(c.position)
            elif c.all:
                self._by_term.setdefault(c.all[0], []).append(c.position)
            elif c.regex:
                for x in c.regex:
                    self._by_regex.setdefault(x, []).append(c.position)
            else:
                self._always.append(c.position)

        self._automaton: ahocorasick.Automaton | None = None
        if term_ids:
            automaton = ahocorasick.Automaton()
            for key, idx in term_ids.items():
                automaton.add_word(key, (idx, len(key)))
            automaton.make_automaton()
            self._automaton = automaton

        self._regex_set: re2.Set | None = None
        self._compiled_regex = [compile_regex(p) for p in self._regexes]  # no capture groups: see routing.regexes
        if self._regexes:
            try:
                self._regex_set = regex_set(self._regexes)
            except ValueError as exc:  # validation refuses this first; a RuleSetError all the same
                raise RuleSetError([f"rules: {exc}"]) from None

    # -- scanning -------------------------------------------------------------------------------

    def _scan_terms(self, text: str) -> _Hits:
        hits = _Hits(plain=set(), affirmed=set())
        if self._automaton is None:
            return hits
        for end, (idx, length) in self._automaton.iter(text):
            hits.plain.add(idx)
            if idx not in hits.affirmed and not _negated(text, end - length + 1):
                hits.affirmed.add(idx)
        return hits

    def _scan_regexes(self, folded: str) -> set[int]:
        if self._regex_set is None:
            return set()
        return set(self._regex_set.Match(folded) or ())

    # -- evaluation -----------------------------------------------------------------------------

    def _holds(self, c: _Compiled, msg: Message, hits: _Hits, regex_hits: set[int]) -> bool:
        if c.platforms and msg.platform not in c.platforms:
            return False
        if c.channels and msg.channel_id not in c.channels:
            return False
        if c.user_groups and not (c.user_groups & msg.user_groups):
            return False
        counted = hits.affirmed if c.rule.ignore_negated else hits.plain
        if c.any and counted.isdisjoint(c.any_set):
            return False
        if c.any_of and any(counted.isdisjoint(group) for group in c.any_of_sets):
            return False
        if c.all and not c.all_set <= counted:
            return False
        if c.none and not hits.plain.isdisjoint(c.none_set):
            return False
        if c.regex and regex_hits.isdisjoint(c.regex_set):
            return False
        return True

    def _evidence(self, c: _Compiled, hits: _Hits, folded: str) -> tuple[str, ...]:
        counted = hits.affirmed if c.rule.ignore_negated else hits.plain
        grouped = [t for group in c.any_of for t in group]
        terms = [self._terms[t] for t in (*c.any, *grouped, *c.all) if t in counted]
        for x in c.regex:
            m = self._compiled_regex[x].search(folded)
            if m is not None:
                terms.append(m.group(0)[:80])
        return tuple(dict.fromkeys(terms))

    def classify(self, msg: Message) -> Decision:
        """Decide where ``msg`` goes. Raises only on a bug; see :func:`classify_safely`."""
        folded = fold(msg.text)
        hits = self._scan_terms(padded_folded(folded))
        try:
            regex_hits = self._scan_regexes(folded)
        except UnicodeEncodeError:  # a lone surrogate (JSON "\ud800"): RE2 reads UTF-8 only
            folded = _valid_unicode(folded)
            regex_hits = self._scan_regexes(folded)
        candidates: set[int] = set(self._always)
        for t in hits.plain:
            candidates.update(self._by_term.get(t, ()))
        for x in regex_hits:
            candidates.update(self._by_regex.get(x, ()))

        matches: list[RuleMatch] = []
        timed_out: list[str] = []
        clock: tuple[int, int] | None = None
        for pos in sorted(candidates):
            c = self._rules[pos]
            if not self._holds(c, msg, hits, regex_hits):
                continue
            if (c.active or c.mute) and msg.at is not None:
                clock = clock or local_clock(msg.at, self._tz)
                if c.active and not inside(c.active, *clock):
                    timed_out.append(f"{c.rule.id} (outside its active hours)")
                    continue
                if inside(c.mute, *clock):
                    timed_out.append(f"{c.rule.id} (muted)")
                    continue
            r = c.rule
            matches.append(RuleMatch(r.id, r.route, r.severity, r.queue, self._evidence(c, hits, folded)))
            if not r.continue_:
                break
        if not matches:  # only possible when the default is disabled, which validation refuses
            raise RuntimeError("no rule matched and the rule set has no default")
        best = max(matches, key=lambda m: ROUTE_RANK[m.route])  # max keeps the first of equals
        return Decision(
            route=best.route, severity=best.severity, queue=best.queue, rule_id=best.rule_id,
            ruleset_version=self.version, why=_why(best, matches, self._unconditional(best.rule_id), timed_out),
            terms=best.terms, matches=tuple(matches),
        )

    def _unconditional(self, rule_id: str) -> bool:
        return rule_id in self._defaults

    @property
    def rule_count(self) -> int:
        return len(self._rules)


def _valid_unicode(text: str) -> str:
    """``text`` with lone surrogates replaced by U+FFFD (surrogate pairs become the character they encode)."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _negated(text: str, start: int) -> bool:
    """True if one of the NEGATION_WINDOW words before ``start`` negates the term there.

    ``text`` is the padded word form and ``start`` the index of the space that opens the term.
    """
    end = start
    for _ in range(NEGATION_WINDOW):
        if end <= 0:
            return False
        begin = text.rfind(" ", 0, end) + 1
        word = text[begin:end]
        if word == BREAK:
            return False
        if word in NEGATORS:
            return True
        end = begin - 1
    return False


def _why(best: RuleMatch, matches: Iterable[RuleMatch], unconditional: bool, timed_out: Iterable[str] = ()) -> str:
    if best.terms:
        why = f"rule {best.rule_id} matched " + ", ".join(f'"{t}"' for t in best.terms)
    elif unconditional:
        why = f"no other rule matched, so the default rule {best.rule_id} applies"
    else:
        why = f"rule {best.rule_id} matched its channel, group or platform filter"
    others = [m.rule_id for m in matches if m.rule_id != best.rule_id]
    if others:
        why += f"; also matched {', '.join(others)}"
    skipped = list(timed_out)
    if skipped:
        why += f"; not at this time: {', '.join(skipped)}"
    return why


def compile_ruleset(ruleset: RuleSet) -> Classifier:
    """Compile a validated rule set.

    Raises:
        ValueError: a term or regex that cannot be used (:class:`~routing.rules.RuleSetError` when
            the regexes together are too many for one RE2 set). :func:`~routing.rules.ruleset_from_dict`
            refuses all of these first.
    """
    return Classifier(ruleset)


def fail_closed_queue(ruleset: RuleSet) -> str:
    """The queue failed classifications go to: the first in-house queue (there always is one)."""
    return next((q.name for q in ruleset.queues if q.route == "internal"), "triage")


def classify_safely(classifier: Classifier, msg: Message) -> Decision:
    """Classify, and if anything goes wrong send the message to in-house triage, never to the MSP."""
    try:
        return classifier.classify(msg)
    except Exception as exc:  # noqa: BLE001 - fail closed on any bug, by design
        return Decision(
            route="internal", severity="high", queue=fail_closed_queue(classifier.ruleset),
            rule_id=FAIL_CLOSED_RULE, ruleset_version=classifier.version,
            why=f"classification failed ({type(exc).__name__}); sent to in-house triage", fail_closed=True,
        )


__all__ = ["FAIL_CLOSED_RULE", "Classifier", "classify_safely", "compile_ruleset", "fail_closed_queue"]
