"""The tokenizer of chat commands, and the one error every command parser raises.

Quoting follows what chat clients send: ``"…"``, ``'…'``, typographic ``“…”`` ``‘…’`` ``„…“``
``«…»``. A straight quote closes only before a blank or the end, so ``'don't panic'`` is one value.
A backslash escapes a quote, a backslash or a blank; any other backslash is kept, so ``\\b`` in a
regex stays ``\\b``. An em or en dash that a client made of ``--`` still starts a flag.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_TOKENS = 400

#: Opening quote -> the characters that close it.
QUOTES: dict[str, str] = {'"': '"', "'": "'", "“": "”“", "‘": "’", "„": "“”", "«": "»", "”": "”"}
_SAME_CLOSER = {'"', "'", "”"}
DASHES = ("\u2014", "\u2013")  # em and en dash: what "--" becomes under smart punctuation


class CommandError(Exception):
    """A command that cannot be run: ``message`` says why, ``usage`` shows the correct form."""

    def __init__(self, message: str, usage: str = "", *, markdown: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.usage = usage
        self.markdown = markdown  # already escaped for chat (user text inside is escaped)

    def __str__(self) -> str:
        return self.message + (f"\nUsage: {self.usage}" if self.usage else "")


@dataclass(frozen=True, slots=True)
class Token:
    """One word of a command. ``bare`` is False when it began with a quote or an escape (never a flag)."""

    text: str
    bare: bool = True

    @property
    def flag(self) -> str | None:
        """The flag name (``any`` of ``--any``/``—any``), or None when this is a value."""
        if not self.bare:
            return None
        text = self.text
        if text.startswith(DASHES):
            text = "--" + text[1:]
        if text.startswith("--") and len(text) > 2 and text[2].isalpha():
            return text[2:].partition("=")[0].lower()
        return None




def slack_unescape(text: str) -> str:
    """Undo Slack's escaping of ``&``, ``<`` and ``>`` in command text."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def tokenize(text: str, *, usage: str = "") -> list[Token]:
    """Split ``text`` into tokens.

    Raises:
        CommandError: on an unclosed quote or too many tokens.
    """
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            break
        buf: list[str] = []
        bare = True
        while i < n and not text[i].isspace():
            ch = text[i]
            if ch == "\\" and i + 1 < n and (text[i + 1] in QUOTES or text[i + 1] in "\\’»" or text[i + 1].isspace()):
                bare = bare and bool(buf)
                buf.append(text[i + 1])
                i += 2
                continue
            if ch in QUOTES and (not buf or _opens_value(buf)):
                bare = bare and bool(buf)
                inner, i = _quoted(text, i, usage)
                buf.extend(inner)
                continue
            buf.append(ch)
            i += 1
        tokens.append(Token("".join(buf), bare))
        if len(tokens) > MAX_TOKENS:
            raise CommandError(f"too many words ({MAX_TOKENS} at most); put lists in one quoted value", usage)
    return tokens


def _opens_value(buf: list[str]) -> bool:
    """A quote right after ``--flag=`` opens the value."""
    so_far = "".join(buf)
    return so_far.endswith("=") and (so_far.startswith("--") or so_far.startswith(DASHES))


def _quoted(text: str, start: int, usage: str) -> tuple[list[str], int]:
    """Read a quoted section starting at ``start``; return its characters and the index after it."""
    opener = text[start]
    closers = QUOTES[opener]
    same = opener in _SAME_CLOSER
    out: list[str] = []
    j, n = start + 1, len(text)
    while j < n:
        c = text[j]
        if c == "\\" and j + 1 < n and (text[j + 1] in closers or text[j + 1] == "\\" or text[j + 1] in QUOTES):
            out.append(text[j + 1])
            j += 2
            continue
        # A straight quote closes only before a blank or the end, so "don't" inside '…' survives.
        if c in closers and (not same or j + 1 == n or text[j + 1].isspace()):
            return out, j + 1
        out.append(c)
        j += 1
    snippet = text[start:start + 30]
    raise CommandError(
        f"unclosed quote at {snippet!r}: end the value with {closers[0]} (or write \\{opener} for a literal {opener})",
        usage,
    )
