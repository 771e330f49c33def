"""What a detected value must not be, and how it is trimmed: the validators of :mod:`routing.secret_finders`.

A label such as "password:" is followed by the secret or by prose ("password is expired", "password:
see the wiki"). These decide which: stop words in the languages the users write, e-mail addresses
and URLs, words, dates and versions are not secrets; letters mixed with digits or symbols are what a
password or a token looks like. Pure functions on strings.
"""

from __future__ import annotations

import re2

Hit = tuple[int, int, str]  # what a finder yields: byte start, byte end, kind

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
stolen taken seen written chosen frozen gotten overwritten rewritten mistaken undone drawn thrown
blown told sold held kept left found heard made put said shut public private somewhere elsewhere
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
STOP_WORDS_B = frozenset(w.encode() for w in _STOP)
_STATE_SUFFIXES = ("ed", "ing", "ly", "tion", "ment", "able", "ible", "ness")
_MASK_CHARS = frozenset("*x•●#.?-_X")
_SYMBOLS = frozenset("!@#$%^&*()-_=+[]{}|;:,.<>/?~`'\"\\")
_OPEN_CLOSE = {'"': '"', "'": "'", "“": "”", "‘": "’", "`": "`", "«": "»", "„": "“", "(": ")",
               "[": "]", "<": ">", "{": "}"}
_EMAIL_OR_URL = re2.compile(r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}|[a-z][a-z0-9+.-]*://\S*")
_NOT_A_SECRET = re2.compile(r"[A-Za-z]+(?:[-'/_][A-Za-z]+)*|[A-Za-z]+_[0-9]+|"
                            r"[0-9]+(?:[./:-][0-9]+)+|v?[0-9]+(?:\.[0-9a-z]+)+")
TEMPLATE = re2.compile(r"(?i)[(<{\[][ \t]*(?:your|new|old|the|user|pass|pwd|login|name|ticket)")
PIN = re2.compile(r"[0-9]{4,12}")
#: A quoted value, in the quotes people type.
QUOTED = r'"[^"\r\n]+"|\'[^\'\r\n]+\'|“[^”\r\n]+”|‘[^’\r\n]+’|`[^`\r\n]+`|«[^»\r\n]+»'
#: After a weak separator ("password X", "password to X") only a token with a digit, a symbol or a
#: lower-to-upper change can be a value: the regex itself skips "password reset", "pw for ...".
WEAK_VALUE = r"(?-i:\S*(?:[0-9@#$%^&*+=~|\\<>]|[a-z]\S*[A-Z])\S*)"


def is_stop(value: str) -> bool:
    low = value.lower().rstrip(".!?")
    if not low or low in _STOP or "[redacted:" in low or set(low) <= _MASK_CHARS:
        return True
    if ("@" in low or "://" in low) and _EMAIL_OR_URL.fullmatch(low):
        return True  # an e-mail address or a URL is not the password itself
    return low.isalpha() and low.isascii() and low.endswith(_STATE_SUFFIXES)


def looks_strong(value: str, *, min_len: int = 6) -> bool:
    """Letters mixed with digits or symbols: how a password or token looks, unlike prose."""
    value = value.lstrip("-([{<\"'").rstrip(".,;:!?)]}>\"'")
    if len(value) < min_len or is_stop(value) or not any(c.isalpha() for c in value):
        return False
    mixed_case = any("a" <= c <= "z" for c in value) and any("A" <= c <= "Z" for c in value)
    if not (any(c.isdigit() or c in _SYMBOLS for c in value) or (mixed_case and len(value) >= 10)):
        return False
    return _NOT_A_SECRET.fullmatch(value) is None  # hyphenated words, SID_34, dates, versions


def token_like(v: str, min_len: int = 8) -> bool:
    """A value after "Bearer" or "api_key:": anything token-shaped but a word, date or version."""
    core = v.strip(".,;:!?()[]{}<>\"'")
    if len(core) < min_len or " " in core or is_stop(core) or _NOT_A_SECRET.fullmatch(core):
        return False
    return not core.isalpha() or (len(core) >= 20 and core.lower() != core)


def value_span(b: bytes, s: int, e: int) -> tuple[int, int, str, bool]:
    """Trim a raw value: unwrap quotes/brackets, drop trailing ``,;:`` and unbalanced closers.

    A backtick is a closer too: chat markdown quotes whole phrases as code (`` `pwd:X` ``), and our own
    replies echo what was typed that way; its closing backtick is not part of the password.
    """
    v = b[s:e].decode("utf-8", "replace")
    if len(v) >= 3 and v[0] in _OPEN_CLOSE:
        close = v.find(_OPEN_CLOSE[v[0]], 1)
        if close > 1 and v[close + 1:].strip(".,;:!?") == "":
            start = s + len(v[0].encode())
            return start, start + len(v[1:close].encode()), v[1:close], True
    while v and (v[-1] in ",;:" or (v[-1] in ")]}>\"'`”’" and v.count(v[-1]) > sum(
            v.count(o) for o, c in _OPEN_CLOSE.items() if c == v[-1] and o != c))):
        e -= len(v[-1].encode())
        v = v[:-1]
    return s, e, v, False


def near(b: bytes, s: int, e: int, width: int = 300) -> bytes:
    """The lower-cased text around a hit (not the hit: a password may contain "azure"), where a vendor
    name would tell its kind."""
    return (b[max(0, s - width):s] + b" " + b[e:e + width]).lower()
