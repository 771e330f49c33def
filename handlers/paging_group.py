"""Storm control's grouping key: which reports of one page rule are the same problem.

Two reports join one incident when they match the same page rule and have the same grouping key
(within ``storm.window_minutes`` of the incident's last report). The key names **what is broken and
where**, not how the reporter phrased it:

* **services** named in the text, mapped to one canonical name each (``"e-mail"``, ``"email"``,
  ``"Outlook"``, ``"mailbox"`` -> ``email``; ``"VPN"``, ``"GlobalProtect"`` -> ``vpn``; ...);
* **named sites**: a word before a place word (``"Berlin office"``, ``"Leeds warehouse"`` ->
  ``site:berlin``, ``site:leeds``); generic words (``"the office"``, ``"our site"``) name no site;
* when neither is present: the rule's **matched terms** (``Decision.terms``), normalised and sorted,
  prefixed ``terms:`` (``"we have been hacked"`` -> ``terms:hacked``).

Why not the matched terms alone: with the default policy ``"e-mail is down for everyone"`` and
``"the VPN is down for everyone"`` both match ``many-people-blocked`` on the terms ``down`` and
``everyone``; the service is not a term of that rule, so terms alone would merge two outages.
The key is deliberately conservative: a report that names another (or an extra) service or site gets
its own incident (one page too many) rather than hiding a second outage behind the first.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from routing.model import Decision
from routing.text import term_key, words

#: Canonical service -> phrases (folded words) that name it.
SERVICES: dict[str, tuple[str, ...]] = {
    "email": ("email", "emails", "e mail", "e mails", "mail", "mails", "outlook", "exchange", "mailbox",
              "mailboxes", "inbox", "webmail", "gmail"),
    "vpn": ("vpn", "globalprotect", "global protect", "anyconnect", "forticlient", "remote access"),
    "teams": ("teams", "microsoft teams", "ms teams"),
    "slack": ("slack",),
    "zoom": ("zoom",),
    "sharepoint": ("sharepoint", "intranet"),
    "onedrive": ("onedrive",),
    "internet": ("internet", "wan", "isp", "fibre", "fiber", "internet line", "internet link"),
    "wifi": ("wifi", "wi fi", "wireless"),
    "network": ("network", "lan", "netzwerk", "reseau"),
    "power": ("power", "electricity", "blackout", "generator", "strom", "courant"),
    "phones": ("phone system", "phones", "telephony", "pbx", "phone lines", "telephones"),
    "erp": ("erp", "sap"),
    "crm": ("crm", "salesforce", "dynamics"),
    "sso": ("sso", "single sign on", "okta"),
    "citrix": ("citrix", "vdi", "remote desktop"),
    "file-server": ("file server", "fileserver", "file share", "file shares", "shared drive", "shared drives"),
    "website": ("website", "web site", "web shop", "webshop", "online shop", "online store", "checkout"),
    "database": ("database", "databases", "db", "sql"),
    "payments": ("payments", "payment system", "tills", "pos"),
    "jira": ("jira",),
    "confluence": ("confluence",),
    "servicenow": ("servicenow",),
    "workday": ("workday",),
}
PLACE_WORDS = frozenset({"office", "site", "plant", "factory", "warehouse", "branch", "store", "campus", "depot",
                         "building", "hq", "lab", "clinic", "hospital", "school"})
#: Words before a place word that name no particular site.
_GENERIC = frozenset({"the", "our", "my", "this", "that", "whole", "entire", "main", "head", "home", "an", "a", "at",
                      "in", "every", "all", "each", "one", "other", "same", "your", "their", "his", "her", "new",
                      "old", "big", "small", "local", "remote", "back", "front", "of", "to", "from", "for", "and",
                      "or", "is", "are", "was", "web", "any", "no", "which", "what", "internet", "network"})
MAX_KEY = 255

_PHRASES: dict[tuple[str, ...], str] = {
    tuple(phrase.split()): name for name, phrases in SERVICES.items() for phrase in phrases
}
_LONGEST = max(len(p) for p in _PHRASES)


def services_in(text: str) -> set[str]:
    """Canonical services a text names (folded word phrases, so case, accents and hyphens do not matter)."""
    ws = words(text)
    found: set[str] = set()
    for i in range(len(ws)):
        for n in range(1, _LONGEST + 1):
            name = _PHRASES.get(tuple(ws[i:i + n]))
            if name is not None:
                found.add(name)
    return found


def sites_in(text: str) -> set[str]:
    """Named sites: the word before a place word (``"Berlin office"`` -> ``berlin``), generic words skipped."""
    ws = words(text)
    return {ws[i - 1] for i in range(1, len(ws))
            if ws[i] in PLACE_WORDS and ws[i - 1] not in _GENERIC and ws[i - 1] not in PLACE_WORDS
            and not ws[i - 1].isdigit()}


def _terms(terms: Iterable[str]) -> list[str]:
    out: set[str] = set()
    for term in terms:
        try:
            out.add(term_key(term).strip())
        except ValueError:
            continue
    return sorted(out)


def group_key(decision: Decision, text: str) -> str:
    """The grouping key of a page report (see the module docstring); at most 255 characters."""
    parts = sorted(services_in(text)) + sorted(f"site:{s}" for s in sites_in(text))
    key = "+".join(parts) if parts else "terms:" + "+".join(_terms(decision.terms))
    if len(key) > MAX_KEY:
        key = key[:MAX_KEY - 17] + "~" + hashlib.sha256(key.encode()).hexdigest()[:16]
    return key


_WS = re.compile(r"\s+")


def describe_key(key: str) -> str:
    """A grouping key for people: ``"email+site:berlin"`` -> ``"email, site berlin"``."""
    if key.startswith("terms:"):
        return "reports matching " + _WS.sub(" ", key[6:].replace("+", ", ")) if key[6:] else "any report"
    return key.replace("+", ", ").replace("site:", "site ")
