"""Planted credentials for leak tests: fake, seeded, written the way employees write to a help desk.

:func:`corpus` returns at least 200 :class:`Planted` messages covering every kind
:mod:`routing.secret_finders` detects, each value made up at call time from a seeded
``random.Random`` (the same list on every run, and no credential-shaped literal in this file for a
secret scanner to trip on). Nothing here is a real secret: every value is random.

Each entry has a ``family`` (finer than the redaction kind: ``aws-access-key-id`` and
``aws-secret-key`` are both kind ``aws-key``), the ``kind`` redaction should name, the ``needles``
that must never appear anywhere downstream (the secret itself, or for a key block every line of
its body), and whether the wording is meant to page the on-call (a phished password).

``python -m tests.secret_corpus`` prints a sample of the corpus.
"""

from __future__ import annotations

import base64
import json
import random
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass

SEED = 20240917
ALNUM = string.ascii_letters + string.digits
B64 = ALNUM + "+/"
B64URL = ALNUM + "-_"
UPPER32 = string.ascii_uppercase + "234567"
HEX = "0123456789abcdef"


@dataclass(frozen=True, slots=True)
class Planted:
    """One planted credential inside a message.

    Attributes:
        family: What was planted (``github-pat``, ``password-de``, …).
        kind: The kind :func:`routing.redact.redact` should report.
        secret: The credential as planted.
        message: The whole message an employee would send.
        needles: Strings that must not survive redaction: the secret; each line of a key body; a short
            PIN together with its label (four digits alone also occur by chance).
        pages: True when the wording should page the on-call (credentials typed into a phishing page).
    """

    family: str
    kind: str
    secret: str
    message: str
    needles: tuple[str, ...]
    pages: bool = False


# --- values --------------------------------------------------------------------------------------

_SYLLABLES = ("ka", "lo", "mi", "tur", "zen", "fal", "con", "bri", "sta", "mo", "ve", "rik", "dun", "pe",
              "sol", "nar", "qui", "bex", "tor", "lum", "gra", "phi", "wen", "dro")
_WORDS = ("Falcon", "Tulip", "Sommer", "Winter", "Bluebird", "Kanga", "Orchid", "Pepper", "Rocket", "Marble",
          "Sonne", "Lapin", "Gato", "Maple", "Copper", "Velvet", "Harbor", "Nimbus")
_SYMBOLS = "!#$%*@?+-_"


def _chars(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _password(rng: random.Random) -> str:
    """A password as people choose them: word + digits + symbol, leetspeak, or random."""
    style = rng.randrange(5)
    if style == 0:
        return f"{rng.choice(_WORDS)}{rng.choice(_SYMBOLS)}{rng.randrange(1000, 99999)}"
    if style == 1:
        return f"{rng.choice(_WORDS)}{rng.randrange(2019, 2031)}{rng.choice('!#$%*')}{rng.randrange(10, 99)}"
    if style == 2:
        word = "".join(rng.choice(_SYLLABLES) for _ in range(3))
        return word.capitalize() + str(rng.randrange(100, 9999)) + rng.choice(_SYMBOLS)
    if style == 3:
        return _chars(rng, string.ascii_lowercase, 3) + _chars(rng, string.digits, 2) + rng.choice("#$%@!") \
            + _chars(rng, string.ascii_uppercase, 2) + _chars(rng, ALNUM, 4)
    leet = str.maketrans({"a": "4", "e": "3", "o": "0", "i": "1"})
    return rng.choice(_WORDS).lower().translate(leet) + rng.choice("&$!") + str(rng.randrange(10, 999))


def _pin(rng: random.Random) -> str:
    return str(rng.randrange(10 ** 5, 10 ** 6)) if rng.random() < 0.5 else str(rng.randrange(1000, 9999))


def _aws_id(rng: random.Random) -> str:
    return rng.choice(("AKIA", "AKIA", "ASIA")) + _chars(rng, UPPER32, 16)


def _aws_secret(rng: random.Random) -> str:
    while True:
        value = _chars(rng, B64, 40)
        if any(c.isdigit() for c in value) and value.lower() != value and value.upper() != value:
            return value


def _github_classic(rng: random.Random) -> str:
    return rng.choice(("ghp_", "ghp_", "gho_", "ghu_", "ghs_")) + _chars(rng, ALNUM, 36)


def _github_pat(rng: random.Random) -> str:
    return "github_pat_" + _chars(rng, string.ascii_uppercase + string.digits, 22) + "_" + _chars(rng, ALNUM, 59)


def _slack_token(rng: random.Random) -> str:
    kind = rng.randrange(4)
    digits = string.digits
    if kind == 0:
        return f"xoxb-{_chars(rng, digits, 12)}-{_chars(rng, digits, 13)}-{_chars(rng, ALNUM, 24)}"
    if kind == 1:
        return f"xoxp-{_chars(rng, digits, 12)}-{_chars(rng, digits, 12)}-{_chars(rng, digits, 13)}-{_chars(rng, HEX, 32)}"
    if kind == 2:
        return f"xapp-1-A{_chars(rng, UPPER32, 10)}-{_chars(rng, digits, 13)}-{_chars(rng, HEX, 64)}"
    return f"xoxe.xoxp-1-{_chars(rng, ALNUM, 40)}"


def _slack_webhook(rng: random.Random) -> str:
    team, bot = "T" + _chars(rng, UPPER32, 8), "B" + _chars(rng, UPPER32, 10)
    if rng.random() < 0.8:
        return f"https://hooks.slack.com/services/{team}/{bot}/{_chars(rng, ALNUM, 24)}"
    return f"https://hooks.slack.com/workflows/{team}/A{_chars(rng, UPPER32, 10)}/{_chars(rng, string.digits, 18)}/" \
           f"{_chars(rng, ALNUM, 24)}"


def _azure_account_key(rng: random.Random) -> str:
    return _chars(rng, B64, 86) + "=="


def _azure_sas_key(rng: random.Random) -> str:
    return _chars(rng, B64, 43) + "="


def _azure_client_secret(rng: random.Random) -> str:
    return _chars(rng, ALNUM, 3) + rng.choice(string.digits) + "Q~" + _chars(rng, ALNUM + "_.~-", 34)


def _google_key(rng: random.Random) -> str:
    kind = rng.randrange(4)
    if kind <= 1:
        return "AIza" + _chars(rng, B64URL, 35)
    if kind == 2:
        return "GOCSPX-" + _chars(rng, B64URL, 28)
    return "ya29." + _chars(rng, B64URL, 120)


def _jwt(rng: random.Random) -> str:
    def part(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj, separators=(",", ":")).encode()).rstrip(b"=").decode()

    alg = rng.choice(("HS256", "RS256", "ES256"))
    claims = {"sub": _chars(rng, HEX, 12), "name": rng.choice(_WORDS), "iat": 1_700_000_000 + rng.randrange(10 ** 7),
              "exp": 1_800_000_000 + rng.randrange(10 ** 7), "aud": rng.choice(("api://payroll", "hr-portal", "erp"))}
    sig_len = {"HS256": 43, "RS256": 342, "ES256": 86}[alg]
    return f"{part({'alg': alg, 'typ': 'JWT'})}.{part(claims)}.{_chars(rng, B64URL, sig_len)}"


def _opaque_token(rng: random.Random) -> str:
    while True:
        value = _chars(rng, ALNUM + "-._~", rng.randrange(24, 64))
        if any(c.isdigit() for c in value) and any(c.isalpha() for c in value) and value[-1] not in ".-_~":
            return value


def _basic(rng: random.Random) -> str:
    user = rng.choice(("svc-backup", "jdoe", "printer-admin", "scanner01", "api-user"))
    return base64.b64encode(f"{user}:{_password(rng)}".encode()).decode()


def luhn_complete(body: str) -> str:
    """``body`` with the Luhn check digit that makes it a valid card number."""
    total = 0
    for i, c in enumerate(reversed(body)):
        n = int(c) * (2 if i % 2 == 0 else 1)
        total += n - 9 if n > 9 else n
    return body + str((10 - total % 10) % 10)


def _card(rng: random.Random) -> str:
    issuer = rng.randrange(6)
    if issuer == 0:
        digits = luhn_complete("4" + _chars(rng, string.digits, 14))
    elif issuer == 1:
        digits = luhn_complete(str(rng.randrange(51, 56)) + _chars(rng, string.digits, 13))
    elif issuer == 2:
        digits = luhn_complete(str(rng.randrange(2221, 2721)) + _chars(rng, string.digits, 11))
    elif issuer == 3:
        digits = luhn_complete(rng.choice(("34", "37")) + _chars(rng, string.digits, 12))
    elif issuer == 4:
        digits = luhn_complete("6011" + _chars(rng, string.digits, 11))
    else:
        digits = luhn_complete(str(rng.randrange(3528, 3590)) + _chars(rng, string.digits, 11))
    style = rng.randrange(3)
    if style == 0:
        return digits
    sep = " " if style == 1 else "-"
    if len(digits) == 15:
        return sep.join((digits[:4], digits[4:10], digits[10:]))
    return sep.join(digits[i:i + 4] for i in range(0, len(digits), 4))


def _generic(rng: random.Random) -> str:
    kind = rng.randrange(7)
    if kind == 0:
        return "sk_live_" + _chars(rng, ALNUM, 24)
    if kind == 1:
        return "glpat-" + _chars(rng, B64URL, 20)
    if kind == 2:
        return "npm_" + _chars(rng, ALNUM, 36)
    if kind == 3:
        return "SG." + _chars(rng, B64URL, 22) + "." + _chars(rng, B64URL, 43)
    if kind == 4:
        return "sk-proj-" + _chars(rng, B64URL, 48)
    return _chars(rng, string.ascii_lowercase + string.digits, rng.randrange(20, 40))


def _key_block(rng: random.Random) -> tuple[str, tuple[str, ...]]:
    label = rng.choice(("RSA PRIVATE KEY", "OPENSSH PRIVATE KEY", "EC PRIVATE KEY", "PRIVATE KEY",
                        "ENCRYPTED PRIVATE KEY", "DSA PRIVATE KEY", "PGP PRIVATE KEY BLOCK"))
    lines = tuple(_chars(rng, B64, 64) for _ in range(rng.randrange(3, 9))) + (_chars(rng, B64, 20) + "==",)
    return f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----", lines


def _putty(rng: random.Random) -> tuple[str, tuple[str, ...]]:
    pub = tuple(_chars(rng, B64, 64) for _ in range(2))
    priv = tuple(_chars(rng, B64, 64) for _ in range(3))
    text = ("PuTTY-User-Key-File-3: ssh-rsa\nEncryption: none\nComment: rsa-key-20240101\nPublic-Lines: 2\n"
            + "\n".join(pub) + "\nPrivate-Lines: 3\n" + "\n".join(priv) + f"\nPrivate-MAC: {_chars(rng, HEX, 64)}")
    return text, priv


# --- messages ------------------------------------------------------------------------------------

_OPENERS = ("", "", "Hi IT, ", "hello team,\n", "Hey - ", "Good morning! ", "URGENT: ", "Hallo zusammen, ",
            "Bonjour, ", "hi there\n\n", "quick one: ", "Sorry to bother you again. ", "FYI ")
_CLOSERS = ("", "", " thanks", "\nthanks in advance", " Can you help?", " cheers, Dana", "\n\nRegards,\nMarco",
            " pls advise", " Danke!", " merci", " ty!!", "\n-- \nsent from my phone")

# (family, kind, templates) -- {s} is the secret; {id} an AWS key id planted next to an AWS secret.
_PASSWORD_EN = (
    "my password is {s}", "my new password is {s} but outlook still asks for it every 5 minutes",
    "I reset it to {s} and the VPN still refuses me", "password: {s}", "Password = {s}", "pwd={s}", "pw: {s}",
    "the password for the vpn is {s}", "the wifi password is {s}", "{s} is my new password, still locked out",
    "login: jdoe / password: {s}", "username jdoe password {s}", "creds: jdoe/{s}", 'password "{s}" does not work',
    "my password ({s}) expired yesterday", "Password:\n{s}\n", "can you set my password to {s} please?",
    "please reset my password to {s}", "old pw was {s}, the new one does not work", "PASSWORD={s};",
    '{{"username": "jdoe", "password": "{s}"}}', "DB_PASSWORD={s}", "ssh works with root / password {s} only",
    "SAP password is “{s}”", "the admin password on the printer is {s}.", "mysql -u root -p{s} payroll",
    "curl -u svc-backup:{s} https://files.example.com/upload", "ftp://upload:{s}@ftp.example.com/in",
    "password is `{s}`", "temp password: '{s}'", "the password I use for SAP is {s}", "my passcode is {s}",
    "pass phrase: {s}", "Password - {s}", "password:{s}", "PW {s} (new since Monday)",
    "| user | jdoe |\n| password | {s} |", "new pw = {s}", "password was changed to {s} by the helpdesk",
    "```\nuser: svc-print\npass: {s}\n```",
)
_PASSWORD_INTL = (
    "mein Passwort ist {s}", "Kennwort: {s}", "Mein neues Passwort lautet {s}, geht aber nicht",
    "mon mot de passe est {s}", "mot de passe : {s}", "mi contraseña es {s}", "contraseña: {s}",
    "minha senha: {s}", "senha = {s}", "mijn wachtwoord is {s}", "wachtwoord: {s}", "Passwort: «{s}»",
    "la mia password è {s}", "a minha senha é {s}", "la contraseña de la vpn es {s}",
)
_PASSWORD_PHISHED = (
    "I typed my password {s} into a phishing page, please help",
    "I think I got phished - I entered my password {s} on a fake Microsoft login page",
    "I gave my password {s} to someone who called from 'IT'",
    "clicked the DHL link and typed my password ({s}) into the form. I fell for a phishing mail",
)
_PIN = ("my pin is {s}", "PIN: {s}", "phone unlock pin {s}", "voicemail PIN = {s}")
_AWS_ID = ("access key id {s}", "AWS_ACCESS_KEY_ID={s}", "[default]\naws_access_key_id = {s}",
           "the key {s} shows up in cloudtrail, is that ours?", "aws creds {s} leaked in the repo?")
_AWS_SECRET = ("aws_secret_access_key = {s}", "AWS_SECRET_ACCESS_KEY={s}", "SecretAccessKey: {s}",
               "access key {id} and secret {s}", "{id}:{s}", "[default]\naws_access_key_id = {id}\naws_secret_access_key = {s}",
               "key id {id}\nsecret {s}", "AWS secret key: {s}")
_GITHUB = ("git clone https://{s}@github.com/acme/app.git fails", "export GITHUB_TOKEN={s}", "token {s}",
           "my PAT is {s}, it stopped working", "Authorization: token {s}", "gh auth login --with-token {s}",
           "git remote set-url origin https://x-access-token:{s}@github.com/acme/infra.git")
_SLACK_TOKEN = ("bot token {s}", "SLACK_BOT_TOKEN={s}", "our integration uses {s} and gets invalid_auth",
                "token: {s}", "curl -H 'Authorization: Bearer {s}' https://slack.com/api/auth.test")
_WEBHOOK = ("webhook: {s}", "the alert bot posts to {s} but nothing arrives", "SLACK_WEBHOOK_URL={s}",
            "curl -X POST -d '{{\"text\":\"hi\"}}' {s}")
_AZURE = (
    ("azure-storage", "DefaultEndpointsProtocol=https;AccountName=acmedata;AccountKey={s};EndpointSuffix=core.windows.net",
     _azure_account_key),
    ("azure-storage", "storage account key: {s}", _azure_account_key),
    ("azure-cosmos", "AccountEndpoint=https://acme.documents.azure.com:443/;AccountKey={s};", _azure_account_key),
    ("azure-servicebus", ("Endpoint=sb://acme.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;"
                          "SharedAccessKey={s}"), _azure_sas_key),
    ("azure-sas", ("https://acmedata.blob.core.windows.net/backups/db.bak?sv=2022-11-02&ss=b&srt=o&sp=r"
                   "&se=2025-01-01T00:00:00Z&sig={s}"), lambda r: _chars(r, ALNUM, 40) + "%3D"),
    ("azure-client-secret", "AZURE_CLIENT_SECRET={s}", _azure_client_secret),
    ("azure-client-secret", "app registration for payroll, client secret: {s}", _azure_client_secret),
    ("azure-sql", "Server=tcp:acme.database.windows.net,1433;Initial Catalog=hr;User ID=app;Password={s};",
     lambda r: _password(r).replace(";", "")),
    ("azure-apim", "Ocp-Apim-Subscription-Key: {s}", lambda r: _chars(r, HEX, 32)),
)
_GOOGLE = ("maps key {s}", "https://maps.googleapis.com/maps/api/geocode/json?address=x&key={s}",
           "GOOGLE_API_KEY={s}", '"client_secret": "{s}"', "the key {s} is over quota")
_KEY_BLOCK = ("here is the key:\n{s}\nthanks", "{s}", "ssh stopped working with this key\n\n{s}",
              "the deploy key (below) was rejected\n{s}\n-- \nMarco")
_JWT = ("cookie {s} expired?", "id_token={s}", "Authorization: Bearer {s}", "the token in the browser is {s}",
        "jwt: {s}")
_BEARER = ("Authorization: Bearer {s}", "curl -H 'Authorization: Bearer {s}' https://api.example.com/v1/users",
           "use bearer {s} for the export API", "authorization=Bearer {s}", "header Bearer {s} gives 401")
_BASIC = ("Authorization: Basic {s}", "Proxy-Authorization: Basic {s}", "the scanner sends Basic {s}")
_CARD = ("my card {s} was charged twice", "corporate card number: {s}, exp 09/27", "Kreditkarte {s}",
         "visa {s}", "can you update the card on the Adobe account to {s}", "Card: {s} CVV 123",
         "payment failed with {s} again")
_GENERIC = ("api key: {s}", "API_KEY={s}", "x-api-key: {s}", "client_secret={s}", "the secret is {s}",
            "webhook secret: {s}", "https://api.example.com/export?token={s}&format=csv", "refresh_token: {s}",
            "access_token={s}")


_FAMILIES: tuple[tuple[str, str, Sequence[str], Callable[[random.Random], str], int], ...] = (
    ("password-en", "password", _PASSWORD_EN, _password, 54),
    ("password-intl", "password", _PASSWORD_INTL, _password, 30),
    ("password-phished", "password", _PASSWORD_PHISHED, _password, 8),
    ("pin", "password", _PIN, _pin, 8),
    ("aws-access-key-id", "aws-key", _AWS_ID, _aws_id, 12),
    ("aws-secret-key", "aws-key", _AWS_SECRET, _aws_secret, 14),
    ("github-classic", "github-token", _GITHUB, _github_classic, 12),
    ("github-pat", "github-token", _GITHUB, _github_pat, 8),
    ("slack-token", "slack-token", _SLACK_TOKEN, _slack_token, 14),
    ("slack-webhook", "slack-webhook", _WEBHOOK, _slack_webhook, 10),
    ("google-api-key", "google-api-key", _GOOGLE, _google_key, 12),
    ("jwt", "jwt", _JWT, _jwt, 12),
    ("bearer-token", "bearer-token", _BEARER, _opaque_token, 12),
    ("basic-auth", "bearer-token", _BASIC, _basic, 6),
    ("card-number", "card-number", _CARD, _card, 18),
    ("generic-secret", "secret", _GENERIC, _generic, 18),
)
_PAGES = frozenset({"password-phished"})


def _wrap(rng: random.Random, body: str) -> str:
    return rng.choice(_OPENERS) + body + rng.choice(_CLOSERS)


def corpus(seed: int = SEED) -> list[Planted]:
    """Every planted credential, in a fixed order; the same list for the same seed."""
    rng = random.Random(seed)
    out: list[Planted] = []
    for family, kind, templates, make, count in _FAMILIES:
        for i in range(count):
            secret = make(rng)
            body = templates[i % len(templates)].format(s=secret, id=_aws_id(rng))
            # A PIN of four digits also occurs by chance (ports, ids, timestamps): look for it with its label.
            needle = secret if len(secret) >= 8 else body
            out.append(Planted(family, kind, secret, _wrap(rng, body), (needle,), family in _PAGES))
    for i in range(18):
        family, template, make = _AZURE[i % len(_AZURE)]
        secret = make(rng)
        out.append(Planted(family, "azure-key", secret, _wrap(rng, template.format(s=secret)), (secret,)))
    for i in range(12):
        block, lines = _key_block(rng) if i % 6 else _putty(rng)
        if i % 4 == 3:
            block = block.replace("\n", "\r\n")  # pasted from Windows
        body = _KEY_BLOCK[i % len(_KEY_BLOCK)].format(s=block)
        out.append(Planted("private-key", "private-key", block, _wrap(rng, body), lines))
    return out


def families(items: Sequence[Planted]) -> dict[str, list[Planted]]:
    """The corpus grouped by family, in order of first appearance."""
    grouped: dict[str, list[Planted]] = {}
    for p in items:
        grouped.setdefault(p.family, []).append(p)
    return grouped


if __name__ == "__main__":
    items = corpus()
    print(f"{len(items)} planted credentials in {len(families(items))} families")
    for name, group in families(items).items():
        print(f"\n## {name} ({len(group)}, kind {group[0].kind})")
        for p in group[:3]:
            print("  " + p.message.replace("\n", "\\n")[:160])
