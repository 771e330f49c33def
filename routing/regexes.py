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
"""

from __future__ import annotations

from collections.abc import Iterable

import re2

MAX_REGEX_CHARS = 1_000
#: RE2 instructions one regex may compile to.
MAX_REGEX_PROGRAM = 5_000
#: RE2 instructions all the regexes of a rule set may compile to together (the default rules: ~11,600).
MAX_REGEX_PROGRAM_TOTAL = 30_000
#: RE2's memory budget for one regex and for the set of all of them (RE2's own default).
MAX_MEM = 8 << 20
TOTAL_ADVICE = "merge or drop some, or use terms (`any`, `all`), which cost nothing here"


def re2_options() -> re2.Options:
    """Options every rule regex (and the set of them) is compiled with.

    RE2 errors are raised, not logged, and there are no capture groups (see the module docstring).
    """
    opts = re2.Options()
    opts.log_errors = False
    opts.max_mem = MAX_MEM
    opts.never_capture = True
    return opts


def compile_regex(pattern: str) -> re2._Regexp:
    """Compile a rule regex with RE2, or raise ``ValueError`` saying what to fix."""
    if len(pattern) > MAX_REGEX_CHARS:
        raise ValueError(f"regex is {len(pattern)} characters; the limit is {MAX_REGEX_CHARS}")
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


__all__ = ["MAX_MEM", "MAX_REGEX_CHARS", "MAX_REGEX_PROGRAM", "MAX_REGEX_PROGRAM_TOTAL", "compile_regex",
           "re2_options", "regex_set"]
