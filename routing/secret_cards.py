"""Payment card numbers in free text: 13-19 digits grouped like a card, passing Luhn, with an issuer's
prefix or a word such as "card" nearby; not inside a word, a decimal, a path, a phone number or after
"IMEI". A finder of :data:`routing.secret_finders.FINDERS`.
"""

from __future__ import annotations

from collections.abc import Iterator

import re2

from routing.secret_values import Hit

_CARD_RUN = re2.compile(r"[0-9](?:[ -]?[0-9]){12,}")  # maximal digit runs with 13+ digits
_CARD_CONTEXT = re2.compile(r"(?i)card|credit|debit|visa|master|amex|american express|discover|"
                            r"\bcc\b|cvv|cvc|karte|carte|tarjeta|payment")

_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)


def _luhn(d: str) -> bool:
    return (sum(int(c) for c in d[-1::-2]) + sum(_DOUBLED[int(c)] for c in d[-2::-2])) % 10 == 0


def _issuer_ok(d: str) -> bool:
    n, p2, p4 = len(d), int(d[:2]), int(d[:4])
    return ((d[0] == "4" and n in (13, 16, 19)) or (51 <= p2 <= 55 and n == 16)
            or ((2221 <= p4 <= 2720 or 2200 <= p4 <= 2204) and n == 16)
            or (p2 in (34, 37) and n == 15) or (3528 <= p4 <= 3589 and n >= 16)
            or ((300 <= int(d[:3]) <= 305 or p2 in (36, 38, 39)) and n >= 14)
            or p2 == 50 or 56 <= p2 <= 69)


def cards(b: bytes) -> Iterator[Hit]:
    """13-19 digits, grouped like a card, passing Luhn, with a card issuer prefix or "card" nearby."""
    for m in _CARD_RUN.finditer(b):
        s, e = m.span()
        before, after, after2 = b[s - 1:s], b[e:e + 1], b[e + 1:e + 2]
        if before and (before.isalnum() or before in b"_+.,/\\-$"):
            continue  # inside a word, a decimal, a path or a phone number (+49 ...)
        if after and (after.isalnum() or after == b"_" or (after in b".,:" and after2.isdigit())):
            continue
        groups = b[s:e].decode("ascii").replace("-", " ").split(" ")
        sizes = [len(g) for g in groups]
        if len(groups) == 1 or sizes in ([4, 6, 5], [4, 6, 4]) or (
                len(sizes) >= 3 and all(x == 4 for x in sizes[:-1]) and 1 <= sizes[-1] <= 4):
            spans = [(s, e, "".join(groups))]
        else:  # a table or a hex dump: only a group long enough to be a card on its own
            spans, o = [], s
            for g in groups:
                if len(g) >= 13:
                    spans.append((o, o + len(g), g))
                o += len(g) + 1
        for gs, ge, d in spans:
            if 13 <= len(d) <= 19 and _luhn(d) and b"imei" not in b[max(0, gs - 60):gs].lower() and (
                    _issuer_ok(d) or _CARD_CONTEXT.search(b[max(0, gs - 60):gs])):
                yield gs, ge, "card-number"
