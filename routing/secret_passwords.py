"""Password detectors of :mod:`routing.secret_finders`: a password label and the value after it.

"password is X", "pw: X", "Kennwort lautet X", "X is my new password", "password for the vpn is X",
"I reset it to X", a value alone on the line after "Password:". Which separator came before the
value decides how much it must look like a password: after "is" or ":" any non-prose word will do,
after a bare space or "to" only a token with a digit, a symbol or mixed case ("password reset" is
not a leak). :func:`password`, :func:`password_rev` and :func:`password_for` decide one match of
:data:`PASSWORD`, :data:`PASSWORD_REV` and :data:`PASSWORD_FOR`; :func:`it_to` is a finder.

Punctuation after a value: a ".", "!" or "?" touching it is hidden with it, since "Hunter22!" is as
likely a password as a sentence's end ("my password is [redacted:password] thanks"); a trailing
",", ";" or ":" and anything after a space are left to the sentence.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import re2

from routing.secret_values import (
    PIN,
    QUOTED,
    STOP_WORDS_B,
    TEMPLATE,
    WEAK_VALUE,
    Hit,
    is_stop,
    looks_strong,
    near,
    value_span,
)

Match = Any  # re2's match objects are untyped

#: Trigger literals (case-insensitive): a password finder runs only when one occurs.
PW_TRIGGERS = (b"pass", b"pw", b"p/w", b"pin", b"kennwort", b"mot de passe", b"contrase", b"senha",
               b"wachtwoord", b"cred", b"wifi", b"wi-fi", b"wpa", b"network key", b"psk", b"shared key")

_SEP_STRONG = (r"[\"']?[ \t]*(?:=>|[:=]|\b(?:is|was|are|were|ist|war|lautet|sind|est|es)\b|[èé](?:[ \t]|\z))"
               r"[ \t]*(?:[:=-][ \t]*)?(?:(?:now|currently|still|just|temporarily|actually|simply)[ \t]+)?")
_SEP_TO = (r"[ \t]+(?:(?:has[ \t]+been|have[ \t]+been|was|is|are|were|got|been)(?:[ \t]+not)?[ \t]+)?"
           r"(?:re)?(?:set|changed|updated)[ \t]+to[ \t]+|[ \t]+(?:to|as|auf)[ \t]+")
_PW_LABEL = (r"\b(?:[a-z0-9]+[_-])*(?:pass(?:words?|wort(?:e?s)?|wd|wrd|owrd|ord)|pasword|passwrod|"
             r"paswd|paswort|pass[ -]word|pass(?:codes?|phrases?)|pass[ -]phrase|pwd|pw|p/w|pword|"
             r"kennwort|mot de passe|contraseña|contrasena|senha|wachtwoord|pin(?:[ -]?code)?|"
             r"cred(?:s|entials?)|wi-?fi[ _-]?(?:key|code|pass)|wpa2?[ _-]?(?:key|psk|passphrase)|"
             r"network[ _-]?key|psk|pre-?shared[ _-]?key|pass)"
             r"(?:[_-][a-z0-9]+)*")
_PREPS = "for|of|on|at|in|with|from|für|fuer|zu|von|de|del|des|pour|para"
_WORD = r"[^\s:=.,;!?()\[\]]+"
# groups: 1 label, then a (separator, value) pair: 2-3 "reset to X", 4-5 "is X" / ": X",
# 6-7 "- X" / " X" / "| X" (a table cell), or 8-9 a value alone on the line after "Password:"
PASSWORD = re2.compile(
    rf"(?i)({_PW_LABEL})(?:({_SEP_TO})({QUOTED}|{WEAK_VALUE})|({_SEP_STRONG})({QUOTED}|\S+)|"
    rf"([ \t]*[-|][ \t]*|[ \t]+)({QUOTED}|{WEAK_VALUE})|"
    rf"([ \t]*:[ \t]*\r?\n[ \t]*)({WEAK_VALUE})[ \t]*(?:\r?\n|\z))")
PASSWORD_REV = re2.compile(  # "Hunter22 is my new password"; groups: 1 value, 2 label
    rf"(?i)(?:\A|[\s(])({WEAK_VALUE})[ \t]+(?:is|was)[ \t]+(?:my|the|our|his|her|your|their)"
    rf"(?:[ \t]+[a-z0-9-]+){{0,2}}?[ \t]+(password|passwort|pw|pwd|passcode|passphrase|pin)\b")
_IT_TO = re2.compile(  # "I reset it to Velvet@76652": no label, so only a value shaped like a password
    rf"(?i)\b(reset|set|changed?)[ \t]+(?:it|mine|this|that)[ \t]+(?:back[ \t]+)?to[ \t]+({WEAK_VALUE})")
_QUERY_TAIL = re2.compile(r"&(?:amp;)?[A-Za-z0-9_.\[\]-]+=")  # Slack sends "&" as "&amp;"
# groups: 1 label, 2 filler, then 3 separator and 4 value, or 5 "to" and 6 value
PASSWORD_FOR = re2.compile(  # "password for the vpn is X", "password I use is X"
    rf"(?i)({_PW_LABEL})((?:[ \t]+(?:{_PREPS})(?:[ \t]+{_WORD}){{1,4}}?|(?:[ \t]+{_WORD}){{1,4}}?))"
    rf"(?:({_SEP_STRONG})({QUOTED}|\S+)|([ \t]+(?:to|auf)[ \t]+)({QUOTED}|{WEAK_VALUE}))")
_PREP_RX = re2.compile(_PREPS.encode())
_VERB_SEPS = frozenset(b"is was are were ist war lautet sind est es".split()) | {"è".encode(), "é".encode()}
_LINKERS = frozenset(b"and or but because since so if when while which it he she they there this what "
                     b"who also then please not is was are".split())
_WEAK_SEPS = (b"to", b"as", b"auf")
_PLAIN_SEPS = frozenset((b":", b"=", b"is", b"are"))
_MULTIWORD = (b"passphrase", b"pass phrase", b"pass-phrase", b"cred")
_WHO = frozenset(b"user userid username user-id id account login employee name mr ms mrs".split())
_NAME_CHARS = frozenset("._-@\\")  # what an account name ("j.doe", "svc_backup", "CORP\jdoe") is made of


def password(m: Match, b: bytes) -> Hit | None:
    sep = next(g for g in (2, 4, 6, 8) if m.start(g + 1) >= 0)
    # a value alone on the line after "Password:" counts as after a weak separator
    return _password_hit(b, m.span(1), (0, 0), (0, 0) if sep == 8 else m.span(sep), m.span(sep + 1))


def password_rev(m: Match, b: bytes) -> Hit | None:
    s, e, v, _ = value_span(b, *m.span(1))
    label = b[m.start(2):m.end(2)].lower()
    ok = looks_strong(v) or (label in (b"pin", b"passcode") and PIN.fullmatch(v) is not None)
    return (s, e, "password") if ok and s < e else None


def password_for(m: Match, b: bytes) -> Hit | None:
    strong = m.start(4) >= 0  # else "reset the password for bob to Welcome1"
    return _password_hit(b, m.span(1), m.span(2), m.span(3 if strong else 5), m.span(4 if strong else 6))


def it_to(b: bytes) -> Iterator[Hit]:
    """"reset it to X" where X has a symbol, or after "reset" mixes cases and digits ("Welcome1").

    Not "set it to 1920x1080", "changed it to Office2019" (a product name reads the same as "Welcome1").
    """
    for m in _IT_TO.finditer(b):
        s, e, v, _ = value_span(b, *m.span(2))
        v = v.rstrip(".!?")  # judged without them, but hidden with them: "Welcome1!" is a password
        shaped = any(c in "!@#$%^&*+=~" for c in v) or (b[m.start(1):m.end(1)].lower() == b"reset" and any(
            c.isupper() for c in v) and any(c.islower() for c in v) and any(c.isdigit() for c in v))
        if shaped and looks_strong(v):
            yield s, e, "password"


def _clause_end(b: bytes, s: int) -> int:
    """End of the clause starting at ``s``: the line, cut at ", " / "; " / ". " / "! " / "? ", at
    most 100 bytes.

    A ".", "!" or "?" ending the clause stays in it, as it does for a one-word value: it cannot be
    told from the password's last character ("creds: jdoe / Hunter22!"). A trailing "," ";" or ":"
    is left to the sentence, as :func:`routing.secret_values.value_span` does.
    """
    nl = b.find(b"\n", s, s + 100)
    seg = b[s:nl if nl >= 0 else s + 100]
    for stop, keep in ((b", ", 0), (b"; ", 0), (b". ", 1), (b"! ", 1), (b"? ", 1)):
        cut = seg.find(stop)
        seg = seg[:cut + keep] if cut >= 0 else seg
    return s + len(seg.rstrip(b" \t\r,;:"))


def _names_account(words: list[bytes], sep: bytes, v: str) -> bool:
    """Whether the value after "password <...> user/account/login" is that account's name.

    Without a preposition the account starts a clause of its own ("forgot the password my user id
    is jdoe"). After "for" ("of", ...) it names the account only after a label-like ":" or "="
    ("password for user: jdoe", "reset the password for the service account: svc_backup"), and
    only when the value has no symbol an account name lacks: "password for the service account:
    Summer2024!" is its password. After "is", "was" or "to" the value is the password ("the
    password for my account is Summer2024!"): a name would read "password for user jdoe is ...".
    """
    if not words or words[-1] not in _WHO:
        return False
    if not _PREP_RX.fullmatch(words[0]):
        return True
    return sep[:1] in (b":", b"=") and not (
        looks_strong(v) and any(not c.isalnum() and c not in _NAME_CHARS for c in v))


def _password_hit(b: bytes, label_span: tuple[int, int], filler: tuple[int, int],
                  sep_span: tuple[int, int], value: tuple[int, int]) -> Hit | None:
    vs, ve = value
    label = b[label_span[0]:label_span[1]].lower()
    multi = any(w in label for w in _MULTIWORD)
    if b.startswith(b"[redacted:", vs) or (not multi and b[vs:ve].lower().rstrip(b".,;:!?") in STOP_WORDS_B):
        return None  # the common case: "password is expired"
    words = b[filler[0]:filler[1]].lower().split()
    sep = b[sep_span[0]:sep_span[1]].strip(b" \t\"'").lower()
    s, e, v, quoted = value_span(b, vs, ve)
    # weak: "to", "as", "set to", "has been reset to"; by the last word, so that "was" is not "as"
    strong = sep not in (b"", b"-", b"|") and sep.split()[-1] not in _WEAK_SEPS
    if (words and not strong and sep not in (b"to", b"auf")) or (
            (label == b"pass" or b"cred" in label) and sep not in _PLAIN_SEPS):
        return None
    if words and (_names_account(words, sep, v) or (len(words) == 1 and _PREP_RX.fullmatch(words[0]))):
        return None  # "password for user: jdoe" names the account, not the password
    if words and not _PREP_RX.fullmatch(words[0]) and (sep not in _VERB_SEPS or _LINKERS & set(words)):
        return None  # "password sign on is X" yes; "password reset: X", "password which is X" no
    if multi and strong and not quoted:
        e = _clause_end(b, s)  # "passphrase: correct horse battery staple", "creds: bob / Hunter22"
        v = b[s:e].decode("utf-8", "replace")
        parts = v.replace("/", " ").replace(":", " ").split()
        if all(is_stop(w) for w in parts) or (
                b"cred" in label and not any(looks_strong(w, min_len=4) for w in parts)):
            return None
        return s, e, "password"
    if not quoted and sep == b"=" and (q := _QUERY_TAIL.search(v)) is not None:
        v = v[:q.start()]  # "password=X&user=bob": the query string goes on
        e = s + len(v.encode())
    if label.startswith(b"pin"):  # "pin: 4821", "unlock pin 4821", "pin is X1y2"; never "pin the issue"
        ok = PIN.fullmatch(v) is not None or (strong and looks_strong(v, min_len=4))
    elif label.startswith(b"passc"):  # a passcode may be digits only, or read like a password
        ok = PIN.fullmatch(v) is not None or (strong and len(v) >= 4 and not is_stop(v)) or looks_strong(v)
    elif quoted:
        ok = len(v) >= 3 and not all(is_stop(w) for w in v.split())
    elif strong:
        ok = len(v) >= 4 and not is_stop(v)
    else:
        ok = looks_strong(v)
    if not ok or s >= e or TEMPLATE.search(v):
        return None
    around = near(b, s, e) if sep == b"=" else b""
    azure = b"windows.net" in around or b"azure" in around  # Password= in an Azure connection string
    return s, e, "azure-key" if azure else "password"
