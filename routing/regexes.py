"""Rule regexes: the RE2 options, the limits per pattern and for a whole rule set, the shared RE2 set.

Regexes are RE2 (linear time). Two things keep a rule set's regexes cheap and usable:

* **No capture groups.** The engine asks a regex only whether it matches and what text it matched
  (group 0). Asked for groups, RE2 runs its NFA over the match: ``(.*a){200}`` costs ~40 ms on 10 kB
  with groups and ~0.06 ms without (DFA only). So every rule regex is compiled with ``never_capture``.
* **One set, one memory budget.** The engine scans a message once with an RE2 set of all regexes, and
  that set has the memory budget of one regex (:data:`MAX_MEM`). Regexes that each pass the per-pattern
  limits can together be too big for it: RE2 then refuses to build the set (from ~96,000 instructions
  for the worst shape measured) and, well before that, large sets outgrow their DFA cache (one shape
  measured went from 0.05 to 200 ms per 10 kB message between 31,000 and 34,000 instructions).
  :data:`MAX_REGEX_PROGRAM_TOTAL` bounds the sum, and :func:`regex_set` is what both validation and
  the engine build, so a rule set that validates also compiles.

Messages are searched in their folded form (:func:`routing.text.fold`: lower case, no accents). So
regexes match case-insensitively (``VPN-\\d+`` finds "vpn-42"), and a regex with a letter folding
changes otherwise (``café``, ``Straße``) is refused with its folded spelling: it could never match.
"""

from __future__ import annotations

import functools
import random
import re
import time
from collections.abc import Callable, Iterable, Sequence

import re2

from routing.model import RuleSet
from routing.text import fold

MAX_REGEX_CHARS = 1_000
#: RE2 instructions one regex may compile to.
MAX_REGEX_PROGRAM = 5_000
#: RE2 instructions all the regexes of a rule set may compile to together (the default rules: ~11,600).
MAX_REGEX_PROGRAM_TOTAL = 30_000
#: RE2's memory budget for one regex and for the set of all of them (RE2's own default).
MAX_MEM = 8 << 20
#: What one regex may cost on a 10 kB message it has not seen before (issue 6: ReDoS), in milliseconds
#: of CPU, as :func:`probe_ms` measures it.
MAX_REGEX_MS = 1.0
PROBE_CHARS = 10_000
TOTAL_ADVICE = "merge or drop some, or use terms (`any`, `all`), which cost nothing here"


def re2_options() -> re2.Options:
    """Options every rule regex (and the set of them) is compiled with.

    RE2 errors are raised, not logged, and there are no capture groups (see the module docstring).
    """
    opts = re2.Options()
    opts.log_errors = False
    opts.max_mem = MAX_MEM
    opts.never_capture = True
    opts.case_sensitive = False  # the text is lower case: a capital in a pattern must still match it
    return opts


def compile_regex(pattern: str) -> re2._Regexp:
    """Compile a rule regex with RE2, or raise ``ValueError`` saying what to fix."""
    if len(pattern) > MAX_REGEX_CHARS:
        raise ValueError(f"regex is {len(pattern)} characters; the limit is {MAX_REGEX_CHARS}")
    if not pattern.isascii() and fold(pattern) != pattern.lower():
        spelt = "".join(c if c.isascii() else fold(c) for c in pattern)
        raise ValueError(f"regex {pattern!r} could never match: messages are matched without accents "
                         f"(é -> e, ß -> ss); write it as {spelt!r}")
    try:
        compiled = re2.compile(pattern, options=re2_options())
    except re2.error as exc:
        detail = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        hint = ""
        if "(?=" in pattern or "(?!" in pattern or "(?<" in pattern:
            hint = " (lookahead/lookbehind are not supported: RE2 guarantees linear time; use `none` terms instead)"
        elif "\\1" in pattern or "\\2" in pattern:
            hint = " (backreferences are not supported: RE2 guarantees linear time)"
        raise ValueError(f"RE2 refused {pattern!r}: {detail}{hint}") from None
    if compiled.programsize > MAX_REGEX_PROGRAM:
        raise ValueError(
            f"regex {pattern!r} compiles to {compiled.programsize} instructions; "
            f"the limit is {MAX_REGEX_PROGRAM}: simplify it or split it into terms"
        )
    return compiled


def regex_set(patterns: Iterable[str]) -> re2.Set:
    """The RE2 search set of ``patterns`` (each valid for :func:`compile_regex`), index = position.

    Raises:
        ValueError: when the patterns together are over :data:`MAX_REGEX_PROGRAM_TOTAL` or RE2
            cannot build the set within :data:`MAX_MEM`; the message says how many and what to do.
    """
    patterns = list(patterns)
    total = sum(compile_regex(p).programsize for p in patterns)
    what = f"{len(patterns):,} distinct regexes compile to {total:,} RE2 instructions"
    if total > MAX_REGEX_PROGRAM_TOTAL:
        raise ValueError(f"too many or too large regexes in total: {what}; the limit for a rule set is "
                         f"{MAX_REGEX_PROGRAM_TOTAL:,}: {TOTAL_ADVICE}")
    rset = re2.Set.SearchSet(re2_options())
    try:
        for p in patterns:
            rset.Add(p)
        rset.Compile()
    except re2.error:
        raise ValueError(f"too many or too large regexes in total: {what}, more than RE2 can scan in one pass "
                         f"within {MAX_MEM >> 20} MB: {TOTAL_ADVICE}") from None
    return rset


_META = frozenset("\\^$.|?*+()[]{}")


def _runs(alphabet: str, rng: random.Random) -> str:
    """:data:`PROBE_CHARS` random characters of ``alphabet`` (random bytes mapped through a table:
    ``random.choices`` took 1.5 ms per message, which made the probe of the shipped rules 0.5 s)."""
    if not alphabet.isascii():
        return "".join(rng.choices(alphabet, k=PROBE_CHARS))
    table = bytes(ord(alphabet[i % len(alphabet)]) for i in range(256))
    return rng.randbytes(PROBE_CHARS).translate(table).decode("ascii")


@functools.cache
def _common_texts() -> tuple[tuple[str, str], ...]:
    """The kinds that do not depend on the pattern, one message per round (new to each regex: RE2's
    DFA cache belongs to the compiled regex)."""
    rng = random.Random(20261128)
    return tuple((_runs("ab", rng), _runs("abcdefghijklmnopqrstuvwxyz0123456789 .-_%", rng)) for _ in range(4))


def _probe_texts(source: Sequence[str], rng: random.Random, round_: int) -> list[str]:
    """Four hostile 10 kB messages for the patterns of ``source``, other ones each round: random runs
    of their own literal characters, of ``a``/``b`` (the classic state blow-up), of letters, digits
    and punctuation, and of their own words (every trigger of a proximity pattern, over and over)."""
    chars = "".join(sorted({c for p in source for c in p if c not in _META and c.isprintable()})) or "a"
    words = [w for p in source for w in re.findall(r"[A-Za-z0-9]{2,}", p)] or ["a"]
    ab, mixed = _common_texts()[round_]
    return [_runs(chars, rng), ab, mixed, " ".join(rng.choices(words, k=PROBE_CHARS // 3))[:PROBE_CHARS]]


def _fresh_cost(scan: Callable[[str], object], source: Sequence[str]) -> float:
    """Milliseconds of thread CPU ``scan`` takes on the costliest kind of :func:`_probe_texts` of
    ``source`` it has not seen before: warmed on two rounds, then the cheaper of two fresh messages of
    each kind. Deterministic inputs (fixed seed)."""
    rng = random.Random(20261128)

    def cost(text: str) -> float:
        started = time.thread_time_ns()
        scan(text)
        return (time.thread_time_ns() - started) / 1e6

    for round_ in range(2):
        for text in _probe_texts(source, rng, round_):
            cost(text)
    first, second = _probe_texts(source, rng, 2), _probe_texts(source, rng, 3)
    return max(min(cost(a), cost(b)) for a, b in zip(first, second))


@functools.lru_cache(maxsize=4096)
def probe_ms(pattern: str) -> float:
    """:func:`_probe_again`, cached by pattern (start-up and every edit validate the same regexes)."""
    return _probe_again(pattern)


def _probe_again(pattern: str) -> float:
    """Milliseconds of CPU ``pattern`` costs on a hostile 10 kB message it has not seen before.

    RE2 is linear, but its DFA is built lazily, state by state, and some patterns have very many
    states: ``(a|b)*a(a|b){15}``, or a proximity window such as ``\\b(disk|cpu)\\b[^.]{0,30}\\d+%`` on
    a message made of its own keywords, where each keyword opens a new window. Scanning text seen
    before reuses the states, so a warm timing looks cheap (0.06 ms) while each *new* hostile message
    pays again (up to 12 ms measured). The probe scans as the engine does (an RE2 set, then ``search``
    for the evidence): it warms the pattern on two rounds of :func:`_probe_texts`, then takes, for
    each kind, the cheaper of two fresh messages, and returns the costliest kind (thread CPU time, so
    other processes on the machine do not count). Deterministic inputs (fixed seed); cached by pattern.
    """
    rset, rx = regex_set([pattern]), compile_regex(pattern)

    def scan(text: str) -> None:
        rset.Match(text)
        rx.search(text)

    return _fresh_cost(scan, [pattern])


def check_regex_cost(pattern: str) -> str | None:
    """Why ``pattern`` is too costly for a rule (see :func:`probe_ms`), or None when it is not.

    A measurement over the limit is taken twice more and the cheapest kept: noise (another thread,
    a cold CPU cache) only ever adds time, and a false refusal would keep a replica from starting.
    """
    spent = probe_ms(pattern)
    if spent > MAX_REGEX_MS:
        spent = min(spent, _probe_again(pattern), _probe_again(pattern))
    if spent <= MAX_REGEX_MS:
        return None
    return (f"regex {pattern[:80]!r} costs {spent:.1f} ms on a 10 kB message it has not seen before; the limit is "
            f"{MAX_REGEX_MS:g} ms (a ReDoS guard). Its repetitions let RE2's automaton grow a new state at almost "
            "every character: a bounded window after an alternation (`\\b(a|b)\\b[^.]{0,30}x`), or a count after "
            "a star (`(a|b)*a(a|b){15}`). Use terms (`any`, `any_of`: free here) for the words and keep the regex "
            "for the part only a regex can say")


def _set_probe_ms(patterns: tuple[str, ...], source: tuple[str, ...]) -> float:
    """:func:`_probe_again` for the RE2 set of ``patterns`` as the engine scans it, on hostile texts
    made of ``source`` (the same texts for the sets compared)."""
    return _fresh_cost(regex_set(patterns).Match, source)  # validated sets: within the limits


def check_added_cost(live: Iterable[str], added: Iterable[str]) -> str | None:
    """Why adding the regexes ``added`` to a rule set whose regexes are ``live`` costs too much, or None.

    Each regex passes :func:`check_regex_cost` alone, but the engine scans every message once with the
    set of all of them, and RE2's automaton for a set can be the product of its members': ``a.{9}x``
    and ``b.{9}x`` cost 0.2 ms each and over 2 ms together. So an edit is also measured the way the
    engine will run it: the set with the new regexes against the set without them, on the same hostile
    texts made of the new regexes' characters and words, each the cheapest of three measurements
    (noise only ever adds), and the difference is held to :data:`MAX_REGEX_MS`. (Measured with the
    shipped rules: the pair above adds 7.4-7.9 ms, either one alone 0.6 ms, ordinary regexes 0.0.)
    """
    base = tuple(dict.fromkeys(live))
    new = tuple(p for p in dict.fromkeys(added) if p not in base)
    if not new:
        return None

    def measured(patterns: tuple[str, ...]) -> float:  # on texts made of what the edit adds: its attack
        return min(_set_probe_ms(patterns, new) for _ in range(3)) if patterns else 0.0

    extra = measured(base + new) - measured(base)
    if extra <= MAX_REGEX_MS:
        return None
    shown = ", ".join(repr(p[:60]) for p in new[:3]) + (f" and {len(new) - 3} more" if len(new) > 3 else "")
    return (f"the new regexes {shown} add {extra:.1f} ms to every 10 kB message once they run with the rule set's "
            f"other regexes (one RE2 set scans them all); the limit is {MAX_REGEX_MS:g} ms (a ReDoS guard). "
            "Regexes alike in shape multiply each other's automaton states: merge them into one, or use terms "
            "(`any`, `all`: free here) for the words")


def costly_regexes(ruleset: RuleSet, live: RuleSet | None = None) -> list[str]:
    """Problems (with key paths) for the regexes of ``ruleset`` that cost too much on a hostile message.

    Not part of :func:`ruleset_from_dict`, which also reads stored versions: it measures (see
    :func:`routing.regexes.probe_ms`), so it runs where new rules come in, before they are used:
    ``app.yaml`` at start-up and every edit an admin makes (:func:`handlers.rules_lint.lint`). Given
    the ``live`` rule set (an edit), the regexes the edit adds are also measured together with the
    others, as the engine scans them (:func:`routing.regexes.check_added_cost`).
    """
    problems: list[str] = []
    for i, rule in enumerate(ruleset.rules):
        for j, pattern in enumerate(rule.when.regex):
            why = check_regex_cost(pattern)
            if why is not None:
                problems.append(f"rules[{i}].when.regex[{j}] (rule `{rule.id}`): {why}")
    if live is not None and not problems:
        why = check_added_cost(_enabled_regexes(live), _enabled_regexes(ruleset))
        if why is not None:
            problems.append(f"rules: {why}")
    return problems


def _enabled_regexes(ruleset: RuleSet) -> list[str]:
    """The regexes the engine scans for ``ruleset`` (disabled rules are left out of its set)."""
    return [p for rule in ruleset.rules if rule.enabled for p in rule.when.regex]


__all__ = ["MAX_MEM", "MAX_REGEX_CHARS", "MAX_REGEX_MS", "MAX_REGEX_PROGRAM", "MAX_REGEX_PROGRAM_TOTAL",
           "check_added_cost", "check_regex_cost", "compile_regex", "costly_regexes", "probe_ms", "re2_options", "regex_set"]
