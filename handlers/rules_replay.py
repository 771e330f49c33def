"""Replay: re-classify stored requests through a draft and the live rules, and report what changes.

Rows are read in keyset chunks (plain tuples, one short transaction each) and classified between
reads. Two things keep 100,000 requests within seconds:

* **Only the rules that changed can change a decision.** If no added, removed, edited or moved rule
  (in its old or its new form) holds for a message, both rule sets evaluate the same unchanged rules
  in the same relative order, so they decide the same. A small classifier of just the changed
  rules screens every message; only the ones it flags are classified by both full sets. (When the
  default rule itself changed, every message is classified.)
* **Normalise and scan once.** Both classifiers (and the screen) share one folded / padded form
  of the text, and when both number their terms alike (no term was added or removed) one
  Aho-Corasick / RE2 scan too; ASCII text takes a fast path that gives exactly :func:`routing.text.fold` and
  :func:`routing.text.padded` (tested for equality), anything else uses those functions.

Each request is replayed at the time it was stored (``created_at``), so rules with ``active`` /
``mute`` windows decide as they would have then. A rule whose windows changed counts as changed, and
when the ``timezone`` changed so does every rule with windows (they now open at other instants).

:class:`ReplayClassifier` adds to the engine's classifier an entry point taking that shared form;
it follows :meth:`routing.engine.Classifier.classify` (candidates, first match, ``continue``,
strongest route), which the tests pin by comparing both on every replayed message.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from routing.engine import FAIL_CLOSED_RULE, Classifier
from routing.model import ROUTE_RANK, Message, Rule, RuleSet
from routing.text import fold, padded_folded
from routing.windows import inside, local_clock
from storage import rules_admin
from storage.models import ticket_key

CHUNK = 5_000
MAX_LISTED = 2_000
#: ASCII word form: letters and digits stay, apostrophes go (``words`` never splits on them:
#: "isn't" is "isnt"), everything else separates words.


def normalised(text: str) -> tuple[str, str]:
    """``(fold(text), padded(text))``, folding once (``fold`` has its own ASCII fast path)."""
    folded = fold(text)
    return folded, padded_folded(folded)


Scan = tuple[Any, set[int]]


class ReplayClassifier(Classifier):
    """The engine's classifier, deciding from an already normalised text."""

    def scan(self, folded: str, padded_text: str) -> Scan:
        """Which terms and regexes occur in a normalised text (what :meth:`outcome` decides from)."""
        return self._scan_terms(padded_text), self._scan_regexes(folded)

    def scans_like(self, other: ReplayClassifier) -> bool:
        """True when both number the same terms and regexes alike, so one scan serves both."""
        return self._terms == other._terms and self._regexes == other._regexes

    def outcome(self, msg: Message, folded: str, padded_text: str, scan: Scan | None = None) -> tuple[str, str]:
        """``(route, rule id)`` of the decision :meth:`classify` would make (fail-closed alike)."""
        try:
            hits, regex_hits = scan if scan is not None else self.scan(folded, padded_text)
            candidates = set(self._always)
            for t in hits.plain:
                candidates.update(self._by_term.get(t, ()))
            for x in regex_hits:
                candidates.update(self._by_regex.get(x, ()))
            best: Rule | None = None
            clock: tuple[int, int] | None = None
            for pos in sorted(candidates):
                c = self._rules[pos]
                if not self._holds(c, msg, hits, regex_hits):
                    continue
                if (c.active or c.mute) and msg.at is not None:  # as the engine: only rules that held
                    clock = clock or local_clock(msg.at, self._tz)
                    if (c.active and not inside(c.active, *clock)) or inside(c.mute, *clock):
                        continue
                if best is None or ROUTE_RANK[c.rule.route] > ROUTE_RANK[best.route]:
                    best = c.rule
                if not c.rule.continue_:
                    break
            if best is None:
                raise RuntimeError("no rule matched")
            return best.route, best.id
        except Exception:  # noqa: BLE001 - mirrors classify_safely: fail closed
            return "internal", FAIL_CLOSED_RULE

    def any_holds(self, msg: Message, folded: str, padded_text: str) -> bool:
        """True if a rule with conditions holds (every rule here has ``continue``; see :func:`screen_for`)."""
        hits = self._scan_terms(padded_text)
        regex_hits = self._scan_regexes(folded)
        candidates: set[int] = set()
        for t in hits.plain:
            candidates.update(self._by_term.get(t, ()))
        for x in regex_hits:
            candidates.update(self._by_regex.get(x, ()))
        candidates.update(p for p in self._always if not self._rules[p].rule.when.is_empty)
        return any(self._holds(self._rules[p], msg, hits, regex_hits) for p in candidates)


def decisive_changes(added: Iterable[str], removed: Iterable[str], moved: Iterable[str],
                     changed: Iterable[str], live: RuleSet, draft: RuleSet) -> frozenset[str]:
    """The changed rules that can change a decision's route or rule: a rule whose severity, queue,
    description or note alone changed decides the same messages the same way, so it is left out.

    Time windows count (``mute`` only off the page tier, which ignores it), and when the rule sets'
    ``timezone`` differs every enabled rule with windows counts: its windows open at other instants.
    """
    def decisive(rule: Rule | None) -> tuple[object, ...] | None:
        return None if rule is None else (rule.when, rule.route, rule.enabled, rule.continue_, rule.ignore_negated,
                                          *_windows(rule))

    kept = {i for i in changed if decisive(live.rule(i)) != decisive(draft.rule(i))}
    if live.timezone != draft.timezone:
        kept.update(r.id for rs in (live, draft) for r in rs.rules if r.enabled and any(_windows(r)))
    return frozenset((*added, *removed, *moved, *kept))


def _windows(rule: Rule) -> tuple[tuple[object, ...], tuple[object, ...]]:
    """The windows the engine applies to ``rule``: ``active``, and ``mute`` unless it pages."""
    return rule.active, (() if rule.route == "page" else rule.mute)


def screen_for(live: RuleSet, draft: RuleSet, changed: Iterable[str]) -> ReplayClassifier | None:
    """A classifier of the changed rules in both forms, or None when every message must be replayed."""
    rules: list[Rule] = []
    for rs, tag in ((live, "live"), (draft, "draft")):
        for rule_id in changed:
            rule = rs.rule(rule_id)
            if rule is None:
                continue
            if rule.when.is_empty:
                return None  # the default changed: it decides for any message
            rules.append(replace(rule, id=f"{rule_id}@{tag}", route="msp", queue="-", continue_=True, enabled=True))
    rules.append(Rule(id="@default", route="msp", queue="-"))
    return ReplayClassifier(RuleSet(rules=tuple(rules)))


@dataclass(frozen=True, slots=True)
class ReplayRow:
    """A stored request whose paging would change (``at``: when it was stored, what it is replayed at)."""

    ticket: str
    text: str
    old_route: str
    old_rule: str
    new_route: str
    new_rule: str
    at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """What a draft would change on the stored requests of a window."""

    days: int
    total: int
    replayed: int
    screened_in: int
    route_changed: int
    rule_changed: int
    moves: tuple[tuple[str, str, int], ...]
    newly_paging: tuple[ReplayRow, ...]
    stopped_paging: tuple[ReplayRow, ...]
    newly_paging_count: int
    stopped_paging_count: int
    seconds: float
    complete: bool

    @property
    def paging_changes(self) -> int:
        return self.newly_paging_count + self.stopped_paging_count


@dataclass
class _Tally:
    replayed: int = 0
    screened_in: int = 0
    route_changed: int = 0
    rule_changed: int = 0
    moves: Counter[tuple[str, str]] = field(default_factory=Counter)
    newly: list[ReplayRow] = field(default_factory=list)
    stopped: list[ReplayRow] = field(default_factory=list)
    newly_count: int = 0
    stopped_count: int = 0


async def replay(
    *,
    sessionmaker: async_sessionmaker[AsyncSession],
    live: RuleSet,
    draft: RuleSet,
    changed: Iterable[str],
    since: datetime,
    days: int,
    budget_seconds: float | None = None,
    chunk: int = CHUNK,
    clock: Callable[[], float] = time.perf_counter,
    screen: bool = True,
) -> ReplayReport:
    """Replay the requests stored since ``since`` (newest first) through ``live`` and ``draft``.

    Each request is classified at its ``created_at``, so time windows apply as they would have then
    (the time is only read when a rule of either set has windows the engine applies).

    Args:
        changed: Ids of the rules that differ (:attr:`handlers.rules_edit.RuleDiff.rule_ids`).
        budget_seconds: Stop after this long and report a partial result (``complete=False``).
        screen: Use the changed-rules screen (False classifies everything; for tests and benches).
    """
    started = clock()
    live_c, draft_c = ReplayClassifier(live), ReplayClassifier(draft)
    changed = list(changed)
    screener = screen_for(live, draft, changed) if screen else None
    if screen and not changed:
        screener = ReplayClassifier(RuleSet(rules=(Rule(id="@default", route="msp", queue="-"),)))
    with_time = any(any(_windows(r)) for rs in (live, draft) for r in rs.rules if r.enabled)
    async with sessionmaker() as session:
        total = await rules_admin.count_requests(session=session, since=since)
    tally = _Tally()
    complete = True

    async def fetch(before_id: int | None) -> Sequence[Any]:
        async with sessionmaker() as session:
            return await rules_admin.request_chunk(session=session, since=since, before_id=before_id, limit=chunk,
                                                   with_time=with_time)

    # Read the next chunk while this one is classified (in a thread, so the event loop stays free).
    pending: asyncio.Task[Sequence[Any]] | None = asyncio.create_task(fetch(None))
    try:
        while pending is not None:
            rows = await pending
            pending = None
            if not rows:
                break
            if budget_seconds is not None and clock() - started > budget_seconds:
                complete = False
                break
            pending = asyncio.create_task(fetch(rows[-1][0]))
            await asyncio.to_thread(_classify_chunk, rows, live_c, draft_c, screener, tally)
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pending
    return ReplayReport(
        days=days, total=total, replayed=tally.replayed, screened_in=tally.screened_in,
        route_changed=tally.route_changed, rule_changed=tally.rule_changed,
        moves=tuple((a, b, n) for (a, b), n in tally.moves.most_common()),
        newly_paging=tuple(tally.newly), stopped_paging=tuple(tally.stopped),
        newly_paging_count=tally.newly_count, stopped_paging_count=tally.stopped_count,
        seconds=clock() - started, complete=complete,
    )


def _classify_chunk(rows: Iterable[Sequence[Any]], live: ReplayClassifier, draft: ReplayClassifier,
                    screener: ReplayClassifier | None, tally: _Tally) -> None:
    """Classify rows ``(id, text, platform, user_id, channel_id[, created_at])``; without a (timezone-aware)
    ``created_at`` the windows are not applied, as :class:`routing.model.Message` documents."""
    shared = live.scans_like(draft)
    for ticket_id, text, platform, user_id, channel_id, *rest in rows:
        tally.replayed += 1
        folded, padded_text = normalised(text)
        at = rest[0] if rest and isinstance(rest[0], datetime) and rest[0].utcoffset() is not None else None
        msg = Message(text=text, platform=platform, user_id=user_id, channel_id=channel_id, at=at)
        if screener is not None and not screener.any_holds(msg, folded, padded_text):
            continue
        tally.screened_in += 1
        scan = live.scan(folded, padded_text) if shared else None
        old_route, old_rule = live.outcome(msg, folded, padded_text, scan)
        new_route, new_rule = draft.outcome(msg, folded, padded_text, scan)
        if old_route == new_route and old_rule == new_rule:
            continue
        if old_route != new_route:
            tally.route_changed += 1
            tally.moves[(old_route, new_route)] += 1
        else:
            tally.rule_changed += 1
        if (old_route == "page") == (new_route == "page"):
            continue
        row = ReplayRow(ticket_key(ticket_id), text[:80], old_route, old_rule, new_route, new_rule, at)
        if new_route == "page":
            tally.newly_count += 1
            if len(tally.newly) < MAX_LISTED:
                tally.newly.append(row)
        else:
            tally.stopped_count += 1
            if len(tally.stopped) < MAX_LISTED:
                tally.stopped.append(row)
