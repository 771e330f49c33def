"""Shared material of the benchmarks: a generated chat corpus, generated rule sets, small stats.

Everything is generated from a fixed seed so a run is repeatable and needs nothing outside the
repository (no ``../shared``). Two generators:

* :func:`chat_messages` - chat-like IT messages (5-60 words, ASCII) as employees type them in a DM:
  greetings, a problem, context, sometimes a host name, an error code, a ticket number or a pasted
  password. Some mention a term of a rule, most do not.
* :func:`generated_routing` - a ``routing:`` mapping with ``n`` rules: ~40 hand-written core rules
  (printers, passwords, VPN, security, outages ...) followed by per-application rule families
  (``atlas payroll login`` / ``... error`` / ``... access`` / catch-all) over 3,000 generated
  application names, ~1% with an RE2 regex, some ``none`` terms, the last rule the default. Smaller
  sets are prefixes of larger ones.

The vocabulary deliberately avoids what the engine and a plain ``re`` loop treat differently:
no accents, no negation-aware rules, no term that an apostrophe could split or join
(``can't`` is one word ``cant`` for the engine, two for ``\\b``).
"""

from __future__ import annotations

import asyncio
import random
import time
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

QUEUES: list[dict[str, str]] = [
    {"name": "msp-service-desk", "route": "msp"},
    {"name": "it-security", "route": "internal"},
    {"name": "it-infrastructure", "route": "internal"},
    {"name": "oncall", "route": "page"},
]
_QUEUE = {"msp": "msp-service-desk", "internal": "it-infrastructure", "page": "oncall"}

# (id, route, any, none, regex): a core policy a small IT team would write by hand.
CORE_RULES: list[tuple[str, str, list[str], list[str], list[str]]] = [
    ("ransomware", "page", ["ransomware", "ransom note", "files are encrypted", "encrypted all"], ["awareness", "training"], []),
    ("data-breach", "page", ["data breach", "data leak", "exfiltrat*", "customer data exposed"], ["sla breach", "memory leak"], []),
    ("site-outage", "page", ["site down", "site is down", "network outage", "power outage", "internet is down"],
     ["planned outage", "restored"], []),
    ("account-compromise", "page", ["hacked", "account compromised", "unauthorized access"], ["hackathon", "training"], []),
    ("phishing-report", "internal", ["phishing", "suspicious email", "suspicious mail", "spoofed"], ["phishing test"], []),
    ("malware", "internal", ["malware", "virus", "trojan", "antivirus alert"], ["virus scan completed"], []),
    ("admin-rights", "internal", ["admin rights", "local admin", "administrator rights", "elevated access"], [], []),
    ("firewall", "internal", ["firewall rule", "firewall change", "open port", "whitelist"], [], []),
    ("server-fault", "internal", ["server down", "server is down", "database error", "sql server", "disk full"], [], []),
    ("backup", "internal", ["backup failed", "backup job", "restore from backup"], [], []),
    ("host-alert", "internal", [], [], [r"\b(ber|muc|ham|lon|nyc)-(fs|sql|app|dc)\d{2}\b"]),
    ("ticket-update", "msp", ["ticket update", "any update on my ticket", "status of my ticket"], [],
     [r"\b(inc|req|ritm)\d{7}\b"]),
    ("password-reset", "msp", ["password reset", "reset my password", "forgot my password", "password expired"], [], []),
    ("locked-out", "msp", ["locked out", "account locked", "account is locked"], [], []),
    ("mfa", "msp", ["mfa", "authenticator", "two factor", "2fa", "new phone"], [], []),
    ("printer", "msp", ["printer", "paper jam", "toner", "print queue", "printing"], ["3d printer"], []),
    ("scanner", "msp", ["scanner", "scan to email", "scan to folder"], [], []),
    ("vpn", "msp", ["vpn", "globalprotect", "anyconnect", "remote access"], [], []),
    ("wifi", "msp", ["wifi", "wi fi", "wireless", "guest network"], ["wifi outage"], []),
    ("outlook", "msp", ["outlook", "mailbox", "shared mailbox", "out of office", "calendar invite"], [], []),
    ("teams", "msp", ["teams meeting", "teams call", "ms teams", "microsoft teams"], [], []),
    ("office", "msp", ["excel", "powerpoint", "word document", "onedrive", "sharepoint"], [], []),
    ("laptop", "msp", ["laptop", "notebook", "battery", "charger", "docking station", "dock"], [], []),
    ("screen", "msp", ["monitor", "second screen", "external display", "flickering"], [], []),
    ("peripherals", "msp", ["keyboard", "mouse", "headset", "webcam", "microphone"], [], []),
    ("mobile", "msp", ["iphone", "android", "mobile phone", "company phone", "sim card"], [], []),
    ("software", "msp", ["install", "installation", "software center", "license key", "licence"], ["uninstall"], []),
    ("access-request", "msp", ["access to the shared drive", "network drive", "shared folder", "permissions"], [], []),
    ("new-starter", "msp", ["new starter", "new joiner", "onboarding", "leaver", "offboarding"], [], []),
    ("browser", "msp", ["chrome", "firefox", "edge browser", "cookies"], [], []),
    ("citrix", "msp", ["citrix", "remote desktop", "rdp", "virtual desktop"], [], []),
    ("meeting-room", "msp", ["meeting room", "conference room", "projector", "room display"], [], []),
    ("how-to", "msp", ["how do i", "how to", "where can i find"], [], []),
    ("error-code", "msp", [], [], [r"\b0x8007[0-9a-f]{4}\b"]),
]

APP_PREFIXES = (
    "atlas nova helix orbit zenith apex vega polaris titan quantum summit beacon cobalt falcon harbor horizon iris "
    "juniper keystone lumen meridian nimbus onyx pioneer quasar raven sierra sterling tempo unity vertex willow "
    "xenon yarrow zephyr aurora boreal cascade ember fjord granite halcyon indigo jasper kestrel lotus magnolia "
    "neptune obsidian prism radiant sapphire tundra umber vantage wren amber basalt cedar"
).split()
APP_DOMAINS = (
    "payroll crm portal billing invoicing wiki intranet warehouse scheduler timesheet expenses procurement "
    "inventory analytics reporting dashboard booking recruiting learning contracts treasury logistics shipping "
    "pricing quoting forecasting planning ledger archive signing kiosk travel fleet maintenance quality "
    "compliance audit claims underwriting studio gateway sync connect hub vault tracker desk manager console"
).split()
SITES = "ber muc ham fra lon par mad rom nyc sfo tor syd sin tok dub ams waw vie zrh osl".split()
NONE_POOL = ["training", "webinar", "newsletter", "test message", "demo", "sandbox", "planned maintenance", "survey"]

_rng_apps = random.Random(7)
APPS: list[str] = [f"{p} {d}" for p in APP_PREFIXES for d in APP_DOMAINS]
_rng_apps.shuffle(APPS)


def _rule(rid: str, route: str, any_: Sequence[str] = (), none: Sequence[str] = (), regex: Sequence[str] = ()) -> dict[str, Any]:
    when: dict[str, list[str]] = {}
    if any_:
        when["any"] = list(any_)
    if none:
        when["none"] = list(none)
    if regex:
        when["regex"] = list(regex)
    severity = {"page": "critical", "internal": "high", "msp": "normal"}[route]
    queue = "it-security" if route == "internal" and rid in {"phishing-report", "malware", "admin-rights", "firewall"} else _QUEUE[route]
    return {"id": rid, "route": route, "severity": severity, "queue": queue, "when": when}


def _app_rules(rng: random.Random) -> list[dict[str, Any]]:
    """Rule families per application: specific rules first, then the application's catch-all."""
    out: list[dict[str, Any]] = []
    for i, app in enumerate(APPS):
        slug = app.replace(" ", "-")
        route = "internal" if i % 5 == 0 else "msp"
        fam = [
            (f"{slug}-login", [f"{app} login", f"{app} sign in", f"{app} password", f"{app} sso"]),
            (f"{slug}-error", [f"{app} error", f"{app} crash*", f"{app} is slow", f"{app} down", f"{app} not loading"]),
            (f"{slug}-access", [f"{app} access", f"access to {app}", f"{app} account", f"{app} permission*"]),
            (f"{slug}", [app, f"{app} app", f"{app} tool"]),
        ]
        for j, (rid, terms) in enumerate(fam):
            k = rng.randint(2, len(terms))
            none = rng.sample(NONE_POOL, rng.choice((0, 0, 1, 2)))
            regex: list[str] = []
            if rng.random() < 0.01:  # ~1%: a host-name or error-code regex, with or without terms
                site = f"{rng.choice(SITES)}{rng.randint(1, 9)}"
                regex = [rf"\b{site}-(fs|sql|app|web)\d{{2}}\b" if rng.random() < 0.5
                         else rf"\berror (code )?{rng.randint(1000, 9999)}\b"]
                if rng.random() < 0.5:
                    terms, k = [], 0
            r = "page" if j == 1 and i % 97 == 0 else route
            out.append(_rule(rid, r, terms[:k], none, regex))
    return out


def generated_routing(n_rules: int, *, seed: int = 1) -> dict[str, Any]:
    """A valid ``routing:`` mapping with exactly ``n_rules`` rules, the last one the default."""
    rng = random.Random(seed)
    rules = [_rule(rid, route, a, n, x) for rid, route, a, n, x in CORE_RULES] + _app_rules(rng)
    if n_rules - 1 > len(rules):
        raise ValueError(f"at most {len(rules) + 1} rules can be generated")
    default = {"id": "default", "route": "msp", "severity": "normal", "queue": "msp-service-desk"}
    return {"queues": QUEUES, "rules": rules[: n_rules - 1] + [default]}


# --- the chat corpus ---------------------------------------------------------------------------

GREETINGS = ["hi", "hey", "hello", "hi team", "hey IT", "good morning", "morning all", "hello there",
             "quick question", "sorry to bother you", "hi, hope you are well", "urgent", "help please", ""]
THINGS = ["laptop", "printer", "monitor", "headset", "keyboard", "webcam", "docking station", "phone", "mouse",
          "second screen", "outlook", "vpn", "wifi", "calendar", "computer", "pc", "desk phone", "tablet",
          "machine", "setup", "email", "screen", "badge", "account", "mailbox", "excel"]
SYMPTOMS = ["keeps crashing", "is really slow today", "won't turn on", "shows a blank screen", "keeps disconnecting",
            "is making a weird noise", "stopped working", "freezes every few minutes", "asks me to sign in again and again",
            "is not doing anything", "shows an error when I open it", "is stuck on the loading screen",
            "has been acting weird", "does not show up", "is super laggy", "randomly restarts"]
APP_SYMPTOMS = ["keeps logging me out", "login fails", "error when I submit", "is slow", "is down for me",
                "shows a white page", "will not let me approve anything", "lost my draft", "crashed twice",
                "says my session expired", "access denied on the reports page", "not loading"]
OTHER_PROBLEMS = [
    "is there an outage or is it just me", "I need someone to look at something on my desk",
    "the thing in meeting room {room} is not working again", "can somebody call me back when you have a minute",
    "my stuff from the old office never arrived", "who do I talk to about getting a bigger desk",
    "the coffee machine on floor {room} is broken, not sure if that is you", "I got a strange message on my screen",
    "everything is really slow for me since lunch", "my files are gone from the desktop",
    "I cannot find the form for ordering business cards", "need help with a spreadsheet formula",
    "my manager said I should ask you about the new tool", "the link in the onboarding guide is broken",
    "I think I deleted a folder by accident", "nothing happens when I click the button",
]
CONTEXT = ["since this morning", "after the update last night", "when I work from home", "on the third floor",
           "every time I join a call", "for the last two days", "since I came back from holiday", "in the Berlin office",
           "only on Mondays it seems", "after I changed my desk", "when I connect from the hotel", "", "", ""]
EXTRA = [
    "I already restarted it twice and cleared the cache.", "My colleague next to me has the same model and it works fine.",
    "I tried the steps from the wiki but they did not help.", "It worked fine yesterday evening.",
    "I have a customer call at 2 so it is a bit urgent.", "Not sure if this is the right channel for this.",
    "Can you remote in and have a look?", "I can send a screenshot if that helps.",
    "The error goes away for a few minutes and then comes back.", "My team lead is in copy, she has the same issue.",
    "I am working from the Hamburg office this week.", "Happy to come by the IT desk if that is easier.",
    "It happened right after lunch.", "I rebooted and logged in again, same thing.",
]
CLOSERS = ["thanks", "thanks in advance", "can someone help?", "any idea?", "please advise", "cheers", "ty",
           "thank you!", "appreciate it", "", ""]
TOKENS = ["{site}-{kind}{n:02d}", "0x8007{hex}", "INC{num:07d}", "REQ{num:07d}", "error code {code}", "10.{a}.{b}.{c}"]
SECRETS = ["my password is Summer2024!x if you need it", "password: Tr0ub4dor&3xyz", "the key is AKIAIOSFODNN7EXAMPLE"]


def _token(rng: random.Random) -> str:
    return rng.choice(TOKENS).format(
        site=rng.choice(SITES) + rng.choice(("", "", str(rng.randint(1, 9)))), kind=rng.choice(("fs", "sql", "app", "dc", "web")),
        n=rng.randint(1, 12), hex=f"{rng.randint(0, 0xFFFF):04x}", num=rng.randint(1, 9_999_999),
        code=rng.randint(1000, 9999), a=rng.randint(0, 255), b=rng.randint(0, 255), c=rng.randint(1, 254),
    )


def _problem(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.22:
        return f"my {rng.choice(THINGS)} {rng.choice(SYMPTOMS)}"
    if roll < 0.55:
        app = rng.choice(APPS[:900]) if rng.random() < 0.6 else rng.choice(APPS)
        return rng.choice([
            f"{app} {rng.choice(APP_SYMPTOMS)}", f"is {app} down for anyone else", f"I need access to {app} for my team",
            f"can't get into {app} since this morning", f"the {app} thing {rng.choice(APP_SYMPTOMS)}",
        ])
    return rng.choice(OTHER_PROBLEMS).format(room=rng.randint(1, 9))


def chat_message(rng: random.Random) -> str:
    """One chat-like IT message (not length-checked)."""
    parts = [rng.choice(GREETINGS), _problem(rng), rng.choice(CONTEXT)]
    if rng.random() < 0.15:
        parts.append(f"({_token(rng)})")
    sentence = " ".join(p for p in parts if p).strip()
    sentence = sentence[0].upper() + sentence[1:] + rng.choice((".", "", "!", "?", " :("))
    extra = rng.sample(EXTRA, rng.choice((0, 0, 1, 1, 2, 3, 4, 5)))
    if rng.random() < 0.02:
        extra.append(rng.choice(SECRETS) + ".")
    closer = rng.choice(CLOSERS)
    return " ".join([sentence, *extra, closer]).strip()


def chat_messages(n: int, *, seed: int = 42, min_words: int = 5, max_words: int = 60) -> list[str]:
    """``n`` distinct messages of ``min_words``..``max_words`` words, always the same for a seed."""
    rng = random.Random(seed)
    out: dict[str, None] = {}
    while len(out) < n:
        text = chat_message(rng)
        if min_words <= len(text.split()) <= max_words:
            out.setdefault(text, None)
    return list(out)


# --- statistics --------------------------------------------------------------------------------

def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of already sorted values, nearest-rank."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), round(q / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


async def blast(session: Any, url: str, items: list[tuple[bytes, dict[str, str]]], concurrency: int
                ) -> tuple[list[float], list[int]]:
    """Send ``items`` with ``concurrency`` workers (closed loop); latencies (s) and statuses."""
    import aiohttp

    latency = [0.0] * len(items)
    status = [0] * len(items)
    todo = iter(range(len(items)))

    async def worker() -> None:
        for i in todo:
            body, headers = items[i]
            started = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=headers) as resp:
                    await resp.read()
                    status[i] = resp.status
            except aiohttp.ClientError:
                status[i] = -1
            latency[i] = time.perf_counter() - started

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latency, status


def summarise_log(path: Path) -> str:
    """Line count of the server log, and its WARNING/ERROR messages grouped (first 80 characters)."""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    bad: dict[str, int] = {}
    for line in lines:
        parts = line.split(" ", 3)
        if len(parts) == 4 and parts[2] in ("WARNING", "ERROR", "CRITICAL"):
            key = f"{parts[2]} {parts[3][:80]}"
            bad[key] = bad.get(key, 0) + 1
    out = f"server log (INFO, to a file): {len(lines)} lines, {sum(bad.values())} warnings/errors"
    for key, n in sorted(bad.items(), key=lambda kv: -kv[1])[:5]:
        out += f"\n  {n:>5} x {key}"
    return out


async def warm_then_measure(conn: Any, url: str, warm: list[tuple[bytes, dict[str, str]]],
                            measured: list[tuple[bytes, dict[str, str]]], concurrency: int) -> None:
    """The load generator's protocol with the parent: warm up, report, wait for "go", measure, report."""
    import aiohttp

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        _, warm_status = await blast(session, url, warm, concurrency)
        conn.send(("warm", warm_status.count(200)))
        conn.recv()  # go
        cpu0, t0 = time.process_time(), time.perf_counter()
        latency, status = await blast(session, url, measured, concurrency)
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    conn.send(("done", {"latency": latency, "status": status, "elapsed": elapsed, "cpu": cpu,
                        "warm_ok": warm_status.count(200)}))


async def recv_from(conn: Any, proc: Any, timeout: float = 300.0) -> Any:
    """The next message from child process ``proc`` on ``conn``; raise if it died or stays silent for
    ``timeout`` s (a benchmark must not hang on a child that crashed)."""
    def wait() -> Any:
        deadline = time.monotonic() + timeout
        while not conn.poll(0.2):
            if not proc.is_alive():
                raise RuntimeError(f"{proc.name} exited with code {proc.exitcode} (see its traceback above)")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{proc.name} said nothing for {timeout:g} s")
        return conn.recv()

    return await asyncio.to_thread(wait)
