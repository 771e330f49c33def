"""The detectors behind :func:`routing.redact.redact`: RE2 patterns, labels and validators.

Each entry of :data:`FINDERS` is ``(trigger literals, case-insensitive?, finder)``, in priority
order: an earlier detector wins an overlap. A finder yields byte spans with their kind.
"""

from __future__ import annotations

import base64
import bisect
from collections.abc import Callable, Iterator
from typing import Any

import re2

Hit = tuple[int, int, str]  # byte start, byte end, kind
Finder = Callable[[bytes], Iterator[Hit]]
Match = Any  # re2's match objects are untyped


# --- what a value must not be ----------------------------------------------------------------------
_STOP = frozenset("""
a an the my your his her their our its it this that these those which what who where when why how
i me we you he she they him them us mine yours there here not no none nil null n/a na nothing
empty blank missing unknown wrong incorrect invalid valid correct right ok okay fine good bad weak
strong same different similar identical new old current previous temporary temp default expired
expiring expire expires expiry expiration locked blocked disabled enabled reset resets resetting
changed change changing required needed necessary mandatory urgent pending done broken working still
also already now currently just again too very really probably definitely being getting going showing
set sent and or but so if then else for from in on at to of by with without about after before
during into over out up down off gone due because since as like than please pls plz help thanks thank
regards hi hello dear team user username userid login logon logged account email mail outlook erp sap
vpn windows skype teams office portal system server tool manager management policy field prompt screen
box window page link length history requirements complexity attempt attempts issue issues problem
error errors failure failed fail fails case sensitive complex short long simple easy hard secure
insecure compromised known forgotten forgot lost asked requested fixed updated sync synced
synchronized synchronised accepted rejected recognized recognised allowed able unable possible
impossible supposed meant yes true false given provided shown displayed entered typed masked hidden
encrypted protected stored saved cached remembered will would should could can cannot can't won't
doesn't isn't wasn't don't didn't does did do has have had be been is was are were am etc something
anything everything unique only always never sometimes usually every each all any some both either
neither one two three first last next above below attached following exactly mentioned whatever
password passwords passwort pw pwd pass passcode credential credentials secret secrets token tokens
key keys code pin hash unchanged unavailable accepting today tomorrow yesterday soon later again
blokker blockiert bloqueado bloqué bloque geblokkeerd nicht kein keine falsch richtig korrekt
abgelaufen gesperrt ungültig gültig neu alt leer vergessen geändert zurückgesetzt gleich identisch
das der die dem den ein eine einer mein meine dein sein ihr noch schon jetzt nun immer auch bereits
im zu seit wieder weg unbekannt und oder aber bitte
incorrecta incorrecto correcta correcto nueva nuevo vieja viejo caducada caducado bloqueada bloqueado
expirada expirado vencida vencido olvidada inválida invalida válida valida errónea erronea
incorrect incorrecte correcte expiré expirée expire bloqué bloquée oublié oubliée nouveau nouvelle ancien
ancienne changé changée invalide valide
scaduta scaduto sbagliata sbagliato errata errato bloccata bloccato nuova nuovo vecchia vecchio corretta
corretto dimenticata cambiata non
inválido errada errado nova novo antiga antigo correta correto esquecida alterada
""".split())  # noqa: SIM905 - a word list reads better as text
_STOP_B = frozenset(w.encode() for w in _STOP)
_STATE_SUFFIXES = ("ed", "ing", "ly", "tion", "ment", "able", "ible", "ness")
_MASK_CHARS = frozenset("*x•●#.?-_X")
_SYMBOLS = frozenset("!@#$%^&*()-_=+[]{}|;:,.<>/?~`'\"\\")
_OPEN_CLOSE = {'"': '"', "'": "'", "“": "”", "‘": "’", "`": "`", "«": "»", "„": "“", "(": ")",
               "[": "]", "<": ">", "{": "}"}
_EMAIL_OR_URL = re2.compile(r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}|[a-z][a-z0-9+.-]*://\S*")
_NOT_A_SECRET = re2.compile(r"[A-Za-z]+(?:[-'/_][A-Za-z]+)*|[A-Za-z]+_[0-9]+|"
                            r"[0-9]+(?:[./:-][0-9]+)+|v?[0-9]+(?:\.[0-9a-z]+)+")
_TEMPLATE = re2.compile(r"(?i)[(<{\[][ \t]*(?:your|new|old|the|user|pass|pwd|login|name|ticket)")
_PIN = re2.compile(r"[0-9]{4,12}")


def _is_stop(value: str) -> bool:
    low = value.lower().rstrip(".!?")
    if not low or low in _STOP or "[redacted:" in low or set(low) <= _MASK_CHARS:
        return True
    if ("@" in low or "://" in low) and _EMAIL_OR_URL.fullmatch(low):
        return True  # an e-mail address or a URL is not the password itself
    return low.isalpha() and low.isascii() and low.endswith(_STATE_SUFFIXES)


def _looks_strong(value: str, *, min_len: int = 6) -> bool:
    """Letters mixed with digits or symbols: how a password or token looks, unlike prose."""
    value = value.lstrip("-([{<\"'").rstrip(".,;:!?)]}>\"'")
    if len(value) < min_len or _is_stop(value) or not any(c.isalpha() for c in value):
        return False
    mixed_case = any("a" <= c <= "z" for c in value) and any("A" <= c <= "Z" for c in value)
    if not (any(c.isdigit() or c in _SYMBOLS for c in value) or (mixed_case and len(value) >= 10)):
        return False
    return _NOT_A_SECRET.fullmatch(value) is None  # hyphenated words, SID_34, dates, versions


def _token_like(v: str, min_len: int = 8) -> bool:
    """A value after "Bearer" or "api_key:": anything token-shaped but a word, date or version."""
    core = v.strip(".,;:!?()[]{}<>\"'")
    if len(core) < min_len or " " in core or _is_stop(core) or _NOT_A_SECRET.fullmatch(core):
        return False
    return not core.isalpha() or (len(core) >= 20 and core.lower() != core)


def _value_span(b: bytes, s: int, e: int) -> tuple[int, int, str, bool]:
    """Trim a raw value: unwrap quotes/brackets, drop trailing ``,;:`` and unbalanced closers."""
    v = b[s:e].decode("utf-8", "replace")
    if len(v) >= 3 and v[0] in _OPEN_CLOSE:
        close = v.find(_OPEN_CLOSE[v[0]], 1)
        if close > 1 and v[close + 1:].strip(".,;:!?") == "":
            start = s + len(v[0].encode())
            return start, start + len(v[1:close].encode()), v[1:close], True
    while v and (v[-1] in ",;:" or (v[-1] in ")]}>\"'”’" and v.count(v[-1]) > sum(
            v.count(o) for o, c in _OPEN_CLOSE.items() if c == v[-1] and o != c))):
        e -= len(v[-1].encode())
        v = v[:-1]
    return s, e, v, False


# --- patterns ---------------------------------------------------------------------------------------
_QUOTED = r'"[^"\r\n]+"|\'[^\'\r\n]+\'|“[^”\r\n]+”|‘[^’\r\n]+’|`[^`\r\n]+`|«[^»\r\n]+»'
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
# After a weak separator ("password X", "password to X") only a token with a digit, a symbol or a
# lower-to-upper change can be a value: the regex itself skips "password reset", "pw for ...".
_WEAK_VALUE = r"(?-i:\S*(?:[0-9@#$%^&*+=~|\\<>]|[a-z]\S*[A-Z])\S*)"
# groups: 1 label, then a (separator, value) pair: 2-3 "reset to X", 4-5 "is X" / ": X",
# 6-7 "- X" / " X" / "| X" (a table cell), or 8-9 a value alone on the line after "Password:"
_PASSWORD = re2.compile(
    rf"(?i)({_PW_LABEL})(?:({_SEP_TO})({_QUOTED}|{_WEAK_VALUE})|({_SEP_STRONG})({_QUOTED}|\S+)|"
    rf"([ \t]*[-|][ \t]*|[ \t]+)({_QUOTED}|{_WEAK_VALUE})|"
    rf"([ \t]*:[ \t]*\r?\n[ \t]*)({_WEAK_VALUE})[ \t]*(?:\r?\n|\z))")
_PASSWORD_REV = re2.compile(  # "Hunter22 is my new password"; groups: 1 value, 2 label
    rf"(?i)(?:\A|[\s(])({_WEAK_VALUE})[ \t]+(?:is|was)[ \t]+(?:my|the|our|his|her|your|their)"
    rf"(?:[ \t]+[a-z0-9-]+){{0,2}}?[ \t]+(password|passwort|pw|pwd|passcode|passphrase|pin)\b")
_IT_TO = re2.compile(  # "I reset it to Velvet@76652": no label, so only a value shaped like a password
    rf"(?i)\b(reset|set|changed?)[ \t]+(?:it|mine|this|that)[ \t]+(?:back[ \t]+)?to[ \t]+({_WEAK_VALUE})")
_QUERY_TAIL = re2.compile(r"&(?:amp;)?[A-Za-z0-9_.\[\]-]+=")  # Slack sends "&" as "&amp;"
# groups: 1 label, 2 filler, then 3 separator and 4 value, or 5 "to" and 6 value
_PASSWORD_FOR = re2.compile(  # "password for the vpn is X", "password I use is X"
    rf"(?i)({_PW_LABEL})((?:[ \t]+(?:{_PREPS})(?:[ \t]+{_WORD}){{1,4}}?|(?:[ \t]+{_WORD}){{1,4}}?))"
    rf"(?:({_SEP_STRONG})({_QUOTED}|\S+)|([ \t]+(?:to|auf)[ \t]+)({_QUOTED}|{_WEAK_VALUE}))")
_PREP_RX = re2.compile(_PREPS.encode())
_VERB_SEPS = frozenset(b"is was are were ist war lautet sind est es".split()) | {"è".encode(), "é".encode()}
_LINKERS = frozenset(b"and or but because since so if when while which it he she they there this what "
                     b"who also then please not is was are".split())
_WEAK_SEPS = (b"to", b"as", b"auf")
_PLAIN_SEPS = frozenset((b":", b"=", b"is", b"are"))
_MULTIWORD = (b"passphrase", b"pass phrase", b"pass-phrase", b"cred")
_WHO = frozenset(b"user userid username user-id id account login employee name mr ms mrs".split())
_SECRET_LABEL = (r"\b(?:[a-z0-9]+[_-])*(?:api[_ -]?(?:key|secret|token)|apikey|x-api-key|"
                 r"(?:access|auth|refresh|id|session|bot|oauth|private|bearer)[_ -]?token|"
                 r"personal[_ -]access[_ -]token|(?:secret|encryption|signing|master|private|access|"
                 r"subscription|account|storage)[_ -]?key|client[_ -]?secret|app[_ -]?secret|"
                 r"consumer[_ -]?secret|shared[_ -]?secret|webhook[_ -]?secret|signing[_ -]?secret|"
                 r"ocp-apim-subscription-key|sas[_ -]?token|secret|token)(?:[_-][a-z0-9]+)*")
_SECRET = re2.compile(  # groups: 1 label, then 2 separator and 3 value, or 4 (no separator) value
    rf"(?i)({_SECRET_LABEL})(?:([\"']?[ \t]*(?:=>|[:=]|\b(?:is|was|ist|lautet)\b)[ \t]*"
    rf"(?:[:=-][ \t]*)?)({_QUOTED}|[^\s\"'<>,;&]+)|[ \t]+({_WEAK_VALUE}))")
_AWS_ID = r"\b(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16}\b"
_AWS_ID_RX = re2.compile(_AWS_ID)
_AWS_PREFIXES = (b"AKIA", b"ASIA", b"ABIA", b"ACCA", b"A3T")
_AWS_LABELLED = (
    r"(?i)(?:\b(?:aws[_ -]?)?(?:secret[_ -]?access[_ -]?key|secretaccesskey|session[_ -]?token)|"
    r"\baws[_ -]?secret(?:[_ -]?key)?|x-amz-(?:security-token|signature))"
    r"[\"']?(?:[ \t]*(?:=>|[:=]|\bis\b)[ \t]*|[ \t]+)[\"']?([A-Za-z0-9/+=%]{16,})")
_AWS_SECRET_SHAPE = re2.compile(r"[A-Za-z0-9/+]{40}")
_AZURE_KEY_SHAPE = re2.compile(r"[A-Za-z0-9+/]{86}==")
_B64_RUN = re2.compile(r"[A-Za-z0-9/+=]{40,}")
_CARD_RUN = re2.compile(r"[0-9](?:[ -]?[0-9]){12,}")  # maximal digit runs with 13+ digits
_CARD_CONTEXT = re2.compile(r"(?i)card|credit|debit|visa|master|amex|american express|discover|"
                            r"\bcc\b|cvv|cvc|karte|carte|tarjeta|payment")
_PLACEHOLDER = re2.compile(r"\[redacted:[a-z-]+\]")


# --- finders ----------------------------------------------------------------------------------------
def _simple(pattern: str, kind: str, group: int = 0,
            check: Callable[[str], bool] | None = None) -> Finder:
    """Every match of ``pattern`` whose ``group`` (-1: the first that took part) passes ``check``."""
    rx = re2.compile(pattern)

    def find(b: bytes) -> Iterator[Hit]:
        for m in rx.finditer(b):
            s, e = m.span(group) if group >= 0 else next(
                (m.span(g) for g in range(1, rx.groups + 1) if m.start(g) >= 0), (-1, -1))
            if s >= 0 and (check is None or check(b[s:e].decode("utf-8", "replace"))):
                yield s, e, kind
    return find


def _labelled(rx: Any, decide: Callable[[Match, bytes], Hit | None]) -> Finder:
    """Search ``rx`` (group 1 is the label); when ``decide`` rejects a match, go on after the label."""
    def find(b: bytes) -> Iterator[Hit]:
        pos, n = 0, len(b)
        while pos < n:
            m = rx.search(b, pos)
            if m is None:
                return
            hit = decide(m, b)
            if hit is not None:
                yield hit
            pos = max(hit[1] if hit else 0, m.end(1), m.start() + 1)
    return find


def _password(m: Match, b: bytes) -> Hit | None:
    sep = next(g for g in (2, 4, 6, 8) if m.start(g + 1) >= 0)
    # a value alone on the line after "Password:" counts as after a weak separator
    return _password_hit(b, m.span(1), (0, 0), (0, 0) if sep == 8 else m.span(sep), m.span(sep + 1))


def _password_rev(m: Match, b: bytes) -> Hit | None:
    s, e, v, _ = _value_span(b, *m.span(1))
    label = b[m.start(2):m.end(2)].lower()
    ok = _looks_strong(v) or (label in (b"pin", b"passcode") and _PIN.fullmatch(v) is not None)
    return (s, e, "password") if ok and s < e else None


def _password_for(m: Match, b: bytes) -> Hit | None:
    strong = m.start(4) >= 0  # else "reset the password for bob to Welcome1"
    return _password_hit(b, m.span(1), m.span(2), m.span(3 if strong else 5), m.span(4 if strong else 6))


def _it_to(b: bytes) -> Iterator[Hit]:
    """"reset it to X" where X has a symbol, or after "reset" mixes cases and digits ("Welcome1").

    Not "set it to 1920x1080", "changed it to Office2019" (a product name reads the same as "Welcome1").
    """
    for m in _IT_TO.finditer(b):
        s, e, v, _ = _value_span(b, *m.span(2))
        v = v.rstrip(".!?")
        e = s + len(v.encode())
        shaped = any(c in "!@#$%^&*+=~" for c in v) or (b[m.start(1):m.end(1)].lower() == b"reset" and any(
            c.isupper() for c in v) and any(c.islower() for c in v) and any(c.isdigit() for c in v))
        if shaped and _looks_strong(v):
            yield s, e, "password"


def _clause_end(b: bytes, s: int) -> int:
    """End of the clause starting at ``s``: the line, cut at ", " / ". " / "; ", at most 100 bytes."""
    nl = b.find(b"\n", s, s + 100)
    seg = b[s:nl if nl >= 0 else s + 100]
    for stop in (b", ", b". ", b"; ", b"! ", b"? "):
        cut = seg.find(stop)
        seg = seg[:cut] if cut >= 0 else seg
    return s + len(seg.rstrip(b" \t\r.,;:!?"))


def _password_hit(b: bytes, label_span: tuple[int, int], filler: tuple[int, int],
                  sep_span: tuple[int, int], value: tuple[int, int]) -> Hit | None:
    vs, ve = value
    label = b[label_span[0]:label_span[1]].lower()
    multi = any(w in label for w in _MULTIWORD)
    if b.startswith(b"[redacted:", vs) or (not multi and b[vs:ve].lower().rstrip(b".,;:!?") in _STOP_B):
        return None  # the common case: "password is expired"
    words = b[filler[0]:filler[1]].lower().split()
    sep = b[sep_span[0]:sep_span[1]].strip(b" \t\"'").lower()
    s, e, v, quoted = _value_span(b, vs, ve)
    strong = sep not in (b"", b"-", b"|") and not sep.startswith(_WEAK_SEPS) and not sep.endswith(_WEAK_SEPS)
    if (words and not strong and sep not in (b"to", b"auf")) or (
            (label == b"pass" or b"cred" in label) and sep not in _PLAIN_SEPS):
        return None
    if words and (words[-1] in _WHO or (len(words) == 1 and _PREP_RX.fullmatch(words[0]))):
        return None  # "password for user: jdoe" names the account, not the password
    if words and not _PREP_RX.fullmatch(words[0]) and (sep not in _VERB_SEPS or _LINKERS & set(words)):
        return None  # "password sign on is X" yes; "password reset: X", "password which is X" no
    if multi and strong and not quoted:
        e = _clause_end(b, s)  # "passphrase: correct horse battery staple", "creds: bob / Hunter22"
        v = b[s:e].decode("utf-8", "replace")
        parts = v.replace("/", " ").replace(":", " ").split()
        if all(_is_stop(w) for w in parts) or (
                b"cred" in label and not any(_looks_strong(w, min_len=4) for w in parts)):
            return None
        return s, e, "password"
    if not quoted and sep == b"=" and (q := _QUERY_TAIL.search(v)) is not None:
        v = v[:q.start()]  # "password=X&user=bob": the query string goes on
        e = s + len(v.encode())
    if label.startswith(b"pin"):  # "pin: 4821", "unlock pin 4821", "pin is X1y2"; never "pin the issue"
        ok = _PIN.fullmatch(v) is not None or (strong and _looks_strong(v, min_len=4))
    elif label.startswith(b"passc"):  # a passcode may be digits only, or read like a password
        ok = _PIN.fullmatch(v) is not None or (strong and len(v) >= 4 and not _is_stop(v)) or _looks_strong(v)
    elif quoted:
        ok = len(v) >= 3 and not all(_is_stop(w) for w in v.split())
    elif strong:
        ok = len(v) >= 4 and not _is_stop(v)
    else:
        ok = _looks_strong(v)
    if not ok or s >= e or _TEMPLATE.search(v):
        return None
    near = _near(b, s, e) if sep == b"=" else b""
    azure = b"windows.net" in near or b"azure" in near  # Password= in an Azure connection string
    return s, e, "azure-key" if azure else "password"


def _secret(m: Match, b: bytes) -> Hit | None:
    has_sep = m.start(3) >= 0
    vs, ve = m.span(3 if has_sep else 4)
    if b[vs:ve].lower().rstrip(b".,;:!?") in _STOP_B:
        return None
    label = b[m.start(1):m.end(1)].decode("ascii", "replace").lower()
    s, e, v, quoted = _value_span(b, vs, ve)
    if has_sep:
        ok = _looks_strong(v) or _token_like(v) or (
            quoted and len(v) >= 8 and not all(_is_stop(w) for w in v.split()))
    else:  # "api key abc123..." with no separator: only long token-shaped values
        ok = len(v) >= 16 and _looks_strong(v)
    return (s, e, _secret_kind(label, v, b, s, e)) if ok and s < e else None


def _near(b: bytes, s: int, e: int, width: int = 300) -> bytes:
    """The lower-cased text around a hit (not the hit: a password may contain "azure"), where a vendor
    name would tell its kind."""
    return (b[max(0, s - width):s] + b" " + b[e:e + width]).lower()


def _secret_kind(label: str, value: str, b: bytes, s: int, e: int) -> str:
    """Name a labelled secret after its vendor when the label or the value's shape says which."""
    if "aws" in label or "amazon" in label:
        return "aws-key"
    if any(w in label for w in ("azure", "ocp-apim", "storage", "account", "sas")) or (
            _AZURE_KEY_SHAPE.fullmatch(value)) or ("client" in label and any(
                w in _near(b, s, e) for w in (b"azure", b"entra", b"tenant", b"microsoft"))):
        return "azure-key"
    for word, kind in (("github", "github-token"), ("slack", "slack-token"),
                       ("google", "google-api-key"), ("gcp", "google-api-key")):
        if word in label:
            return kind
    if _AWS_SECRET_SHAPE.fullmatch(value) and (b"aws" in _near(b, s, e) or _AWS_ID_RX.search(
            b, max(0, s - 300), e + 300)):
        return "aws-key"
    return "secret"


def _aws_near_id(b: bytes) -> Iterator[Hit]:
    """40-character secret access keys within 200 bytes of an access key id."""
    ids = [m.start() for m in _AWS_ID_RX.finditer(b)]  # sorted; an id is 20 bytes long
    for m in _B64_RUN.finditer(b) if ids else ():
        s, e = m.span()
        v = b[s:e].rstrip(b"=")
        i = bisect.bisect_left(ids, s - 220)  # the first id that could end within 200 bytes before
        if len(v) == 40 and i < len(ids) and ids[i] < e + 200 and (
                v.lower() != v and v.upper() != v and any(c in b"0123456789/+" for c in v)):
            yield s, s + 40, "aws-key"


def _basic_credentials(v: str) -> bool:
    """``Basic <base64>`` whose payload decodes to printable ``user:password``."""
    try:
        raw = base64.b64decode(v + "=" * (-len(v) % 4), validate=True)
    except ValueError:
        return False
    return b":" in raw and len(raw) >= 3 and all(32 <= c < 127 for c in raw)


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


def _cards(b: bytes) -> Iterator[Hit]:
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


_PW_TRIGGERS = (b"pass", b"pw", b"p/w", b"pin", b"kennwort", b"mot de passe", b"contrase", b"senha",
                b"wachtwoord", b"cred", b"wifi", b"wi-fi", b"wpa", b"network key", b"psk", b"shared key")
# (trigger literals, triggers case-insensitive?, finder) in priority order: earlier wins an overlap.
_FINDERS: tuple[tuple[tuple[bytes, ...], bool, Finder], ...] = (
    ((b"private key",), True, _simple(
        r"(?is)-{3,}[ \t]*BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?[ \t]*-{3,}.*?"
        r"(?:-{3,}[ \t]*END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?[ \t]*-{3,}|\z)", "private-key")),
    ((b"putty-user-key",), True, _simple(
        r"(?is)PuTTY-User-Key-File-[0-9]+:.*?(?:Private-MAC:[ \t]*[0-9a-f]+|\z)", "private-key")),
    ((b"hooks.slack.com",), True, _simple(
        r"(?i)(?:https?://)?hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_/-]+",
        "slack-webhook")),
    (_AWS_PREFIXES, False, _simple(_AWS_ID, "aws-key")),
    ((b"secret", b"session", b"x-amz-"), True, _simple(_AWS_LABELLED, "aws-key", 1)),
    (_AWS_PREFIXES, False, _aws_near_id),
    ((b"gh", b"github_pat_"), False, _simple(
        r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})", "github-token")),
    ((b"xox", b"xapp-"), False, _simple(
        r"\b(?:xox[abeoprs]|xapp)-[A-Za-z0-9-]{8,}|\bxoxe\.xox[bp]-[A-Za-z0-9-]{8,}", "slack-token")),
    ((b"AIza", b"GOCSPX-", b"ya29."), False, _simple(
        r"\bAIza[0-9A-Za-z_-]{30,}|\bGOCSPX-[A-Za-z0-9_-]{20,}|\bya29\.[A-Za-z0-9_-]{20,}",
        "google-api-key")),
    ((b"eyJ",), False, _simple(
        r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+){0,2}", "jwt")),
    ((b"accountkey", b"sharedaccess", b"sharedsecret"), True, _simple(
        r"(?i)\b(?:AccountKey|SharedAccessKey|SharedAccessSignature|SharedSecret)[ \t]*=[ \t]*"
        r"([^;\s\"'<>]+)", "azure-key", 1)),
    ((b"sig=",), True, _simple(r"(?i)(?:[?&]|&amp;)sig=([A-Za-z0-9%/+=_-]{10,})", "azure-key", 1)),
    ((b"Q~",), False, _simple(r"\b[A-Za-z0-9_.~-]{3}[0-9]Q~[A-Za-z0-9_.~-]{31,34}", "azure-key")),
    ((b"sk_", b"rk_", b"glpat-", b"npm_", b"SG.", b"sk-"), False, _simple(
        r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}|\bglpat-[A-Za-z0-9_-]{20,}|"
        r"\bnpm_[A-Za-z0-9]{36}\b|\bSG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}|"
        r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{32,}", "secret")),
    ((b"://",), False, _simple(
        r"(?i)\b[a-z][a-z0-9+.-]*://[^\s:/@?#,\[\]]+:([^\s:/@?#,\[\]]+)@", "password", 1)),
    ((b"",), False, _cards),
    ((b"authori",), True, _simple(
        r"(?i)\b(?:proxy-)?authori[sz]ation[\"']?[ \t]*[:=][ \t]*[\"']?(?:(?:bearer|basic|token|"
        r"digest|negotiate|ntlm|sharedkey|apikey|sso-key)[ \t]+)?([A-Za-z0-9._~+/:=-]+)",
        "bearer-token", 1, _token_like)),
    ((b"bearer",), True, _simple(r"(?i)\bbearer[ \t]+([A-Za-z0-9._~+/-]+=*)", "bearer-token", 1,
                                 _token_like)),
    ((b"basic",), True, _simple(r"(?i)\bbasic[ \t]+([A-Za-z0-9+/]{8,}={0,2})", "bearer-token", 1,
                                _basic_credentials)),
    ((b"mysql", b"sshpass", b"curl"), False, _simple(  # command lines with the password in them
        r"\bmysql(?:dump|admin)?\b[^\n]{0,100}?[ \t]-p([^\s-]\S*)|\bsshpass[ \t]+-p[ \t]*(\S+)|"
        r"\bcurl\b[^\n]{0,200}?[ \t](?:-u|--user)[ \t]*[^\s:]+:([^\s@]+)", "password", -1)),
    (_PW_TRIGGERS, True, _labelled(_PASSWORD, _password)),
    (_PW_TRIGGERS, True, _labelled(_PASSWORD_REV, _password_rev)),
    (_PW_TRIGGERS, True, _labelled(_PASSWORD_FOR, _password_for)),
    ((b"it to", b"mine to", b"this to", b"that to"), True, _it_to),
    ((b"key", b"secret", b"token"), True, _labelled(_SECRET, _secret)),
)

FINDERS = _FINDERS
PLACEHOLDER = _PLACEHOLDER
