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
    "ber-sw04 went down, floor 2 has no network",  # the naming convention (network-device-down-by-name)
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
    # Phishing simulations, awareness quizzes and 'how do I spot' questions are routine support.
    "I failed the phishing simulation, where is the training module?",
    "the malware awareness quiz keeps crashing",
    "how do i spot a phishing text? asking for my dad",
    "where do I find the guest wifi password for a visitor",
    "my antivirus keeps turning off after the update",
    "URGENT: need a new mouse, mine is broken",
    "urgent please: how do I reset my password? it's not working",
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


# -- chat phrasings of the page concepts (any_of rules), written for these tests ------------------------
# Each concept in several wordings: typos, other languages, long messages, no key phrase at all.

PAGE_CHAT = [
    "every folder on the s: drive has a READ_ME.txt asking for bitcoin",
    'my pc says "your documents, photos and databases have been encrypted"',
    "guys the S drive is full of files with weird names and a text file telling us to contact some email to get them back",
    "something is renaming all the files on the N drive",
    "the shared folders are getting encrypted one after another, please help",
    "all docs on the team sharepoint now end with .xyz123 and wont open",
    "tous nos fichiers sont chiffrés, il y a une demande de rançon",
    "los archivos del servidor están cifrados y piden un rescate en bitcoin",
    "i think i have ransomeware, my files are encripted",
    "ich habe mein Passwort auf einer gefälschten Seite eingegeben",
    "hey, I did something dumb: got an email about a shared file, it asked me to sign in with microsoft so I did, then it just went to google",
    'a "supplier" called and asked me to confirm our login to the portal and I did, now I\'m not sure that was really them',
    "someone from 'the bank' got me to read out the code from my phone",
    "i think I've been scammed: gave remote access to a 'microsoft technician' who called me",
    "got a phising email this morning, clicked and put in my pasword before i realised",
    "i keep getting authenticator requests and I'm not even logging in",
    "approved a sign-in I didn't recognise on my phone, by accident",
    "my outlook sent 500 emails to my contacts that I never wrote",
    "lots of people are getting a teams chat from our CFO with a weird file, she says she didn't send anything",
    "got an email saying my password was changed but I never changed it",
    "somebody changed my direct deposit info in workday",
    "somebody logged into the HR system with my account yesterday at 11pm, I was asleep",
    "there are sign-ins on my account from Russia, I'm in London",
    "i'm getting texts with login codes i never asked for and now outlook says my password is wrong",
    "got a security alert from microsoft last night and now my password doesn't work anymore",
    "my mailbox has a rule deleting all emails from the bank, I didn't create it",
    "the server room aircon died and it's 40 degrees",
    "a caller pretending to be from IT support got my password out of me",
    "there is an admin account on the server nobody knows about",
    "the domain admin password was changed and none of us did it",
    "edr detected cobalt strike beacon on a workstation",
    "a guy said he was from the printer company and plugged a device into our network cabinet, nobody booked him",
    "SentinelOne is alerting on 20 machines at the same time",
    "defender keeps detecting the same malware on different machines across the office",
    "our website was defaced",
    "someone posted our employee salary list on reddit",
    "HR accidentally put the salary spreadsheet on the public website",
    "we sent the whole employee list with social security numbers to a vendor by accident",
    "the intranet shows someone else's payslip when I open mine",
    "a contractor copied the entire customer database to a usb drive",
    "the firewall shows our file server talking to some IP in another country all night, gigabytes going out",
    "our shop website is not working at all, customers can't order",
    "the payment system is down, we can't charge customers",
    "the tills at all three stores just went blank",
    "the door access system failed, people are stuck outside",
    "zoom is down for the whole org",
    "SharePoint is having a major outage",
    "vpn is down and 300 people work from home today",
    "none of the computers in the shop work",
    "kein Netzwerk im ganzen Lager, die Scanner funktionieren nicht",
    "le standard téléphonique est en panne, plus aucun appel entrant",
    "no podemos cobrar, los datáfonos no funcionan en ninguna tienda",
    "water coming through the ceiling in the server room",
    "our data center lost cooling and temperatures are climbing fast",
    "the network in the warehouse is dead, pickers can't scan",
    "we lost internet at the head office",
    "exchange is down",
    # Industry systems x scope, other languages, outbreaks, OT, takeovers seen after the policy revision.
    "the dispatch system is down and ambulances are being sent by radio",
    "the ticket scanning platform is down, fans are queueing at every gate",
    "our claims portal is offline, none of the agents can file anything",
    "the library checkout system went down, students cant borrow books",
    "reservation app is returning 503s for every guest trying to book",
    "the loyalty platform is unavailable across all 12 stores",
    "court records system is down for the entire firm, filings due at noon",
    "the kiosk software has crashed in all the branches, customers cant check in",
    "the donation site is down for everyone since the campaign started",
    "warehouse scanners stopped for the whole site",
    "the hr portal is throwing 502s for everyone",
    "nurses can't log in to the bedside system, the ward is charting on paper",
    "teachers can't get into the classroom platform, lessons start in 5",
    "our booking website gives 500s for 100% of visitors",
    "Het kassasysteem ligt plat in alle filialen",
    "Tutto il magazzino è fermo, il sistema non funziona per nessuno",
    "Se cayó la red en toda la oficina, nadie puede trabajar",
    "In het hele gebouw is geen stroom",
    "Il sito è giù per tutti i clienti",
    "Ich habe mich auf einer falschen Seite eingeloggt und mein Passwort eingegeben",
    "Quelqu'un s'est connecté dans mon compte et a changé mon mot de passe",
    "Jemand hat sich in meinem Konto angemeldet",
    "firewall shows huge outbound uploads from the database server to an unknown ip",
    "antivirus detections climbing by the minute, each one says quarantined",
    "my antivirus disabled itself right after I opened that invoice attachment",
    "the building management system is changing setpoints by itself overnight",
    "PLC on line 3 switched the pumps off on its own, nobody on shift touched it",
    "a caller from the 'bank' got my one-time code, I read it out and now I'm locked out of online banking",
    "payroll was changed with the HR manager's login while she was on holiday",
    "someone logged into our payroll portal and changed five employees' bank accounts",
    "the whole client list was downloaded with a manager's account last night and he says it wasnt him",
    "I accidentally emailed the patient list with diagnoses to a supplier",
    "both ISP links at the main office are down and the failover did not kick in",
    "carriers are waiting at the loading bay, shipping labels won't print",
    "mail flow has stopped for the entire organisation",
    "the EHR is down across the hospital, doctors aren't getting lab results",
    # found USB stick / download / attachment, then something runs by itself
    "plugged in a usb drive someone left in the lobby and now command prompt windows keep opening",
    "opened the attachment from 'accounts' and now powershell windows are flashing on my screen",
    # someone who must not be there, in an admin panel, acting
    "an ex employee got into the admin portal last night and is deleting user accounts",
    "a pupil logged into the school's grade book as a teacher and is changing marks",
    # several machines at once, an encrypted share, a stranger RDP'd in, an account someone else holds
    "defender alerts on 9 laptops at the same time, all the same file",
    "the finance share encrypted overnight and more folders are getting hit",
    "somebody is rdp'd into the HR server and nobody from IT is logged in",
    "someone has my login, I'm getting sign in codes I never asked for",
    "someone is in our azure tenant creating VMs we never asked for",
    "I put my password into that 'parcel delivery' page and then I realised it wasn't DHL",
    # outages: no power in the comms room, the link between sites, campus-wide, "system not responding"
    "UPS in the network closet is on battery, power out on the whole floor",
    "lost connection between the two sites, the plant can't reach the ERP",
    "the LMS is down campus-wide, 1200 students can't log in",
    "the pharmacy dispensing system is not responding at all",
    "o sistema de pagamentos caiu em todas as lojas",
    "brak prądu w serwerowni, wszystko padło",
    "alguien entró en mi cuenta y envía correos a mis clientes",
    # a privileged change nobody on our side made
    "the azure activity log shows 30 VMs created in brazil south overnight, none of us did that",
    "conditional access policies were disabled at 3am and there's no change ticket for it",
    "all our jamf devices got a wipe command this morning and nobody on the team triggered it",
    # destruction while someone watches
    "files in the projects folder are being deleted right now, I can see them vanish",
    "the snapshots are disappearing one by one in the storage console",
    # the symptom with the scope in other words
    "the booking tool is not loading for anyone in the clinic",
    "internet and phones both out at the Leeds branch",
    "the shop's card payments fail for every customer since 10",
    "la rete è giù in tutto il magazzino",
    "le wifi est tombé pour tout le monde au siège",
    # symptoms rather than labels
    "the hotel PMS is frozen, nobody at reception can check guests out",
    "the lab system stopped sending results, it's been down for an hour",
    "checkout success dropped to 0 in the dashboard, payments returning declined",
    "our homepage redirects to some betting site",
    "every folder on the NAS has a HOW_TO_DECRYPT.html file in it",
    "an unknown box is plugged into the switch in the lobby and the IDS says it is scanning the network",
    "I pressed approve on an MFA push by mistake and now my password doesn't work",
    "outlook is full of undeliverable bounce backs for people I never emailed",
    "the vcenter shows every VM powered off by an account nobody recognises",
    "someone is dumping the orders database to an unknown ip",
    "serwerownia: padł UPS i serwery się wyłączyły",
    "alla kassor i butikerna fungerar inte",
    "the shared drive is full of budget.xlsx.k3j9x style files and none of them open",
    "CrowdStrike shows the same detection on 25 hosts, it's moving host to host",
    "the guy on the phone said he was from the helpdesk so I gave him my password, then he hung up",
    "clicked the 'your password is expiring' mail, typed my password and the code, then it went to a blank page",
    "her Teams is messaging the whole team about gift cards but she's sitting right next to me with her laptop shut",
    "Workday shows our bank accounts changed from Tom's login while he was on a flight",
    "the card machines in all 12 stores stopped taking payments",
    "load control is not responding at any of the outstations",
    "the whole of the second floor has had no network since 9",
    "the firewall cluster: both nodes down and the HA failover did not happen",
    "someone is remote controlling the accounts PC and the cursor is typing into online banking",
    "a man I don't know plugged a laptop into the switch in the comms cupboard and left it there",
    "every customer is getting an error at checkout on the website",
]

# -- in-house vocabulary that chat uses for non-emergencies -----------------------------------------------

INTERNAL_CHAT = [
    "vulnerability scan found 40 high findings on the web servers",
    "a new critical CVE for our firewall, do we need to patch tonight?",
    "EDR console shows 12 agents offline since the weekend",
    "there are 40 accounts of people who left that are still enabled",
    "someone held the door open for a stranger at reception",
    "got a call from 'microsoft' asking about my computer, I hung up",
    "someone tried to log into my account from abroad but it was blocked",
    "one of the two internet lines is down, we're on backup",
    "the secondary circuit at the warehouse is down, primary is fine",
    "our web shop feels slow today but orders still go through",
    "kubernetes pods keep restarting in prod but the service is up",
    "the event log on the dc shows lots of kerberos errors",
    "server01 rebooted unexpectedly, it's back now",
    "we had a short network blip at 10am, all fine now",
    "the DLP tool flagged someone emailing a spreadsheet to their gmail",
    "someone called asking for our wifi password, I didn't give it",
    # Certificates, backups, NAT/DMZ, end-of-life, redundancy, latency, BEC, MFA exemptions, extensions.
    "le certificat du serveur expire bientôt",
    "Das Zertifikat vom Webserver läuft nächste Woche ab",
    "la copia de seguridad del servidor de correo falló anoche",
    "die Datensicherung ist heute Nacht fehlgeschlagen",
    "please add a NAT rule so the vendor can reach the door controller",
    "the partner app should sit in a DMZ, who can design that?",
    "we still run two Windows 2008 servers that are end of life",
    "one PSU on the storage array is amber, the other is carrying the load",
    "checkout API p99 latency doubled but orders still go through",
    "il server di posta è molto lento stamattina",
    "got a mail asking to change the bank details for a supplier, nobody paid anything",
    "a vendor wants us to turn off MFA on their service account",
    "there's a browser extension on the sales laptops that can read every page",
    "is the guest network reachable from the office printers?",
    "lots of failed vpn attempts from random ips overnight, all blocked",
    "Ho ricevuto una mail sospetta, non ho cliccato",
    "the web shop was down for 5 minutes, can someone find out why",
]

# -- false friends of the new concepts: past / planned / hypothetical outages, one person's app, tests,
#    locked-for-editing, renamed-by-me, sent-by-mistake, help-desk resets ... never page -----------------

NEVER_PAGE_CHAT = [
    "the erp was down this morning but it's back now, just fyi",
    "why was email down for everyone yesterday?",
    "what's the process if the website goes down?",
    "who do I call if the tills go down on the weekend?",
    "heads up: the internet will be down saturday 6-8am for an upgrade",
    "is teams down or is it just me?",
    "my home broadband is down, can I expense a hotspot?",
    "teams is frozen on my laptop",
    "the website won't load on my phone",
    "our antivirus licence expires next month",
    "I didn't enter my password, I closed the tab",
    "can you send me the presentation about phishing and ransomware?",
    "my authenticator shows a random number, what do I type?",
    "everyone in my team lost their desktop shortcuts after the update",
    "whole team can't see the new sharepoint page, please give us access",
    "is the erp down? I get a timeout, maybe my vpn",
    "the vpn gateway has failed over, users did not notice",
    "a phishing test email went out, some people entered their password on the test page",
    "my excel file is locked for editing by another user",
    "all files in my downloads folder got renamed after the windows update??",
    "my keycard doesn't open the garage anymore",
    "I accidentally shared my screen with the customer lol",
    "the printer in the finance office is offline",
    "someone from finance gave me their login for the report, is that allowed?",
    "the pdf files have a .pdf.download ending, how do I open them",
    "my documents show a weird extension after I copied them from a mac",
    "clicked the link in the welcome email and typed my password, now it says expired",
    "I entered the code from the authenticator but the page just reloads",
    "i accidentally deleted the customer list, can you restore it from backup",
    "I sent the wrong file to a customer by mistake, can I recall the email?",
    "could somebody unlock my account, i fat-fingered the password",
    "i'm abroad for work and can't log in to the vpn",
    "the encrypted email from the bank won't open, how do I read it?",
    "the fire alarm test is at 10am",
    "i filled in the it satisfaction survey with my login, is that anonymous?",
    "I approved the mfa at night from home, is that fine?",
    "a user in finance is downloading thousands of invoices for the audit, is that ok?",
    "the room is 30 degrees, can we get a fan?",
    "a supplier is demanding payment for an overdue invoice",
    "got an extortion email saying they recorded me on my webcam, want bitcoin",
    # Planned / past / hypothetical system outages, schedules, one person's AV, training and quizzes.
    "I failed the phishing simulation, where is the training module?",
    "how do you spot a fake invoice email? asking for a friend",
    "the malware awareness quiz keeps crashing",
    "where do I find the guest wifi password for a visitor",
    "the exam system will be down on sunday for an upgrade",
    "is the booking system down or is it my wifi?",
    "the test system is down again, no rush",
    "the valves close on their own at 6pm, that's the schedule right?",
    "my antivirus keeps turning off after the update",
    "the payroll system was down for an hour yesterday, why?",
    "my laptop stopped working, can I borrow one?",
    "nobody in our team stopped by the training yet, can you resend the link?",
    # Broad words of the new rules in harmless sentences.
    "everyone stopped using the old share, can we delete it?",
    "teachers cant find the new gradebook button",
    "students can't open the pdf I shared, can you check the link",
    "the printing system is down, my document is stuck",
    "the training platform is down, can I do the course later?",
    "the pumps in the office kitchen run on their own, weird",
    "I read out the code to the helpdesk and now I'm locked out, please reset",
    "my colleague changed the signature on the shared mailbox while he was on holiday, is that ok?",
    "nobody stopped by to fix my monitor",
    "the old fax system is dead, can we remove it?",
    "can I plug a usb drive into my laptop to copy photos?",
    "I downloaded the new VPN installer and a setup wizard window keeps popping up",
    "can a former employee still have access to the admin portal? please check",
    "our AV licence renews at the same time as the firewall one, can you merge the invoices?",
    "is the shared drive encrypted at rest?",
    "the POS tablet at till 3 is frozen, the others are fine",
    "the 2019 employees handbook link is broken",
    "I typed my password wrong three times before I realised caps lock was on",
    "I deleted the old test VMs in azure, none of us use them anymore",
    "can we change the firewall rules next week? nobody on the team has time now",
    "my old emails are disappearing from my inbox, is there an archive rule?",
    "we are deleting the old backups as part of the retention cleanup, fyi",
    "someone from Microsoft called wanting remote access to my PC, I hung up and gave him nothing",
    "the EDR agent is out of date on 25 laptops",
    "CAD crashed when I opened the drawing",
    "mis archivos no funcionan en mi portátil",
    "got a message asking how to recover deleted files",
    "the website stopped showing my profile picture",
    "I got an MFA prompt, it wasn't working so I used the code instead",
    "intranet server is down, it's only the lunch menu so no rush",
    "secondary DNS server not responding, primary is fine",
    "hypothetically, if ransomware hit us how long would a restore take?",
    "is it a breach if I emailed the rota to the wrong colleague?",
    "my personal instagram got hacked, nothing to do with work",
    "heads up: generator test on Sunday morning, expect alarms",
    "our whole team can't print, it's out of toner",
    "the whole internet is down on my laptop, my phone's fine on the same wifi",
    "one of the two internet lines at the warehouse dropped, we're on the secondary and nobody has noticed",
    "the secondary domain controller in Lyon is offline, primary is fine",
    "my personal gmail got a mail saying my files are encrypted, nothing on my work laptop is affected",
    "a competitor got hit by a DDoS, do we have DDoS protection on the web shop?",
    "my account is compromised!! oh sorry, no, it's just telling me my password has expired",
    "screen went blue with white text, rebooted and it's fine now, was that a virus?",
    "I changed my bank details in Workday while on holiday, can payroll confirm they got it?",
    "the AP mailbox gets spoofed mails from our own domain, is DMARC set up?",
    # false friends of this round's new words (found by a review)
    "the old guest wifi accounts are being deleted right now by the expiry job, that's fine",
    "files are disappearing from my desktop one by one as OneDrive moves them to the cloud, is that normal?",
    "the backups from 2019 were deleted by the retention job overnight, we didn't do it by hand",
    "someone deleted the old printer from the devices list, wasn't me, no big deal",
    "our laptops got a new wallpaper pushed overnight, none of us did that, was it the MSP?",
    "someone is changing the backend colours of the intranet, looks like the comms team",
    "my browser homepage is stuck on Bing",
    "Legal updated the TOS and the old version is stuck on the website footer",
    "the kitchen display in the canteen went dark at 3pm, I think it's just the sleep timer",
    "Stripe shows one card declined for a customer yesterday",
    "I declined the meeting invite for the PMS training by accident",
    "nobody on the team knows who created the shared Canva account",
    "MFA was reset for the new starter, not me",
    # scope words that are not a scope (found on the 8,500 real tickets)
    "cannot access mail from any device using owa or outlook",
    "cannot connect to any internet site although the wifi is connected",
    "speakers not working, I reinstalled the audio drivers and any driver update fails",
    "please move the nightly erp import job from 0:30 to 2:00",
]


@pytest.mark.parametrize("text", PAGE_SECURITY + PAGE_OUTAGE + PAGE_CHAT)
def test_pages(classifier: Classifier, text: str) -> None:
    d = decide(classifier, text)
    assert d.route == "page", f"{text!r} -> {d.route} ({d.why})"
    assert d.queue == "oncall" and d.severity == "critical"


@pytest.mark.parametrize("text", MSP)
def test_routine_goes_to_the_msp(classifier: Classifier, text: str) -> None:
    d = decide(classifier, text)
    assert d.route == "msp", f"{text!r} -> {d.route} ({d.why})"
    assert d.queue == "msp-service-desk"


@pytest.mark.parametrize("text", INTERNAL + INTERNAL_CHAT)
def test_security_and_servers_go_in_house(classifier: Classifier, text: str) -> None:
    d = decide(classifier, text)
    assert d.route == "internal", f"{text!r} -> {d.route} ({d.why})"
    assert d.queue in {"it-security", "it-infrastructure"}


@pytest.mark.parametrize(("text", "allowed"), NEVER_PAGE)
def test_false_friends_and_negations_never_page(classifier: Classifier, text: str, allowed: set[str]) -> None:
    d = decide(classifier, text)
    assert d.route != "page", f"{text!r} paged ({d.why})"
    assert d.route in allowed, f"{text!r} -> {d.route} ({d.why})"


@pytest.mark.parametrize("text", NEVER_PAGE_CHAT)
def test_chat_false_friends_never_page(classifier: Classifier, text: str) -> None:
    d = decide(classifier, text)
    assert d.route in {"msp", "internal"}, f"{text!r} paged ({d.why})"


@pytest.mark.parametrize("system", ["erp", "web shop", "payroll system", "booking system", "phone system",
                                    "warehouse system", "payment gateway", "file server", "badge system"])
def test_a_critical_system_down_pages_but_not_on_my_laptop(classifier: Classifier, system: str) -> None:
    # The concept, not a phrase: any shared-by-nature system x any outage word.
    assert decide(classifier, f"the {system} is down").route == "page"
    assert decide(classifier, f"{system} crashed, nothing we can do").route == "page"
    assert decide(classifier, f"the {system} is down on my laptop").route != "page"
    assert decide(classifier, f"the {system} will be down on sunday for maintenance").route != "page"
    assert decide(classifier, f"why was the {system} down yesterday?").route != "page"


@pytest.mark.parametrize("secret", ["password", "login", "MFA code", "bank details"])
@pytest.mark.parametrize("given", ["typed", "entered", "put in"])
def test_a_secret_given_to_something_fake_pages(classifier: Classifier, secret: str, given: str) -> None:
    assert decide(classifier, f"I {given} my {secret} on a fake site").route == "page"
    assert decide(classifier, f"oops, {given} my {secret} after clicking a link in a weird email").route == "page"
    # Log-in trouble with the same words is routine.
    assert decide(classifier, f"I {given} my {secret} and it says invalid").route != "page"


@pytest.mark.parametrize(("scope", "pages"), [
    ("for everyone", True), ("for the whole office", True), ("for all 40 of us", True),
    ("for 40 people", True), ("nobody can work", True), ("for me", False), ("at home", False),
    ("for me, everyone else is fine", False),
])
def test_scope_decides_whether_a_personal_service_outage_pages(classifier: Classifier, scope: str,
                                                             pages: bool) -> None:
    # E-mail / Teams / VPN can be down for one person; scope words (or "outage") make it shared.
    text = f"teams is down {scope}"
    assert (decide(classifier, text).route == "page") is pages, f"{text!r}: {decide(classifier, text).why}"


def test_emphasis_is_not_negation(classifier: Classifier) -> None:
    # "not a drill" must not negate the ransom note that follows it.
    assert decide(classifier, "no joke, not a drill: ransom note popped up on the finance server").route == "page"
    assert decide(classifier, "ransomware drill on friday, please join").route != "page"


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


@pytest.mark.parametrize("system", ["lab system", "exam platform", "customer portal", "payment gateway",
                                    "dispensing system", "scheduling platform"])
def test_any_system_that_is_down_pages_but_not_when_planned_or_past(classifier: Classifier, system: str) -> None:
    # The industry name does not matter: "system / platform / portal / gateway" x down is shared by nature.
    assert decide(classifier, f"the {system} is down").route == "page"
    assert decide(classifier, f"the {system} will be down tonight for maintenance").route != "page"
    assert decide(classifier, f"the {system} was down yesterday, why?").route != "page"
    assert decide(classifier, f"the {system} is down in the test environment").route != "page"


@pytest.mark.parametrize(("scope", "pages"), [
    ("for everyone", True), ("in all 6 schools", True), ("for the entire desk", True),
    ("across the hospital", True), ("for me", False), ("on my laptop", False),
])
def test_scope_turns_a_stopped_app_into_a_page(classifier: Classifier, scope: str, pages: bool) -> None:
    d = decide(classifier, f"the rostering app stopped working {scope}")
    assert (d.route == "page") is pages, f"{scope!r} -> {d.route} ({d.why})"


def test_every_page_rule_is_exercised(classifier: Classifier, policy: dict[str, Any]) -> None:
    page_rules = {r["id"] for r in policy["rules"] if r["route"] == "page"}
    fired = {decide(classifier, t).rule_id for t in PAGE_SECURITY + PAGE_OUTAGE + PAGE_CHAT}
    assert page_rules - fired == set(), "page rules no chat phrasing here reaches"


def test_there_are_enough_phrasings() -> None:
    assert len(PAGE_SECURITY + PAGE_OUTAGE + MSP + INTERNAL + NEVER_PAGE) >= 60
    assert len(PAGE_CHAT + INTERNAL_CHAT + NEVER_PAGE_CHAT) >= 60


# -- the shape of the policy -------------------------------------------------------------------------


def test_shape(policy: dict[str, Any]) -> None:
    rules = policy["rules"]
    queues = {q["name"]: q["route"] for q in policy["queues"]}
    assert len(rules) <= 64, "keep the default policy readable: one rule per concept, words go into groups"
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
