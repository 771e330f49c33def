"""Text normalisation shared by rules and messages, so both are compared in the same form.

Terms and messages are case-folded, stripped of accents and split into words on every character that
is not a letter or a digit. A normalised text is stored space-padded (`` a b c ``) so that a term
matches on word boundaries by plain substring search — which is what lets one Aho-Corasick automaton
match every term of every rule in a single pass.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

#: Words that negate what follows them ("not down", "no ransomware", "isn't working").
NEGATORS: frozenset[str] = frozenset(
    {
        "no", "not", "never", "without", "nor", "none", "nothing", "neither",
        "isnt", "arent", "wasnt", "werent", "dont", "doesnt", "didnt", "wont", "hasnt", "havent",
        "hadnt", "shouldnt", "wouldnt", "couldnt", "nicht", "kein", "keine", "keinen", "nie",
    }
)
#: How many words before a term a negator may stand.
NEGATION_WINDOW = 3

_GERMAN = str.maketrans({"ß": "ss", "æ": "ae", "ø": "o", "œ": "oe", "đ": "d", "ł": "l"})


def fold(text: str) -> str:
    """Case-fold and strip accents, keeping punctuation: the form regexes are searched in."""
    if text.isascii():
        return text.lower()
    # Compatibility forms first: "𝐑𝐀𝐍𝐒𝐎𝐌" (mathematical bold capitals) has no lower case of its own
    # until it is plain "RANSOM"; then fold case, and decompose again what case folding produced.
    compatible = unicodedata.normalize("NFKD", text).casefold().translate(_GERMAN)
    return "".join(ch for ch in unicodedata.normalize("NFKD", compatible) if not unicodedata.combining(ch))


#: An apostrophe inside a word joins it ("isn't" -> "isnt", a negator), except before a final "s":
#: "website's down" is "website s down", so that the term "website" still matches on its own.
_APOSTROPHES = re.compile(r"(?<=[^\W_])['’](s\b)?")
_WORD = re.compile(r"[^\W_]+")


def _apostrophe(m: re.Match[str]) -> str:
    return " s" if m.group(1) else ""


def words_folded(folded: str) -> list[str]:
    """Words of already folded text; an apostrophe inside a word joins ("isn't" -> "isnt")."""
    return _WORD.findall(_APOSTROPHES.sub(_apostrophe, folded))


def words(text: str) -> list[str]:
    """Split text into folded words on every character that is not a letter or digit."""
    return words_folded(fold(text))


#: Sentence punctuation followed by a space (or a line break): "down. everyone" but not "v2.3".
_SENTENCE_BREAK = re.compile(r"[.!?;:]+(?:\s|$)|\n")
#: Stands between sentences in the padded form: no term can span it, no negation crosses it.
BREAK = "|"


def padded_folded(folded: str) -> str:
    """:func:`padded` of text that is already folded."""
    cleaned = _APOSTROPHES.sub(_apostrophe, folded)
    sentences = (" ".join(_WORD.findall(part)) for part in _SENTENCE_BREAK.split(cleaned))
    return " " + f" {BREAK} ".join(s for s in sentences if s) + " "


def padded(text: str) -> str:
    """The space-padded word form of ``text``: ``" outlook keeps crashing "``.

    Sentences are joined by :data:`BREAK`, so a phrase never matches across a full stop and a
    negation ("not a drill: ransom note") does not reach into the next sentence.
    """
    return padded_folded(fold(text))


@lru_cache(maxsize=65536)
def term_key(term: str) -> str:
    """The search key of a rule term.

    A plain term becomes `` w1 w2 `` (padded both sides: whole words only). A term ending in ``*``
    becomes `` w1 w2`` (open on the right: its last word is a prefix).

    Raises:
        ValueError: if the term has no letters or digits.
    """
    raw = term.strip()
    prefix = raw.endswith("*")
    ws = words(raw.rstrip("*"))
    if not ws:
        raise ValueError(f"term {term!r} has no letters or digits")
    key = " " + " ".join(ws)
    return key if prefix else key + " "
