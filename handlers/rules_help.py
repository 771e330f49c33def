"""What the ``rules`` command accepts: its options, its subcommands, their usage, examples and help.

One table drives the parser (:mod:`handlers.rules_grammar`), the error messages (each shows the
usage of its subcommand) and ``help``, so they cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from routing.model import ROUTES, SEVERITIES

PREFIX = "/handoff rules"


@dataclass(frozen=True, slots=True)
class Flag:
    """One ``--option``: its kind decides how its value is read."""

    name: str
    kind: str  # bool | choice | id | int | version | time | user | channel | text | list | regex
    help: str
    choices: tuple[str, ...] = ()
    low: int = 1
    high: int = 10_000


_FLAGS = [
    Flag("route", "choice", "msp, internal or page", ROUTES),
    Flag("queue", "id", "a queue of that route (default: the first one)"),
    Flag("severity", "choice", "low, normal, high or critical", SEVERITIES),
    Flag("any", "list", 'comma-separated terms, at least one must occur: "disk full, no space left"'),
    Flag("all", "list", "comma-separated terms that must all occur"),
    Flag("none", "list", "comma-separated terms that must not occur"),
    Flag("regex", "regex", "an RE2 pattern (repeat --regex for more)"),
    Flag("channels", "list", "comma-separated channel ids the rule is limited to"),
    Flag("groups", "list", "comma-separated user groups the rule (or the test) is limited to"),
    Flag("platforms", "list", "comma-separated platforms: slack, teams, console"),
    Flag("add-any", "list", "terms to add to `any`"),
    Flag("add-all", "list", "terms to add to `all`"),
    Flag("add-none", "list", "terms to add to `none`"),
    Flag("add-regex", "regex", "a regex to add"),
    Flag("remove-any", "list", "terms to remove from `any`"),
    Flag("remove-all", "list", "terms to remove from `all`"),
    Flag("remove-none", "list", "terms to remove from `none`"),
    Flag("remove-regex", "regex", "a regex to remove"),
    Flag("before", "id", "the rule to place it before"),
    Flag("after", "id", "the rule to place it after"),
    Flag("continue", "bool", "keep evaluating after this rule matches"),
    Flag("no-continue", "bool", "stop at this rule when it matches"),
    Flag("ignore-negated", "bool", "do not count a term after no/not/never"),
    Flag("count-negated", "bool", "count terms even after no/not/never"),
    Flag("note", "text", "why, in a few words"),
    Flag("description", "text", "what the rule is for"),
    Flag("page", "int", "which page of a long answer", high=10_000),
    Flag("days", "int", "how many days of stored requests (1-90)", high=90),
    Flag("confirm", "bool", "yes, publish even though stored requests change paging"),
    Flag("draft", "bool", "your draft instead of the live rules"),
    Flag("version", "version", "a version number from `rules history`"),
    Flag("as", "user", "the user to test as (id or @mention)"),
    Flag("channel", "channel", "the channel to test in (id or #mention)"),
    Flag("platform", "choice", "slack, teams or console", ("slack", "teams", "console")),
    Flag("at", "time", "test with the rules live at that time (ISO 8601, UTC unless it says)"),
]
FLAGS: dict[str, Flag] = {f.name: f for f in _FLAGS}
#: Option names that differ from the rule schema's ``when`` keys.
LIST_KINDS = {"groups": "user_groups"}

_RULE = ["route", "queue", "severity", "any", "all", "none", "regex", "channels", "groups", "platforms",
         "continue", "ignore-negated", "note", "description"]
_EDIT = ["add-any", "add-all", "add-none", "add-regex", "remove-any", "remove-all", "remove-none", "remove-regex",
         "no-continue", "count-negated"]

#: Subcommand -> the options it takes.
SUBCOMMANDS: dict[str, list[str]] = {
    "help": [], "list": ["draft", "page"], "show": ["draft"],
    "test": ["as", "channel", "platform", "groups", "at"],
    "add": _RULE + ["before", "after"], "edit": _RULE + _EDIT, "rm": [], "move": ["before", "after"],
    "enable": [], "disable": [], "diff": ["page"], "replay": ["days", "page"],
    "publish": ["confirm", "note", "days"], "discard": [], "history": ["page"],
    "rollback": ["confirm", "note", "days"], "export": ["version", "draft", "page"], "import": [],
}
#: Anyone may run these; the rest need a rule admin.
PUBLIC = frozenset({"help", "list", "show", "test", "history"})

USAGE: dict[str, str] = {
    "help": f"{PREFIX} help [SUBCOMMAND]",
    "list": f"{PREFIX} list [--draft] [--page N]",
    "show": f"{PREFIX} show ID [--draft]",
    "test": f'{PREFIX} test "TEXT" [--as USER] [--channel C] [--platform P] [--groups "a, b"] [--at ISO-TIME]',
    "add": (f'{PREFIX} add ID --route msp|internal|page --any "a, b" [--all "…"] [--none "…"] [--regex RE]… '
            '[--queue Q] [--severity S] [--before ID|--after ID] [--continue] [--ignore-negated] [--note "why"]'),
    "edit": (f'{PREFIX} edit ID [--any "…"|--add-any "…"|--remove-any "…"] [--all/--none/--regex …] '
             "[--route R] [--queue Q] [--severity S] [--continue|--no-continue] [--note \"why\"]"),
    "rm": f"{PREFIX} rm ID",
    "move": f"{PREFIX} move ID --before ID|--after ID",
    "enable": f"{PREFIX} enable ID",
    "disable": f"{PREFIX} disable ID",
    "diff": f"{PREFIX} diff [--page N]",
    "replay": f"{PREFIX} replay [--days N] [--page N]",
    "publish": f'{PREFIX} publish [--confirm] [--note "why"] [--days N]',
    "discard": f"{PREFIX} discard",
    "history": f"{PREFIX} history [--page N]",
    "rollback": f'{PREFIX} rollback VERSION [--confirm] [--note "why"]',
    "export": f"{PREFIX} export [--version N|--draft] [--page N]",
    "import": f"{PREFIX} import ```yaml …```",
}

SUMMARY: dict[str, str] = {
    "help": "this help",
    "list": "the rules in evaluation order (page rules first)",
    "show": "one rule in full",
    "test": "which rule a message hits, where it goes, whether it pages, and why (live and your draft)",
    "add": "add a rule to your draft",
    "edit": "change a rule in your draft",
    "rm": "remove a rule from your draft",
    "move": "move a rule in your draft",
    "enable": "enable a rule in your draft",
    "disable": "disable a rule in your draft",
    "diff": "your draft against the live rules",
    "replay": "re-run stored requests through your draft and the live rules: what would change, who would (stop) paging",
    "publish": "make your draft the live rules (a new version); --confirm when stored requests would change paging",
    "discard": "throw your draft away",
    "history": "every published version",
    "rollback": "publish a copy of an old version (history is never rewritten)",
    "export": "the rules as YAML (the `routing:` section of app.yaml)",
    "import": "replace your draft with YAML pasted in a code block (slash commands cannot carry files)",
}

EXAMPLES: dict[str, tuple[str, ...]] = {
    "help": ("rules help add",),
    "list": ("rules list", "rules list --draft"),
    "show": ("rules show ransomware",),
    "test": ('rules test "all my files are encrypted"', 'rules test "vpn down" --channel C0123ABC --at 2024-05-02T09:00Z'),
    "add": ('rules add datacenter-fire --route page --any "smoke in the server room, fire alarm" --severity critical',
            'rules add sap-login --route msp --all "sap, login" --after password-and-account --note "MSP owns SAP logins"'),
    "edit": ('rules edit hardware --add-any "docking station, usb-c hub"', "rules edit phishing-report --severity high"),
    "rm": ("rules rm sap-login",),
    "move": ("rules move vpn-and-wifi --before email-and-calendar",),
    "enable": ("rules enable patching",),
    "disable": ("rules disable patching",),
    "diff": ("rules diff",),
    "replay": ("rules replay", "rules replay --days 30"),
    "publish": ('rules publish --note "fire alarms page"', "rules publish --confirm"),
    "discard": ("rules discard",),
    "history": ("rules history", "rules history --page 2"),
    "rollback": ("rules rollback 12", "rules rollback v12 --confirm"),
    "export": ("rules export", "rules export --version 12", "rules export --draft"),
    "import": ("rules import ```yaml\nqueues: […]\nrules: […]\n```",),
}

#: Order in the help.
ORDER = ("list", "show", "test", "history", "add", "edit", "rm", "move", "enable", "disable", "diff", "replay",
         "publish", "discard", "rollback", "export", "import", "help")


def help_text(topic: str | None = None) -> str:
    """The help for one subcommand (with its options) or the overview of all of them."""
    if topic in SUBCOMMANDS and topic != "help":
        lines = [f"*`{USAGE[topic]}`*", SUMMARY[topic]]
        if SUBCOMMANDS[topic]:
            lines.append("Options:")
            lines += [f"• `--{name}`: {FLAGS[name].help}" for name in SUBCOMMANDS[topic]]
        lines += [f"e.g. `/handoff {e}`" for e in EXAMPLES[topic]]
        if topic == "import":
            lines.append("Slack slash commands cannot carry files: paste the YAML (`rules export` prints it) in a "
                         "```yaml code block after `rules import`. The whole set is validated; a failing import "
                         "changes nothing.")
        if topic in ("any", "add", "edit"):
            lines.append("Terms match whole words, any case and accents; a trailing `*` makes the last word a "
                         "prefix (`encrypt*`). Quote values with spaces: \"…\", '…', “…”. `\\\"` is a literal quote.")
        return "\n".join(lines)
    lines = [
        "*Routing rules.* Anyone may `list`, `show`, `test` and see the `history`; rule admins edit a private "
        "draft, check it (`diff`, `test`, `replay`) and `publish` it as a new version. Every change is audited.",
    ]
    for name in ORDER:
        lines.append(f"• `{USAGE[name]}`: {SUMMARY[name]}")
        lines.append("   e.g. " + " · ".join(f"`/handoff {e}`" for e in EXAMPLES[name] if "\n" not in e)
                     if name != "import" else "   e.g. `/handoff rules import` then a ```yaml code block")
    lines.append("`/handoff rules help SUBCOMMAND` shows every option of one subcommand.")
    return "\n".join(lines)
