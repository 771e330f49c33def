"""Table tests for the pure routing engine and the rule-set schema."""

from __future__ import annotations

from typing import Any

import pytest

from routing.engine import FAIL_CLOSED_RULE, classify_safely, compile_ruleset
from routing.model import Message
from routing.rules import RuleSetError, content_hash, ruleset_from_dict, ruleset_to_dict
from routing.text import padded, term_key

QUEUES = [
    {"name": "msp", "route": "msp"},
    {"name": "sec", "route": "internal"},
    {"name": "infra", "route": "internal"},
    {"name": "oncall", "route": "page"},
]


def rs(*rules: dict[str, Any], version: int = 7) -> Any:
    return ruleset_from_dict({"queues": QUEUES, "rules": [*rules, {"id": "default", "route": "msp", "queue": "msp"}]},
                             version=version)


def decide(ruleset: Any, text: str, **msg: Any) -> Any:
    return compile_ruleset(ruleset).classify(Message(text=text, **msg))


# -- text normalisation ----------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Outlook keeps CRASHING!", " outlook keeps crashing "),
        ("e-mail down", " e mail down "),
        ("Größe", " grosse "),
        ("Störung: Drucker", " storung | drucker "),
        ("down. everyone, v2.3 too", " down | everyone v2 3 too "),
        ("café déjà vu", " cafe deja vu "),
        ("isn't working", " isnt working "),
        ("our website's down, Outlook’s too", " our website s down outlook s too "),  # the word stays whole
        ("𝐑𝐀𝐍𝐒𝐎𝐌𝐖𝐀𝐑𝐄 on my screen", " ransomware on my screen "),  # "fancy" capitals fold too
        ("", "  "),
    ],
)
def test_padded_form(text: str, expected: str) -> None:
    assert padded(text) == expected


def test_term_keys() -> None:
    assert term_key("Files Encrypted") == " files encrypted "
    assert term_key("encrypt*") == " encrypt"
    with pytest.raises(ValueError):
        term_key("--")


# -- matching semantics ----------------------------------------------------------------------------

WORDS = rs({"id": "down", "route": "internal", "queue": "infra", "when": {"any": ["down", "e-mail outage"]}})


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("the server is down", "down"),
        ("DOWN since 9am", "down"),
        ("download is slow", "default"),  # word boundary: no match inside a word
        ("countdown", "default"),
        ("E-Mail outage in Berlin", "down"),
        ("email outage", "default"),  # "email" is one word, "e-mail" two
        ("down.", "down"),
        ("the server's down", "down"),
        ("𝐃𝐎𝐖𝐍 since 9am", "down"),
    ],
)
def test_word_boundaries_case_and_punctuation(text: str, rule: str) -> None:
    assert decide(WORDS, text).rule_id == rule


def test_accents_are_ignored() -> None:
    ruleset = rs({"id": "printer", "route": "msp", "queue": "msp", "when": {"any": ["drucker störung", "impresora"]}})
    assert decide(ruleset, "Drucker Störung im 2. Stock").rule_id == "printer"
    assert decide(ruleset, "drucker storung").rule_id == "printer"
    assert decide(ruleset, "la IMPRESORA no funciona").rule_id == "printer"


def test_prefix_terms() -> None:
    ruleset = rs({"id": "crypto", "route": "page", "queue": "oncall", "when": {"any": ["encrypt*"]}})
    assert decide(ruleset, "all files are encrypted").rule_id == "crypto"
    assert decide(ruleset, "Encryption happened").rule_id == "crypto"
    assert decide(ruleset, "decrypt this please").rule_id == "default"


def test_all_none_and_regex_combine() -> None:
    ruleset = rs({
        "id": "phish-clicked", "route": "page", "queue": "oncall",
        "when": {"all": ["phishing", "password"], "none": ["how do i"], "regex": [r"(entered|typed)"]},
    })
    assert decide(ruleset, "phishing page, I typed my password").rule_id == "phish-clicked"
    assert decide(ruleset, "phishing page, I typed my username").rule_id == "default"  # all fails
    assert decide(ruleset, "how do I know a phishing page asks for my password, I typed it").rule_id == "default"
    assert decide(ruleset, "phishing page asked for my password").rule_id == "default"  # regex fails


def test_a_regex_written_with_capitals_matches_the_folded_text() -> None:
    ruleset = rs({"id": "vpn-ticket", "route": "internal", "queue": "sec", "when": {"regex": [r"VPN-\d+\b"]}})
    assert decide(ruleset, "VPN-42 keeps dropping").rule_id == "vpn-ticket"  # searched as "vpn-42 keeps dropping"
    assert decide(ruleset, "the vpn keeps dropping").rule_id == "default"


def test_regex_only_rule_fires() -> None:
    ruleset = rs({"id": "locked-ext", "route": "page", "queue": "oncall", "when": {"regex": [r"\.locked\b"]}})
    d = decide(ruleset, "all my files are now report.docx.locked")
    assert d.rule_id == "locked-ext" and d.terms == (".locked",)


def test_negation_is_opt_in() -> None:
    plain = rs({"id": "r", "route": "page", "queue": "oncall", "when": {"any": ["ransomware"]}})
    aware = rs({"id": "r", "route": "page", "queue": "oncall", "ignore_negated": True, "when": {"any": ["ransomware"]}})
    assert decide(plain, "no ransomware found").rule_id == "r"
    assert decide(aware, "no ransomware found").rule_id == "default"
    assert decide(aware, "scan says it isn't ransomware").rule_id == "default"
    assert decide(aware, "it is ransomware, not a drill").rule_id == "r"
    assert decide(aware, "ransomware").rule_id == "r"
    assert decide(aware, "not sure what happened but ransomware note on screen").rule_id == "r"  # > 3 words away


def test_filters() -> None:
    ruleset = rs(
        {"id": "vip", "route": "internal", "queue": "sec", "when": {"user_groups": ["execs"]}},
        {"id": "teams-only", "route": "internal", "queue": "infra", "when": {"platforms": ["teams"], "any": ["help"]}},
        {"id": "ops-channel", "route": "internal", "queue": "infra", "when": {"channels": ["C0OPS"]}},
    )
    assert decide(ruleset, "printer", user_groups=frozenset({"execs"})).rule_id == "vip"
    assert decide(ruleset, "help", platform="teams").rule_id == "teams-only"
    assert decide(ruleset, "help", platform="slack").rule_id == "default"
    assert decide(ruleset, "anything", channel_id="C0OPS").rule_id == "ops-channel"


def test_first_match_wins_in_file_order() -> None:
    ruleset = rs(
        {"id": "first", "route": "internal", "queue": "sec", "when": {"any": ["vpn"]}},
        {"id": "second", "route": "msp", "queue": "msp", "when": {"any": ["vpn"]}},
    )
    d = decide(ruleset, "vpn broken")
    assert d.rule_id == "first" and d.matches[0].rule_id == "first" and len(d.matches) == 1


def test_page_tier_cannot_be_shadowed() -> None:
    ruleset = rs(
        {"id": "catch-security", "route": "internal", "queue": "sec", "when": {"any": ["ransomware", "security"]}},
        {"id": "ransomware", "route": "page", "queue": "oncall", "severity": "critical", "when": {"any": ["ransomware"]}},
    )
    d = decide(ruleset, "ransomware on the file server")
    assert d.route == "page" and d.rule_id == "ransomware" and d.pages


def test_continue_fans_out_and_strongest_route_wins() -> None:
    ruleset = rs(
        {"id": "audit-copy", "route": "msp", "queue": "msp", "continue": True, "when": {"any": ["laptop"]}},
        {"id": "stolen", "route": "internal", "queue": "sec", "severity": "high", "when": {"any": ["stolen"]}},
    )
    d = decide(ruleset, "my laptop was stolen")
    assert [m.rule_id for m in d.matches] == ["audit-copy", "stolen"]
    assert d.route == "internal" and d.rule_id == "stolen" and d.queues == ("sec", "msp")
    only = decide(ruleset, "laptop screen flickers")
    assert [m.rule_id for m in only.matches] == ["audit-copy", "default"] and only.route == "msp"


def test_disabled_rules_do_not_fire() -> None:
    ruleset = rs({"id": "off", "route": "internal", "queue": "sec", "enabled": False, "when": {"any": ["vpn"]}})
    assert decide(ruleset, "vpn").rule_id == "default"


def test_decision_carries_version_rule_and_why() -> None:
    d = decide(WORDS, "server down")
    assert d.ruleset_version == 7 and d.rule_id == "down" and d.terms == ("down",)
    assert 'rule down matched "down"' in d.why
    dflt = decide(WORDS, "hello")
    assert "default" in dflt.why and dflt.route == "msp"
    assert set(d.as_dict()) >= {"route", "severity", "queue", "rule", "ruleset_version", "why"}


def test_fail_closed_goes_to_in_house_triage() -> None:
    classifier = compile_ruleset(WORDS)
    bad = Message(text=None)  # type: ignore[arg-type]  # a bug upstream: text missing
    d = classify_safely(classifier, bad)
    assert d.fail_closed and d.route == "internal" and d.rule_id == FAIL_CLOSED_RULE and d.queue == "sec"


def test_many_rules_are_indexed_not_scanned() -> None:
    rules = [{"id": f"r{i}", "route": "msp", "queue": "msp", "when": {"any": [f"token{i}x"]}} for i in range(2000)]
    ruleset = rs(*rules)
    classifier = compile_ruleset(ruleset)
    assert classifier.classify(Message("please look at token1999x")).rule_id == "r1999"
    assert classifier.classify(Message("token5x and token7x")).rule_id == "r5"


# -- schema validation -----------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"id": "Bad Id", "route": "msp", "queue": "msp", "when": {"any": ["x"]}}, "rules[0].id: 'Bad Id' is not a valid id"),
        ({"id": "r", "route": "pager", "queue": "msp", "when": {"any": ["x"]}}, "rules[0].route: 'pager' is not a route"),
        ({"id": "r", "route": "msp", "queue": "nowhere", "when": {"any": ["x"]}}, "rules[0].queue: unknown queue 'nowhere'"),
        ({"id": "r", "route": "msp", "queue": "sec", "when": {"any": ["x"]}}, "belongs to route 'internal', not 'msp'"),
        ({"id": "r", "route": "msp", "queue": "msp", "severity": "meh", "when": {"any": ["x"]}}, "'meh' is not a severity"),
        ({"id": "r", "route": "msp", "queue": "msp", "when": {"regex": ["(?=x)"]}}, "lookahead/lookbehind are not supported"),
        ({"id": "r", "route": "msp", "queue": "msp", "when": {"regex": [r"(a)\1"]}}, "backreferences are not supported"),
        ({"id": "r", "route": "msp", "queue": "msp", "when": {"regex": ["a" * 2000]}}, "the limit is 1000"),
        ({"id": "r", "route": "msp", "queue": "msp", "when": {"regex": [r"café-\d+"]}},
         r"could never match: messages are matched without accents (é -> e, ß -> ss); write it as 'cafe-\\d+'"),
        ({"id": "r", "route": "msp", "queue": "msp", "when": {"any": ["!!!"]}}, "rules[0].when.any[0]: term '!!!' has no letters"),
        ({"id": "r", "route": "msp", "queue": "msp"}, "only the last (default) rule may be unconditional"),
        ({"id": "r", "route": "msp", "queue": "msp", "when": {"anyy": ["x"]}}, "rules[0].when.anyy: unknown key"),
        ({"id": "r", "route": "msp", "queue": "msp", "when": {"platforms": ["irc"]}}, "'irc' is not a platform"),
    ],
)
def test_bad_rules_are_refused_with_path_and_fix(rule: dict[str, Any], expected: str) -> None:
    with pytest.raises(RuleSetError) as info:
        rs(rule)
    assert any(expected in p for p in info.value.problems), info.value.problems


def test_duplicate_ids_and_bad_default() -> None:
    with pytest.raises(RuleSetError) as info:
        ruleset_from_dict({"queues": QUEUES, "rules": [
            {"id": "a", "route": "msp", "queue": "msp", "when": {"any": ["x"]}},
            {"id": "a", "route": "msp", "queue": "msp", "when": {"any": ["y"]}},
            {"id": "d", "route": "page", "queue": "oncall", "when": {"any": ["z"]}},
        ]})
    text = " | ".join(info.value.problems)
    assert "duplicate id 'a'" in text and "must have no `when` conditions" in text and "must not page" in text


def test_needs_an_internal_queue_and_rules() -> None:
    with pytest.raises(RuleSetError, match="route `internal`"):
        ruleset_from_dict({"queues": [{"name": "m", "route": "msp"}], "rules": [{"id": "d", "route": "msp", "queue": "m"}]})
    with pytest.raises(RuleSetError, match="rules"):
        ruleset_from_dict({"queues": QUEUES, "rules": []})
    with pytest.raises(RuleSetError):
        ruleset_from_dict(["not", "a", "mapping"])  # type: ignore[arg-type]


def test_round_trip_and_hash_are_stable() -> None:
    original = rs(
        {"id": "a", "route": "page", "queue": "oncall", "ignore_negated": True, "continue": True,
         "when": {"any": ["x"], "regex": ["y+"]}, "note": "why"},
    )
    data = ruleset_to_dict(original)
    again = ruleset_from_dict(data, version=7)
    assert again == original
    assert content_hash(data) == content_hash(ruleset_to_dict(again))
    data["rules"][0]["when"]["any"] = ["z"]
    assert content_hash(data) != content_hash(ruleset_to_dict(original))


def test_any_of_needs_one_term_from_every_group() -> None:
    ruleset = rs({
        "id": "wide-outage", "route": "page", "queue": "oncall", "ignore_negated": True,
        "when": {"any_of": [["down", "offline", "frozen"], ["everyone", "whole office", "all tills"]]},
    })
    assert decide(ruleset, "all tills are frozen").rule_id == "wide-outage"
    assert decide(ruleset, "network down for everyone").rule_id == "wide-outage"
    d = decide(ruleset, "whole office offline")
    assert d.terms == ("offline", "whole office")
    assert decide(ruleset, "my laptop is down").rule_id == "default"  # one group only
    assert decide(ruleset, "everyone says hi").rule_id == "default"
    assert decide(ruleset, "everyone: the site is not down").rule_id == "default"  # negated occurrence


def test_any_of_round_trips_and_validates() -> None:
    ruleset = rs({"id": "g", "route": "msp", "queue": "msp", "when": {"any": ["a"], "any_of": [["b"], ["c", "d*"]]}})
    assert ruleset_from_dict(ruleset_to_dict(ruleset), version=7) == ruleset
    assert decide(ruleset, "a b dx").rule_id == "g" and decide(ruleset, "b dx").rule_id == "default"
    with pytest.raises(RuleSetError, match=r"rules\[0\].when.any_of\[1\]: an empty group"):
        rs({"id": "g", "route": "msp", "queue": "msp", "when": {"any_of": [["b"], []]}})
    with pytest.raises(RuleSetError, match=r"any_of\[0\]\[0\]: term '\?\?' has no letters"):
        rs({"id": "g", "route": "msp", "queue": "msp", "when": {"any_of": [["??"]]}})


def test_sentences_bound_phrases_and_negation() -> None:
    aware = rs({"id": "r", "route": "page", "queue": "oncall", "ignore_negated": True,
                "when": {"any": ["ransom note", "down everywhere"]}})
    assert decide(aware, "not a drill: ransom note on every screen").rule_id == "r"
    assert decide(aware, "this is not a drill. ransom note on every screen").rule_id == "r"
    assert decide(aware, "no ransom note here").rule_id == "default"
    assert decide(aware, "the vpn is down. everywhere else is fine").rule_id == "default"  # no phrase across sentences
    assert decide(aware, "vpn down everywhere").rule_id == "r"
