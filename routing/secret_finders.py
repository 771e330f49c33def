"""The detectors behind :func:`routing.redact.redact`: RE2 patterns and labels.

What a value after a label must not be (prose, addresses, dates) is decided in
:mod:`routing.secret_values`; payment card numbers are found by :mod:`routing.secret_cards`, passwords
after their labels by :mod:`routing.secret_passwords`.

Each entry of :data:`FINDERS` is ``(trigger literals, case-insensitive?, finder)``, in priority
order: an earlier detector wins an overlap. A finder yields byte spans with their kind.
"""

from __future__ import annotations

import base64
import bisect
from collections.abc import Callable, Iterator
from typing import Any

import re2

from routing.secret_cards import cards
from routing.secret_passwords import (
    PASSWORD,
    PASSWORD_FOR,
    PASSWORD_REV,
    PW_TRIGGERS,
    it_to,
    password,
    password_for,
    password_rev,
)
from routing.secret_values import (
    QUOTED,
    STOP_WORDS_B,
    WEAK_VALUE,
    Hit,
    is_stop,
    looks_strong,
    near,
    token_like,
    value_span,
)

Finder = Callable[[bytes], Iterator[Hit]]
Match = Any  # re2's match objects are untyped


# --- patterns ---------------------------------------------------------------------------------------
_SECRET_LABEL = (r"\b(?:[a-z0-9]+[_-])*(?:api[_ -]?(?:key|secret|token)|apikey|x-api-key|"
                 r"(?:access|auth|refresh|id|session|bot|oauth|private|bearer)[_ -]?token|"
                 r"personal[_ -]access[_ -]token|(?:secret|encryption|signing|master|private|access|"
                 r"subscription|account|storage)[_ -]?key|client[_ -]?secret|app[_ -]?secret|"
                 r"consumer[_ -]?secret|shared[_ -]?secret|webhook[_ -]?secret|signing[_ -]?secret|"
                 r"ocp-apim-subscription-key|sas[_ -]?token|secret|token)(?:[_-][a-z0-9]+)*")
_SECRET = re2.compile(  # groups: 1 label, then 2 separator and 3 value, or 4 (no separator) value
    rf"(?i)({_SECRET_LABEL})(?:([\"']?[ \t]*(?:=>|[:=]|\b(?:is|was|ist|lautet)\b)[ \t]*"
    rf"(?:[:=-][ \t]*)?)({QUOTED}|[^\s\"'<>,;&]+)|[ \t]+({WEAK_VALUE}))")
# A label and separator ending right where a value starts: a card-shaped value after it is that secret.
_SECRET_LABEL_BEFORE = re2.compile(
    rf"(?i)({_SECRET_LABEL})[\"']?[ \t]*(?:=>|[:=]|\b(?:is|was|ist|lautet)\b)[ \t]*(?:[:=-][ \t]*)?[\"']?\z")
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


def _secret(m: Match, b: bytes) -> Hit | None:
    has_sep = m.start(3) >= 0
    vs, ve = m.span(3 if has_sep else 4)
    if b[vs:ve].lower().rstrip(b".,;:!?") in STOP_WORDS_B:
        return None
    label = b[m.start(1):m.end(1)].decode("ascii", "replace").lower()
    s, e, v, quoted = value_span(b, vs, ve)
    if has_sep:
        ok = looks_strong(v) or token_like(v) or (
            quoted and len(v) >= 8 and not all(is_stop(w) for w in v.split()))
    else:  # "api key abc123..." with no separator: only long token-shaped values
        ok = len(v) >= 16 and looks_strong(v)
    return (s, e, _secret_kind(label, v, b, s, e)) if ok and s < e else None


def _secret_kind(label: str, value: str, b: bytes, s: int, e: int) -> str:
    """Name a labelled secret after its vendor when the label or the value's shape says which."""
    if "aws" in label or "amazon" in label:
        return "aws-key"
    if any(w in label for w in ("azure", "ocp-apim", "storage", "account", "sas")) or (
            _AZURE_KEY_SHAPE.fullmatch(value)) or ("client" in label and any(
                w in near(b, s, e) for w in (b"azure", b"entra", b"tenant", b"microsoft"))):
        return "azure-key"
    for word, kind in (("github", "github-token"), ("slack", "slack-token"),
                       ("google", "google-api-key"), ("gcp", "google-api-key")):
        if word in label:
            return kind
    if _AWS_SECRET_SHAPE.fullmatch(value) and (b"aws" in near(b, s, e) or _AWS_ID_RX.search(
            b, max(0, s - 300), e + 300)):
        return "aws-key"
    return "secret"


def _cards(b: bytes) -> Iterator[Hit]:
    """Card numbers, except that digits given as the value of a secret label ("api_key: 4111...",
    "token=0000...") are that secret: the label says what was leaked, and what to rotate."""
    for s, e, kind in cards(b):
        m = _SECRET_LABEL_BEFORE.search(b[max(0, s - 80):s])
        if m is not None:
            kind = _secret_kind(m.group(1).decode("ascii", "replace").lower(), b[s:e].decode("ascii"), b, s, e)
        yield s, e, kind


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


# (trigger literals, triggers case-insensitive?, finder) in priority order: earlier wins an overlap.
_FINDERS: tuple[tuple[tuple[bytes, ...], bool, Finder], ...] = (
    ((b"private key",), True, _simple(
        r"(?is)-{3,}[ \t]*BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?[ \t]*-{3,}.*?"
        r"(?:-{3,}[ \t]*END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?[ \t]*-{3,}|\z)", "private-key")),
    ((b"putty-user-key",), True, _simple(
        r"(?is)PuTTY-User-Key-File-[0-9]+:.*?(?:Private-MAC:[ \t]*[0-9a-f]+|\z)", "private-key")),
    ((b"hooks.slack.com",), True, _simple(
        r"(?i)(?:https?://)?hooks\.slack\.com/(?:services|workflows|triggers|commands|actions)/[A-Za-z0-9_/-]+",
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
        "bearer-token", 1, token_like)),
    ((b"bearer",), True, _simple(r"(?i)\bbearer[ \t]+([A-Za-z0-9._~+/-]+=*)", "bearer-token", 1,
                                 token_like)),
    ((b"basic",), True, _simple(r"(?i)\bbasic[ \t]+([A-Za-z0-9+/]{8,}={0,2})", "bearer-token", 1,
                                _basic_credentials)),
    ((b"mysql", b"sshpass", b"curl"), False, _simple(  # command lines with the password in them
        r"\bmysql(?:dump|admin)?\b[^\n]{0,100}?[ \t]-p([^\s-]\S*)|\bsshpass[ \t]+-p[ \t]*(\S+)|"
        r"\bcurl\b[^\n]{0,200}?[ \t](?:-u|--user)[ \t]*[^\s:]+:([^\s@]+)", "password", -1)),
    (PW_TRIGGERS, True, _labelled(PASSWORD, password)),
    (PW_TRIGGERS, True, _labelled(PASSWORD_REV, password_rev)),
    (PW_TRIGGERS, True, _labelled(PASSWORD_FOR, password_for)),
    ((b"it to", b"mine to", b"this to", b"that to"), True, it_to),
    ((b"key", b"secret", b"token"), True, _labelled(_SECRET, _secret)),
)

FINDERS = _FINDERS
PLACEHOLDER = _PLACEHOLDER
