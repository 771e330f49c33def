"""Credential redaction: secrets in a message become typed placeholders such as ``[redacted:jwt]``.

Called before a request is stored, logged or forwarded. The detectors live in
:mod:`routing.secret_finders`; this module runs them and rewrites the text. Pure and linear-time: every pattern is RE2,
compiled once at import and run over the UTF-8 bytes of the text, so offsets need no conversion.
Each detector family runs only when one of its cheap trigger literals occurs in the text. A hit is
a byte span plus a kind; overlaps are resolved by detector order (a GitHub token beats "token: X").
Labelled detectors keep the label and replace only the value ("my password is [redacted:password]"),
and leave values that read like a state alone ("password is expired", "token is invalid").
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import ahocorasick

from routing.secret_finders import FINDERS, PLACEHOLDER, Hit

KINDS: tuple[str, ...] = (
    "password", "aws-key", "github-token", "slack-token", "slack-webhook", "azure-key",
    "google-api-key", "private-key", "jwt", "bearer-token", "card-number", "secret",
)
_MAX_PASSES = 4


@dataclass(frozen=True, slots=True)
class Redaction:
    """The result of :func:`redact`.

    Attributes:
        text: The text with every secret replaced by ``[redacted:KIND]``.
        kinds: Distinct kinds found, in order of first appearance.
        count: Number of secrets replaced.
    """

    text: str
    kinds: tuple[str, ...] = ()
    count: int = 0

    @property
    def changed(self) -> bool:
        return self.count > 0


def placeholder(kind: str) -> str:
    return f"[redacted:{kind}]"


def _automaton(fold: bool) -> ahocorasick.Automaton:
    """Every trigger literal of the detectors that match it ``fold``-ed, as latin-1 text (bytes 1:1)."""
    automaton = ahocorasick.Automaton()
    for triggers, folded, _ in FINDERS:
        for t in triggers:
            if t and folded == fold:
                automaton.add_word(t.decode("latin-1"), t)
    automaton.make_automaton()
    return automaton


# One pass over the text finds which trigger literals occur (overlaps included), instead of a
# substring search per trigger per detector: this check runs for every message.
_FOLDED_TRIGGERS = _automaton(True)
_EXACT_TRIGGERS = _automaton(False)


def _present(b: bytes, low: bytes) -> set[bytes]:
    found = {t for _, t in _FOLDED_TRIGGERS.iter(low.decode("latin-1"))}
    found.update(t for _, t in _EXACT_TRIGGERS.iter(b.decode("latin-1")))
    return found


def _one_pass(b: bytes) -> list[Hit]:
    starts: list[int] = []  # taken spans, sorted and disjoint: existing placeholders, then hits
    ends: list[int] = []
    for m in PLACEHOLDER.finditer(b):
        starts.append(m.start())
        ends.append(m.end())
    hits: list[Hit] = []
    present = _present(b, b.lower())
    for triggers, _, finder in FINDERS:
        if not any(not t or t in present for t in triggers):
            continue
        for s, e, kind in finder(b):
            i = bisect.bisect_right(starts, s)
            if s < e and (i == 0 or ends[i - 1] <= s) and (i == len(starts) or e <= starts[i]):
                starts.insert(i, s)
                ends.insert(i, e)
                hits.append((s, e, kind))
    return sorted(hits)


def redact(text: str) -> Redaction:
    """Replace every credential in ``text`` by ``[redacted:KIND]``. Never raises on a ``str``.

    Passes repeat until nothing more is found, so the result is a fixed point:
    ``redact(redact(x).text).text == redact(x).text``.
    """
    if not isinstance(text, str):
        raise TypeError(f"redact() expects str, not {type(text).__name__}")
    try:
        b = text.encode("utf-8", "surrogatepass")
        emitted: set[str] = set()
        count = 0
        for _ in range(_MAX_PASSES):
            hits = _one_pass(b)
            if not hits:
                break
            count += len(hits)
            emitted.update(k for _, _, k in hits)
            out, last = bytearray(), 0
            for s, e, kind in hits:
                out += b[last:s] + placeholder(kind).encode()
                last = e
            b = bytes(out + b[last:])
        if not count:
            return Redaction(text)
        found = (b[m.start() + 10:m.end() - 1].decode() for m in PLACEHOLDER.finditer(b))
        kinds = dict.fromkeys(k for k in found if k in emitted)  # in order of appearance
        try:
            return Redaction(b.decode("utf-8", "surrogatepass"), tuple(kinds), count)
        except UnicodeDecodeError:
            return Redaction(b.decode("utf-8", "replace"), tuple(kinds), count)
    except Exception:  # noqa: BLE001 - fail closed: an unexpected error must not leak the text
        return Redaction(placeholder("secret"), ("secret",), 1)

