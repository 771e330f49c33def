"""The ``rules`` command grammar and the YAML import: table tests and hypothesis properties.

Properties: whatever the text (unicode, huge lists, unbalanced quotes, pathological regexes), the
parser returns a Parsed or raises CommandError, and the import returns a valid rule set or raises
CommandError; nothing else ever escapes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handlers.rules_grammar import (
    MAX_COMMAND_CHARS,
    CommandError,
    Parsed,
    parse,
    slack_unescape,
    tokenize,
)
from handlers.rules_help import SUBCOMMANDS, USAGE, help_text
from handlers.rules_import import load_import
from routing.rules import ruleset_from_dict

APP_YAML = Path(__file__).resolve().parent.parent / "app.yaml"


def test_quotes_of_every_kind_and_flag_forms() -> None:
    p = parse('add fire --route page --any "smoke, fire alarm" --all=\'server room\' --none “drill, test” '
              "--regex '\\bfire\\b' --regex=x+ --after ransomware --note 'it’s urgent' --continue")
    assert p.sub == "add" and p.rule_id == "fire" and p.after == "ransomware"
    assert p.change.route == "page" and p.change.continue_ is True and p.change.note == "it’s urgent"
    assert p.change.lists == {"any": ("smoke", "fire alarm"), "all": ("server room",), "none": ("drill", "test"),
                              "regex": ("\\bfire\\b", "x+")}


def test_typographic_and_german_quotes_and_dashes_from_smart_punctuation() -> None:
    p = parse("edit hardware —add-any „docking station, usb hub“ –severity high")
    assert p.change.add == {"any": ("docking station", "usb hub")} and p.change.severity == "high"
    assert parse("edit x --add-any ‘a, b’").change.add == {"any": ("a", "b")}
    assert parse("edit x --add-any «a»").change.add == {"any": ("a",)}


def test_apostrophes_inside_straight_quotes_and_escapes() -> None:
    assert parse("add y --route msp --any 'don't panic, isn't it'").change.lists["any"] == ("don't panic", "isn't it")
    assert parse('add y --route msp --any "say \\"hi\\""').change.lists["any"] == ('say "hi"',)
    assert [t.text for t in tokenize(r"a\ b c")] == ["a b", "c"]
    # A backslash before anything else is kept: regexes survive.
    assert parse(r"add y --route msp --regex \d{3}-\w+").change.lists["regex"] == (r"\d{3}-\w+",)


def test_quoted_flag_is_a_value() -> None:
    p = parse('test "--any is not an option here"')
    assert p.text == "--any is not an option here"


def test_test_text_may_be_unquoted_and_options_read_mentions() -> None:
    p = parse("test my laptop is on fire --as <@U0ALICE|alice> --channel <#C0GEN|general> --at 2024-05-02T09:14Z "
              '--groups "it, ops" --platform Teams')
    assert p.text == "my laptop is on fire" and p.as_user == "U0ALICE" and p.channel == "C0GEN"
    assert p.at == datetime(2024, 5, 2, 9, 14, tzinfo=UTC) and p.groups == ("it", "ops") and p.platform == "teams"
    assert parse('test "x" --at 2024-05-02T11:14+02:00').at == datetime(2024, 5, 2, 9, 14, tzinfo=UTC)


def test_slack_escaping_is_undone() -> None:
    assert slack_unescape("a &lt;b&gt; &amp;amp;") == "a <b> &amp;"


@pytest.mark.parametrize(("text", "expected"), [
    ("", "help"), ("help add", "help"), ("ls", "list"), ("remove x", "rm"), ("delete x", "rm"),
    ("log", "history"), ("--help", "help"), ("publish --confirm", "publish"), ("rollback v3", "rollback"),
])
def test_subcommands_and_aliases(text: str, expected: str) -> None:
    assert parse(text).sub == expected


@pytest.mark.parametrize(("text", "says"), [
    ("adde x", "did you mean `rules add`"),
    ("add x --rout page", "did you mean --route"),
    ("add x --any a", "needs --route"),
    ("add x --route pager --any a", "not one of msp, internal, page"),
    ("add X! --route page --any a", "not a valid id"),
    ("add x --route page --any", "--any needs a value"),
    ('add x --route page --any "a" --any "!!"', "no letters or digits"),
    ("add x --route page --regex '(?=x)'", "lookahead"),
    ("add x --route page --regex '(a'", "RE2 refused"),
    ("add x --route msp --any a --before b --after c", "--before or --after"),
    ("edit x", "say what to change"),
    ("move x", "--before ID or --after ID"),
    ('test "unclosed', "unclosed quote"),
    ("test", "say what to test"),
    ("rollback", "needs the version"),
    ("rollback latest", "not a version number"),
    ("replay --days 365", "from 1 to 90"),
    ("replay --days x", "whole number"),
    ("list --page 0", "from 1 to 10000"),
    ("publish --confirm=yes", "takes no value"),
    ("list extra words", "unexpected"),
    ("export --draft --version 3", "--draft or --version"),
    ("test x --at yesterday", "not an ISO time"),
    ("import", "code block"),
    ("import ```yaml\nrules: []", "not closed"),
    ("add x --route page --note " + "n" * 600, "limit is 500"),
])
def test_errors_say_what_and_show_the_usage(text: str, says: str) -> None:
    with pytest.raises(CommandError) as info:
        parse(text)
    assert says in info.value.message, info.value.message
    assert info.value.usage.startswith("/handoff rules"), "every error shows the correct form"


def test_limits() -> None:
    with pytest.raises(CommandError, match="limit"):
        parse("test " + "x" * (MAX_COMMAND_CHARS + 1))
    with pytest.raises(CommandError, match="limit is 200"):
        parse("add x --route msp --any " + "a" * 201)
    with pytest.raises(CommandError, match="too many words"):
        parse("test " + "w " * 500)
    with pytest.raises(CommandError, match="2000"):
        parse("add x --route msp --any '" + ",".join(["t"] * 2001) + "'")
    with pytest.raises(CommandError, match="limit is 1000"):
        parse("add x --route msp --regex " + "a" * 1001)


def test_every_subcommand_has_usage_examples_and_help() -> None:
    overview = help_text()
    for sub in SUBCOMMANDS:
        assert sub in USAGE and f"`{USAGE[sub]}`" in overview
        assert USAGE[sub] in help_text(sub)
    assert "cannot carry files" in help_text("import")


def test_import_code_block_variants() -> None:
    assert parse("import ```yaml\na: 1\n```").yaml_text == "a: 1\n"
    assert parse("import\n```\na: 1\n```").yaml_text == "\na: 1\n"
    assert parse("import a: 1").yaml_text == "a: 1"


def test_import_round_trips_app_yaml() -> None:
    routing = yaml.safe_load(APP_YAML.read_text(encoding="utf-8"))["routing"]
    exported = yaml.safe_dump({"routing": routing}, sort_keys=False, allow_unicode=True)
    content = load_import(exported)
    assert ruleset_from_dict(content) == ruleset_from_dict(routing)


@pytest.mark.parametrize(("text", "says"), [
    ("a: &x [1]\nb: *x", "anchors and aliases"),
    ("[" * 50 + "]" * 50, "nests deeper"),
    ("when: 2024-02-30", "not valid YAML"),
    ("rules: [\n", "not valid YAML at line"),
    ("- 1\n- 2", "expected the `routing:` section"),
    ("queues: []\nrules: []", "at least 1 item"),
    (("queues: [{name: q, route: internal}]\nrules: [{id: a, route: page, queue: q, when: {regex: ['(?=x)']}}, "
      "{id: d, route: internal, queue: q}]"), "lookahead"),
    ("queues: [{name: q, route: internal}]\nrules: [{id: 5, route: internal, queue: q}]", "valid string"),
    (("queues: [{name: q, route: internal}]\nrules:\n  - id: a\n    route: internal\n    queue: q\n    when:\n"
      "      any: [vpn]\n      any: [wifi]\n  - {id: d, route: internal, queue: q}"),  # PyYAML kept only [wifi]
     "rules[0].when.any: duplicate key at line 8 (first at line 7)"),
    ("routing:\n  queues: []\nrouting:\n  rules: []", "routing: duplicate key at line 3 (first at line 1)"),
])
def test_import_errors_are_clear(text: str, says: str) -> None:
    with pytest.raises(CommandError) as info:
        load_import(text)
    assert says in info.value.message, info.value.message


# --- properties ----------------------------------------------------------------------------------

_WORDS = st.sampled_from(["add", "edit", "rm", "move", "test", "publish", "rollback", "import", "list", "show",
                          "replay", "export", "history", "enable", "disable", "diff", "help", "discard", "x", "fire"])
_FLAGS = st.sampled_from([f"--{n}" for n in ("route", "queue", "severity", "any", "all", "none", "regex", "before",
                                             "after", "continue", "note", "days", "page", "confirm", "version",
                                             "at", "as", "channel", "add-any", "remove-regex", "bogus")]
                         + ["—any", "--any=", "--regex=", '"', "'", "“", "”", "‘", "„", "«", "\\", "```", ","])
_PATHOLOGICAL = st.sampled_from(["(a*)*b", "(?=x)", "\\1", "(a|a)*" * 30, "[" * 40, "a{99999}", "\\p{Greek}+",
                                 "(?P<n>x)", "\\", "(?i)ß", "x" * 1100, "\ud800", "\x00"])
_TOKEN = st.one_of(_WORDS, _FLAGS, _PATHOLOGICAL, st.text(max_size=30),
                   st.lists(st.text(max_size=8), max_size=60).map(", ".join))


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(_TOKEN, max_size=25).map(" ".join))
def test_parse_never_raises_anything_but_command_error(text: str) -> None:
    try:
        result = parse(text)
    except CommandError as exc:
        assert exc.message
        return
    assert isinstance(result, Parsed)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_parse_arbitrary_unicode(text: str) -> None:
    for prefix in ("", "add a --route page --any ", "test ", "edit a --regex ", "import "):
        try:
            parse(prefix + text)
        except CommandError:
            pass


_YAML_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=12),
                         st.sampled_from(["page", "msp", "internal", "q", "(?=x)", "[", "2024-02-30", "&a", "*a"]))
_YAML_TREE = st.recursive(_YAML_SCALAR, lambda kids: st.one_of(st.lists(kids, max_size=4),
                          st.dictionaries(st.sampled_from(["queues", "rules", "id", "route", "queue", "when", "any",
                                                           "regex", "name", "routing", "continue"]), kids, max_size=5)),
                          max_leaves=25)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=300), _YAML_TREE.map(lambda t: yaml.safe_dump(t, allow_unicode=True))))
def test_import_never_crashes_and_yields_a_valid_rule_set_or_a_clear_error(text: str) -> None:
    try:
        content = load_import(text)
    except CommandError as exc:
        assert exc.message
        return
    ruleset_from_dict(content)  # what import accepts is a valid rule set
