"""What every edge does to outside input before it is stored: pure helpers, no I/O.

* :func:`clean_text` makes free text storable on every database: a lone surrogate (JSON
  ``"\\ud800"``: SQLite cannot encode it, PostgreSQL refuses it) becomes U+FFFD, NUL (PostgreSQL
  ``text`` cannot hold it) and the other C0 control characters are dropped (``\\n`` and ``\\t`` stay;
  ``\\r\\n`` and ``\\r`` become ``\\n``). Nothing is refused: a person's message is always taken.
* :func:`valid_id` is the rule for identifiers we store or key on (event ids, user, channel, team
  and trigger ids...): a string of at most :data:`MAX_ID_CHARS` characters without control
  characters or surrogates. An id is never cleaned (that would change what it names): an edge
  refuses the request with 400.
* :func:`load_json` parses a body with a bound on nesting, so a hostile ``[[[[…]]]]`` is a clear
  error instead of a ``RecursionError`` (a 500).
* :func:`redact_clipped` redacts a whole text, then clips it, so a secret at the cut is never
  stored half-redacted and a placeholder is never cut in half.
  :func:`redact_to_fit` does so within a hard maximum.
"""

from __future__ import annotations

import json
import re
from typing import Any

from routing.redact import Redaction, redact

#: Longest identifier accepted from outside. The columns hold 255 characters; the margin leaves
#: room for the prefixes and suffixes we add (``command:``, ``action:``, ``slack:``, ``#reply``).
MAX_ID_CHARS = 200
#: Deepest JSON nesting accepted (real Slack and Teams payloads stay around 10).
MAX_JSON_DEPTH = 64
#: Appended to a text that was clipped.
TRUNCATED = " …[truncated]"

_UNSTORABLE = re.compile(r"[\x00-\x08\x0b-\x1f\ud800-\udfff]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_BAD_ID = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
_PLACEHOLDER = re.compile(r"\[redacted:[a-z-]+\]")
_LONGEST_PLACEHOLDER = 64


class BadJson(ValueError):
    """A body that is not JSON, or nested deeper than allowed; the message says which."""


class TooDeep(BadJson):
    """JSON nested deeper than allowed."""


def clean_text(text: str) -> str:
    """``text`` with lone surrogates replaced by U+FFFD and control characters other than ``\\n``/``\\t`` dropped."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not _UNSTORABLE.search(text):
        return text
    if _SURROGATE.search(text):  # a well-formed pair left uncombined becomes its character again
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return _UNSTORABLE.sub("", text)


def clean_name(name: str, limit: int = 255) -> str:
    """A display name as stored: cleaned, on one line, at most ``limit`` characters."""
    return " ".join(clean_text(name).split())[:limit]


def valid_id(value: object, *, max_chars: int = MAX_ID_CHARS) -> bool:
    """True for a string of at most ``max_chars`` characters without control characters or surrogates."""
    return isinstance(value, str) and len(value) <= max_chars and not _BAD_ID.search(value)


def load_json(raw: str | bytes, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The JSON value in ``raw`` (UTF-8 when bytes).

    Raises:
        BadJson: not UTF-8 JSON; :class:`TooDeep` when arrays/objects nest more than ``max_depth`` levels.
    """
    try:
        value = json.loads(raw)
    except RecursionError:
        raise TooDeep(f"JSON nested more than {max_depth} levels deep") from None
    except (UnicodeDecodeError, ValueError):
        raise BadJson("body is not valid JSON") from None
    if _deeper_than(value, max_depth):
        raise TooDeep(f"JSON nested more than {max_depth} levels deep")
    return value


def _deeper_than(value: Any, limit: int) -> bool:
    """True when ``value`` nests lists/dicts more than ``limit`` levels (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def redact_clipped(text: str, limit: int) -> Redaction:
    """Clean and redact all of ``text``, then clip it to ``limit`` characters (plus :data:`TRUNCATED`).

    Redacting first means a secret straddling the limit is still recognised whole; a placeholder
    that would be cut is dropped entirely (the cut moves before it). The work is bounded by the
    request body limit of the edge.
    """
    return clipped(redact(clean_text(text)), limit)


def clipped(red: Redaction, limit: int) -> Redaction:
    """An already redacted text clipped to ``limit`` characters (plus :data:`TRUNCATED`)."""
    if len(red.text) <= limit:
        return red
    return Redaction(red.text[:clip_point(red.text, limit)] + TRUNCATED, red.kinds, red.count)


def redact_to_fit(text: str, limit: int) -> str:
    """``text`` cleaned and redacted, at most ``limit`` characters with :data:`TRUNCATED`: for a field
    with a hard maximum (a rule's note), which a placeholder longer than the secret could overflow."""
    red = redact_clipped(text, limit).text
    return red if len(red) <= limit else redact_clipped(text, max(0, limit - len(TRUNCATED))).text


def clip_point(redacted: str, limit: int) -> int:
    """Where to cut an already redacted text at ``limit``: before a placeholder the cut would split."""
    cut = limit
    for m in _PLACEHOLDER.finditer(redacted, max(0, limit - _LONGEST_PLACEHOLDER), limit + _LONGEST_PLACEHOLDER):
        if m.start() < limit < m.end():
            cut = m.start()
    return cut
