"""The default routing policy on chat-style messages, written for these tests (not taken from any data set).

What is pinned here is the promise made to an IT manager: active security incidents and outages of
shared things page; routine one-person support goes to the MSP; security and server matters that are
not emergencies go in-house; and the false friends ("how do I report a phishing email", "not urgent
but...", "antivirus licence renewal", negations) never page.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from routing.engine import Classifier, compile_ruleset
from routing.model import Decision, Message
from routing.rules import ruleset_from_dict

POLICY = Path(__file__).resolve().parents[1] / "app.yaml"


@pytest.fixture(scope="module")
def policy() -> dict[str, Any]:
    loaded = yaml.safe_load(POLICY.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict) and "routing" in loaded, "app.yaml carries the `routing:` section"
    routing: dict[str, Any] = loaded["routing"]
    return routing


@pytest.fixture(scope="module")
def classifier(policy: dict[str, Any]) -> Classifier:
    return compile_ruleset(ruleset_from_dict(policy, version=1))


def decide(classifier: Classifier, text: str) -> Decision:
    return classifier.classify(Message(text=text, platform="slack"))


# -- page: active security incidents ---------------------------------------------------------------

PAGE_SECURITY = [
    "ransomware note on my screen, files renamed .locked",
    "All my files are encrypted and there is a note asking for bitcoin",
    "I think we have ransomware, the shared drive files have weird extensions",
    "files on the S: drive are being renamed to .encrypted one after the other",
    "we got hacked",
    "I think my account was hacked, it is sending emails i didn't send",
    "my account has been compromised",
    "someone logged into my account from another country last night",
    "i clicked a link and entered my password",
    "I think I clicked a phishing link and typed my password",
    "opened the docusign email and put in my username and password, now im worried",
    "I entered my credentials on a fake Microsoft login page",
    "a guy called saying he was from IT and I gave him my password",
    "I approved an MFA prompt I didn't start",
    "keep getting MFA prompts I didn't request",
    "virus is spreading across the network, several PCs infected",
    "my mouse is moving by itself and programs open on their own",
    "antivirus says there is a trojan calling home to some server",
    "our website has been hacked and defaced",
    "we are under a DDoS attack, the shop is unreachable",
    "possible data breach: the customer list was leaked online",
    "someone exfiltrated the HR database",
    "the salary spreadsheet was shared with everyone in the company by mistake",
    "confidential board minutes are on a public link",
    "URGENT!!! all pcs in accounting show a red screen saying files encrypted",
    "got a popup saying my files are locked and I need to pay",
    "pretty sure we've got a virus going round, 5 laptops acting weird",
    "my boss's email got hacked and is spamming clients",
    "someone is using my email to send invoices to customers",
    "i think someone has my password, there are logins from brazil",
    "the CEO's account is sending weird links to everybody",
    "hey it, i put my login into that microsoft link from the email this morning, was that bad?",
    "think i got phished - typed my password into the link",
    "I fell for a phishing email and entered my bank details and work login",
    "customer data is publicly accessible on our website",
    "someone downloaded the whole customer database, we see it on the dark web",
    "there's a message on every screen in finance demanding payment to get our data back",
    "I opened an attachment and now my antivirus is going crazy and the other pcs too",
    "hi, I typed my credentials into a 'shared document' page, it then went blank",
    "my account posted stuff on teams that I didn't write",
    "I think someone accessed my mailbox, rules were created to forward everything",
    "we accidentally emailed the full customer list with card numbers to a supplier",
    "omg every file on the server has a .crypt extension now",
    "antivirus is popping up on all the machines in the lab, something is spreading",
    "I think I just gave my password to a phishing site",
    "clicked the fake invoice link and logged in with my work account",
    "my email is sending spam to all my contacts",
    "there are mailbox rules I never set up, forwarding to a gmail address",
    "someone changed my bank details in the HR portal, it wasn't me",
    "our customer portal is leaking other customers' orders",
    "the portal shows other customers' invoices when I log in",
    "weird readme files in every folder saying pay or lose your data",
    "our NAS got encrypted overnight",
    "someone remoted into my pc and moved money",
    "I gave the caller the code from my authenticator app",
    "scanned a QR code on a flyer and logged into 'office365' with my work password",
    "my colleague's account is messaging everyone asking for gift cards",
    "we found an unknown admin account on the domain controller",
    "the HR share is open to the internet",
    "laptop with unencrypted patient data was stolen from my car",
    "hackers are in our network, files being deleted",
    "all the docs on the team drive now end in .lockbit",
    "a popup says our network is encrypted and we have 72 hours",
    "I logged into a fake DHL page with my company email and password",
    "helpdesk? I think I was scammed, I typed my pw on a link from 'IT'",
    "my manager's mailbox is sending phishing to the whole company",
    "strange admin logins at 3am on the file server, not us",
    "our database was dumped and posted on a forum",
    "payroll file went to the wrong distribution list, everyone can see salaries",
    "lots of laptops infected after the usb incident",
    "ransom note on the file server",
    "our shared drive files all got renamed to .wncry",
    "I typed my password into a fake teams login",
    "someone is logged into my account right now, I can see the session",
]

# -- page: outages of shared services, sites, networks, power --------------------------------------

PAGE_OUTAGE = [
    "email down for everyone??",
    "whole office has no internet",
    "power outage at the Leeds office",
    "the building lost power, servers on UPS",
    "the entire site is down",
    "network is down at the warehouse",
    "internet is down in the office",
    "nobody can log in to the ERP",
    "no one here can connect to wifi",
    "erp is down",
    "SAP is down, cannot post anything",
    "our website is down",
    "CRM outage, sales can't work",
    "sharepoint is down, the whole team can't work",
    "teams and outlook not working for everyone in sales",
    "the core switch in the server room is down",
    "both switches on the 2nd floor went down",
    "the firewall is down",
    "phones are down across the building",
    "network outage on floor 2, all users affected",
    "vpn is down for all remote users",
    "production line is down, the MES server is offline",
    "the production database is unreachable",
    "shop floor system down, we can't run production",
    "orders cannot be processed since 9am",
    "the file server is down, nobody can open their documents",
    "we have an outage, nothing works",
    "intranet not working for the Munich office",
    "multiple sites cannot reach the ERP",
    "entire 3rd floor has no network",
    "the phone system is down",
    "internet down",
    "No internet in the whole building",
    "wifi dead everywhere in the building",
    "the internet's gone at the shop",
    "we're completely offline at the Bristol site",
    "server room lost power",
    "power cut in the data center",
    "all the phones are dead in the call centre",
    "payroll system is down and it's payday",
    "is exchange down? nobody is getting emails",
    "everybody in accounts is locked out of sage",
    "everyone's getting kicked out of the vpn",
    "file shares unavailable for the whole company",
    "warehouse scanners all offline, shipping stopped",
    "sharepoint outage",
    "site down",
    "the whole network just died",
    "no network on the entire second floor",
    "building has no electricity",
    "nobody in the london office can get online",
    "sap down for the whole plant",
    "citrix is down for everyone",
    "our online store is offline, customers can't check out",
    "shared drives disappeared for the whole team",
    "all tills in store 12 are down",
    "teams down?? nobody can join meetings",
    "the vpn gateway is down, no remote staff can work",
    "the office lost internet about 10 mins ago, all of us are offline",
    "network down in the whole warehouse",
    "power went out in building B",
    "erp outage since 8am",
    "the website is returning 500 for everyone",
    "email server down",
    "phones not working in the whole call centre",
    "none of the tills can take payments",
    "all servers in the data center are unreachable",
    "everyone at the plant is locked out of windows",
    "the core router died",
    "crm has been unavailable all morning, sales team can't work",
    "everything is down",
    "LAN's gone in the whole office",
    "the Manchester site is unreachable",
    "outage: payroll can't run, system won't start",
    "ERP unreachable from all sites",
    "Exchange outage, no mail in or out",
    "the entire company can't access sharepoint",
    "all printers and pcs in the factory lost network",
    "our phone lines are dead, customers can't call us",
    "card terminals in all shops are offline",
    "salesforce login page is broken for everyone",
    "the data centre is overheating, servers shutting down",
    "the website's down and we're losing orders",
    "vpn concentrator crashed, remote workers locked out",
    "3 switches in building A are down",
    "network outage in the Paris office",
    "the whole office just lost power",
    "no wifi or wired network in building 2",
    "online shop down since 7am",
    "nobody can sign into microsoft 365",
    "every user gets 'server not found' for the erp",
    "all phones in support are down, queue is piling up",
    "sharepoint is unavailable for all staff",
    "the main firewall has failed",
    "internet connection down at the Lyon branch",
    "the entire london office lost internet",
    "outage affecting all branches: card payments failing",
    "no one can access email",
    "the erp is down for the whole company",
    "the main internet link at HQ is down",
    "power failure at the warehouse",
    "the warehouse system is down, trucks can't be loaded",
]

# -- msp: routine end-user support -----------------------------------------------------------------

MSP = [
    "outlook keeps crashing",
    "printer jammed on floor 3",
    "how do I reset my password",
    "need excel installed",
    "my laptop won't turn on",
    "can you unlock my account, I typed the wrong password too many times",
    "forgot my password and now im locked out",
    "new starter on monday needs a laptop and an email account",
    "my second monitor keeps flickering",
    "can't connect to wifi in meeting room 2",
    "vpn keeps disconnecting when I work from home",
    "please add me to the marketing distribution list",
    "any update on my ticket?",
    "how do i set up an out of office reply in outlook",
    "teams camera not working",
    "need access to the finance shared drive",
    "my mailbox is full",
    "adobe reader licence expired",
    "the printer on the 2nd floor is down",
    "outlook down",
    "my password expired",
    "my internet is down at home",
    "how do I encrypt an email?",
    "need to send files encrypted to a customer, how?",
    "can everyone in my team get access to the new sharepoint site?",
    "docking station not charging my laptop",
    "please install the new version of zoom",
    "antivirus licence renewal",
    "my vpn is down",
    "outlook is down for me",
    "my laptop is dead",
    "wifi on my phone doesnt work",
    "hi, can u install visio for me",
    "the projector in room 4 won't turn on",
    "whats the status of my request from last week",
    "the printer is down again",
    "not urgent: teams keeps logging me out",
    "is the erp down for maintenance this weekend? just checking",
    "nothing is down, I just need a new headset",
    "my laptop battery died",
    "outlook died on me again",
    "my mapped drives disappeared after the update",
    "can you send me the link to the password reset page",
    "I typed my password in outlook and it keeps asking again",
    "I put my username in the form but the submit button does nothing",
    "can all users get the updated email signature",
    "please send the customer list to marketing",
    "the till printer is out of paper",
    "the whole team needs new monitors",
    "citrix is down for me only",
    "wifi is down in my flat",
    "the phone on my desk is dead",
    "wifi keeps dropping for me in the kitchen",
    "reset mfa for my new phone",
    "printer on 4th floor out of toner",
    "my account is locked after holiday",
    "can't log in to the HR portal",
    "outlook says my mailbox is almost full",
    "any news on ticket 4471?",
    "laptop is making a clicking noise",
    "nobody replied about my laptop",
    "my router at home died",
    "can someone help me set up my new iphone",
    "my onedrive says it's full",
    "how do i map the s drive",
    "laptop overheats and shuts down",
    "I am locked out of my laptop",
    "my desk phone shows no service",
    "teams is down on my laptop",
    "my VPN says certificate error",
    "outlook shows 'disconnected'",
    "cannot print double sided",
    "lost my laptop charger",
]

# -- internal: security (not an emergency) and server stability ------------------------------------

INTERNAL = [
    "got a suspicious email, didn't click",
    "how do I report a phishing email",
    "is this email legit? it asks me to verify my account",
    "I received a phishing email but did not click anything or enter my password",
    "antivirus quarantined a file on my laptop",
    "there is a virus on my laptop, the scan found it",
    "need admin rights to install software",
    "please give me local admin on my pc",
    "firewall port change request for the new supplier app",
    "please whitelist this IP on the firewall",
    "server disk 90% full",
    "database server cpu at 100% since this morning",
    "the nightly backup job failed",
    "backups failed again on the file server",
    "please patch the web servers for the new openssl vulnerability",
    "the erp is slow for everyone in the plant",
    "the print server needs a restart",
    "the app server is not responding, can someone restart it",
    "invoice postings are failing in the erp since the update",
    "circuit outage at the Paris site, site is up on the secondary line",
    "the erp test system is down",
    "a user has the wrong security role and should not have access to payroll",
    "forwarding a phishing email for you to look at",
    "got a weird email from 'the ceo' asking to buy gift cards, ignored it",
    "I didn't click the link, just reporting it",
    "suspicious login attempt notification on my account, it was blocked",
    "defender found malware on my laptop and removed it",
    "the antivirus found a trojan on my pc and quarantined it",
    "need sudo on the linux box",
    "raid degraded on storage array",
    "the company website certificate expired",
    "ERP is really slow for the whole warehouse",
    "the site is not down, it's just slow for some of us",
    "no one has reported problems but monitoring shows the db is at 95% cpu",
    "ransomware awareness webinar next week, please register",
    "someone phoned asking for my login, I hung up",
    "email claiming to be HR with a link, didn't open it",
    "need an exception in the web filter for a supplier site",
    "the ssl cert on the intranet expires friday",
    "disk on sql01 is at 92%",
    "vm keeps rebooting itself",
    "what's our policy on ransomware?",
    "staging website is down",
    "monitoring alert: backup job failed on fs02",
    "I received an email asking me to confirm my password, I ignored it",
    "reporting a suspicious sms",
    "need a firewall rule for the new cctv system",
    "the file server is at 95% disk",
    "the overnight etl job failed",
    "please patch the vmware hosts",
    "erp is sluggish for the whole finance team",
    "service account password expiring on the build server",
    "not urgent: ups battery in comms room needs replacing",
    "is this link safe? got it in an email",
    "someone left a usb stick in the lobby, should I plug it in?",
    "a supplier emailed asking us to change their bank details, seems fishy",
    "we need to rotate the api keys that were in the old repo",
    "request to open ssh to the jump host",
    "the db backup took 9 hours last night",
    "memory on app01 at 98%",
    "the nightly sync between crm and erp failed",
    "antivirus alert on the file server, quarantined",
    "erp is slow in all plants today",
    "the site server is offline since last night",
    "is this email from HR real? it asks for my login",
    "please block this sender, it's spam",
    "need domain admin for the migration project",
    "the log partition on web02 is full",
    "replication between the two sql servers is broken",
    "critical patches for the esxi hosts",
    "erp slowness reported by several users in sales",
]

# -- false friends and negations: never page -------------------------------------------------------

NEVER_PAGE = [
    ("not urgent but vpn is slow", {"msp", "internal"}),
    ("how do I report a phishing email", {"internal", "msp"}),
    ("got a suspicious email, didn't click", {"internal", "msp"}),
    ("antivirus licence renewal", {"internal", "msp"}),
    ("server disk 90% full", {"internal"}),
    ("need admin rights", {"internal", "msp"}),
    ("firewall port change request", {"internal"}),
    ("No ransomware was found on the laptop after the scan", {"internal", "msp"}),
    ("I did not enter my password on that site, I closed it straight away", {"internal", "msp"}),
    ("not hacked, I just forgot my password", {"internal", "msp"}),
    ("our wifi is not down, just slow", {"internal", "msp"}),
    ("cyber security awareness training: the ransomware module", {"internal", "msp"}),
    ("what should I do if I ever get ransomware?", {"internal", "msp"}),
    ("sla breach on my ticket, nobody answered for 3 days", {"msp", "internal"}),
    ("scheduled power outage on saturday 8am-2pm, servers will be shut down", {"internal", "msp"}),
    ("reminder: the network will be down on sunday for planned maintenance", {"internal", "msp"}),
    ("was there an outage last night? my vpn dropped", {"msp", "internal"}),
    ("the site is up again, power restored", {"internal", "msp"}),
    ("erp is slow for all users today", {"internal"}),
    ("everyone says hi from the new office", {"msp"}),
    ("nobody can help me with my excel macro", {"msp"}),
    ("no one can hear me on teams calls", {"msp"}),
    ("I entered my password wrong too many times and now I'm locked out", {"msp"}),
    ("i clicked the password reset link but it expired", {"msp"}),
    ("memory leak in the reporting app, server needs a restart", {"internal"}),
    ("please shut down your pcs before the weekend, everyone", {"msp", "internal"}),
    ("my email is down", {"msp"}),
    ("is there an outage? outlook is not loading for me", {"msp", "internal"}),
    ("can we schedule a power outage test for the ups next month", {"msp", "internal"}),
    ("power outage drill on friday, please shut down your pcs", {"msp", "internal"}),
    ("entered my password on the vpn page and it says invalid", {"msp", "internal"}),
    ("no one has replied to my ticket", {"msp"}),
    ("none of us can attend the training on friday", {"msp"}),
    ("everyone is invited to the IT drop-in session", {"msp"}),
    ("I didn't send the report yet, can the deadline move?", {"msp"}),
    ("all devices need the new antivirus installed", {"msp", "internal"}),
    ("how do I recognise a phishing email?", {"internal", "msp"}),
    ("the dev server is down", {"internal"}),
    ("my laptop is encrypted with bitlocker, is that ok?", {"msp", "internal"}),
    ("the site is not down, it's just slow for some of us", {"internal"}),
    ("the store printer is offline", {"msp", "internal"}),
    ("the whole team wants dark mode in outlook, how?", {"msp"}),
    ("everyone in finance needs excel updated to the latest version", {"msp"}),
    ("all staff must complete the phishing training by friday", {"internal", "msp"}),
    ("the office coffee machine is down again", {"msp"}),
    ("the lift in building 2 is down", {"msp"}),
    ("I locked myself out, entered the wrong password too often", {"msp"}),
    ("I gave my laptop to IT for repair, when is it back?", {"msp"}),
    ("is sharepoint down? oh no, it was my browser, sorted", {"msp"}),
    ("I clicked the link you sent and reset my password, thanks", {"msp"}),
    ("I accidentally deleted a folder on the shared drive, can you restore it?", {"msp"}),
    ("the customer portal login page looks different today, is that normal?", {"msp"}),
    ("my laptop is overheating", {"msp"}),
    ("this ticket is not us, please route it to facilities", {"msp"}),
]


@pytest.mark.parametrize("text", PAGE_SECURITY + PAGE_OUTAGE)
def test_pages(classifier: Classifier, text: str) -> None:
    d = decide(classifier, text)
    assert d.route == "page", f"{text!r} -> {d.route} ({d.why})"
    assert d.queue == "oncall" and d.severity == "critical"


@pytest.mark.parametrize("text", MSP)
def test_routine_goes_to_the_msp(classifier: Classifier, text: str) -> None:
    d = decide(classifier, text)
    assert d.route == "msp", f"{text!r} -> {d.route} ({d.why})"
    assert d.queue == "msp-service-desk"


@pytest.mark.parametrize("text", INTERNAL)
def test_security_and_servers_go_in_house(classifier: Classifier, text: str) -> None:
    d = decide(classifier, text)
    assert d.route == "internal", f"{text!r} -> {d.route} ({d.why})"
    assert d.queue in {"it-security", "it-infrastructure"}


@pytest.mark.parametrize(("text", "allowed"), NEVER_PAGE)
def test_false_friends_and_negations_never_page(classifier: Classifier, text: str, allowed: set[str]) -> None:
    d = decide(classifier, text)
    assert d.route != "page", f"{text!r} paged ({d.why})"
    assert d.route in allowed, f"{text!r} -> {d.route} ({d.why})"


def test_suspicious_mail_goes_to_security_not_the_msp(classifier: Classifier) -> None:
    # Security matters are never forwarded to the MSP.
    for text in ("got a suspicious email, didn't click", "how do I report a phishing email",
                 "antivirus quarantined a file on my laptop"):
        assert decide(classifier, text).queue == "it-security", text


def test_negation_flips_a_page(classifier: Classifier) -> None:
    assert decide(classifier, "ransomware on my pc").route == "page"
    assert decide(classifier, "no ransomware on my pc, the scan was clean").route != "page"
    assert decide(classifier, "I entered my password on that fake site").route == "page"
    assert decide(classifier, "I never entered my password on that fake site").route != "page"


def test_same_words_different_scope(classifier: Classifier) -> None:
    # One person's client vs. a shared service: the scope words decide.
    assert decide(classifier, "email down for everyone").route == "page"
    assert decide(classifier, "my email is down").route == "msp"
    assert decide(classifier, "whole office has no internet").route == "page"
    assert decide(classifier, "my internet is down at home").route == "msp"


def test_every_page_rule_is_exercised(classifier: Classifier, policy: dict[str, Any]) -> None:
    page_rules = {r["id"] for r in policy["rules"] if r["route"] == "page"}
    fired = {decide(classifier, t).rule_id for t in PAGE_SECURITY + PAGE_OUTAGE}
    assert page_rules - fired == set(), "page rules no chat phrasing here reaches"


def test_there_are_enough_phrasings() -> None:
    assert len(PAGE_SECURITY + PAGE_OUTAGE + MSP + INTERNAL + NEVER_PAGE) >= 60


# -- the shape of the policy -------------------------------------------------------------------------


def test_shape(policy: dict[str, Any]) -> None:
    rules = policy["rules"]
    queues = {q["name"]: q["route"] for q in policy["queues"]}
    assert len(rules) < 60, "keep the default policy readable"
    assert rules[-1]["id"] == "default" and rules[-1]["route"] == "msp" and "when" not in rules[-1]
    for r in rules:
        assert r.get("description"), f"{r['id']} says why it exists"
        assert queues[r["queue"]] == r["route"]
        if r["route"] == "page":
            assert r["queue"] == "oncall" and r["severity"] == "critical", r["id"]
    # The tiers are grouped: page rules, then internal, then msp.
    order = [r["route"] for r in rules]
    assert order == sorted(order, key={"page": 0, "internal": 1, "msp": 2}.__getitem__)


def test_terms_are_policy_words_not_data_set_strings(policy: dict[str, Any]) -> None:
    # No hostnames, ticket numbers, hashes or placeholders of a particular data set.
    suspicious = re.compile(r"\d{4,}|_|hostname|\bsid\b|\bgrp\b|\binc\d|company com|@")
    for r in policy["rules"]:
        for kind in ("any", "all", "none"):
            for term in (r.get("when") or {}).get(kind, []):
                assert not suspicious.search(term.lower()), f"{r['id']}.{kind}: {term!r}"
