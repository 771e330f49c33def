"""Teams message shapes: parsing inbound activities, mention stripping, outbound cards and markdown."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.teams_cards import BadActivity, parse_activity, reply_activity, strip_mentions, teams_markdown
from tests.fakes.bot_connector import (
    BOT,
    CHANNEL,
    PERSONAL_CONVERSATION,
    TENANT,
    USER,
    bot_added_to_team,
    card_submit,
    channel_mention,
    personal_message,
)

URL = "https://smba.trafficmanager.net/amer/"


def test_personal_message() -> None:
    act = parse_activity(personal_message(URL, "file", activity_id="1571691217375"))
    assert (act.type, act.id, act.text, act.conversation_type) == ("message", "1571691217375", "file", "personal")
    assert act.user_id == USER["aadObjectId"] and act.tenant_id == TENANT and act.bot_id == BOT["id"]
    assert act.reply_target() == {
        "service_url": URL, "conversation_id": PERSONAL_CONVERSATION, "reply_to_id": "1571691217375",
        "tenant_id": TENANT, "channel_id": "msteams", "conversation_type": "personal", "bot": BOT,
        "user": {"id": USER["id"], "name": USER["name"], "aad_object_id": USER["aadObjectId"]},
    }
    assert "reply_to_id" not in act.reference()


def test_channel_mention_is_removed_via_the_entity() -> None:
    act = parse_activity(channel_mention(URL, "1", activity_id="1571537152320", mention_name="My Combined"))
    assert act.text == "1" and act.bot_mentioned and act.team_channel_id == CHANNEL
    assert act.base_conversation_id == CHANNEL and act.reference()["conversation_id"] == CHANNEL
    assert act.conversation_id.endswith(";messageid=1571537152320")


def test_event_id_is_scoped_to_the_conversation() -> None:
    one = parse_activity(personal_message(URL, "x", activity_id="1"))
    two = parse_activity(personal_message(URL, "x", activity_id="1", conversation_id="a:other"))
    assert one.event_id != two.event_id and one.event_id.startswith("1@")
    assert one.event_id == parse_activity(personal_message(URL, "y", activity_id="1")).event_id


@pytest.mark.parametrize(
    ("text", "entities", "expected"),
    [
        ("<at>handoff</at> printer jammed", [{"type": "mention", "text": "<at>handoff</at>",
                                             "mentioned": {"id": BOT["id"], "name": "handoff"}}],
         ("printer jammed", True)),
        ("ask <at>Alex</at> about <at>handoff</at>&nbsp;vpn &amp; wifi",
         [{"type": "mention", "text": "<at>Alex</at>", "mentioned": {"id": "29:alex", "name": "Alex"}},
          {"type": "Mention", "text": "<at>handoff</at>", "mentioned": {"id": BOT["id"]}}],
         ("ask Alex about vpn &amp; wifi", True)),
        ("&lt;!channel&gt; <b>bold</b> a&b", [], ("&lt;!channel&gt; &lt;b&gt;bold&lt;/b&gt; a&amp;b", False)),
        ("<at>handoff</at>", [{"type": "mention", "text": "<at>handoff</at>", "mentioned": {"id": BOT["id"]}}],
         ("", True)),
        ("no mention here", None, ("no mention here", False)),
        ("<at>handoff</at> x", [{"type": "mention"}, "junk", {"type": "mention", "mentioned": "x"}],
         ("handoff x", False)),
        ("line one\r\n\r\n  line   two ", [], ("line one\nline two", False)),
    ],
)
def test_strip_mentions(text: str, entities: Any, expected: tuple[str, bool]) -> None:
    assert strip_mentions(text, entities, BOT["id"]) == expected


@given(st.text(max_size=200), st.lists(st.dictionaries(st.sampled_from(["type", "text", "mentioned"]),
                                                       st.one_of(st.text(max_size=20), st.integers(),
                                                                 st.dictionaries(st.just("id"), st.text(max_size=5))),
                                                       max_size=3), max_size=3))
def test_strip_mentions_never_fails(text: str, entities: list[dict[str, Any]]) -> None:
    out, _ = strip_mentions(text, entities, "28:bot")
    assert isinstance(out, str) and out == out.strip()


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300)
@given(st.dictionaries(st.sampled_from(["type", "id", "serviceUrl", "channelId", "conversation", "from",
                                        "recipient", "text", "entities", "channelData", "membersAdded", "value"]),
                       _json, max_size=12))
def test_parse_activity_only_raises_bad_activity(body: dict[str, Any]) -> None:
    try:
        parse_activity(body)
    except BadActivity:
        pass


@given(st.sampled_from(["type", "serviceUrl", "channelId", "conversation", "from", "recipient", "id"]))
def test_required_fields(field: str) -> None:
    body = personal_message(URL, "x")
    del body[field]
    with pytest.raises(BadActivity):
        parse_activity(body)


def test_other_shapes() -> None:
    submit = parse_activity(card_submit(URL))
    assert submit.has_value and submit.text == ""
    added = parse_activity(bot_added_to_team(URL))
    assert added.members_added == (BOT["id"],) and added.team_channel_id is None
    assert added.reference()["conversation_id"] == CHANNEL
    typing = parse_activity({**personal_message(URL, ""), "type": "typing", "id": None})
    assert typing.id == ""


def test_ticket_reply_is_an_adaptive_card() -> None:
    payload = {"service_url": URL, "conversation_id": "a:1", "reply_to_id": "9", "ticket": "IT-1001",
               "text": "This looks critical. Ticket IT-1001 is with in-house IT.\nWhy: Queue oncall; ransomware."
                       "\n:warning: I removed a password from your message.", "blocks": [{"type": "section"}]}
    activity = reply_activity(payload)
    assert activity["replyToId"] == "9" and activity["summary"].startswith("This looks critical")
    card = activity["attachments"][0]["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    texts = [b.get("text") for b in card["body"]]
    assert texts[0] == "This looks critical. Ticket IT-1001 is with in-house IT."
    assert "Why: Queue oncall; ransomware." in texts
    warning = card["body"][-1]
    assert warning["color"] == "Attention" and warning["text"].startswith("\u26a0\ufe0f I removed a password")
    assert "blocks" not in json.dumps(activity)


def test_command_answers_are_teams_markdown() -> None:
    text = "*handoff* routes IT requests.\n• `/handoff <your request>`: open a ticket\n• keep a*b*c and 2 * 3 * 4"
    assert teams_markdown(text) == ("**handoff** routes IT requests.\n\n• `/handoff <your request>`: open a ticket"
                                    "\n\n• keep a*b*c and 2 * 3 * 4")
    activity = reply_activity({"conversation_id": "a:1", "text": text})
    assert activity["textFormat"] == "markdown" and "attachments" not in activity and "replyToId" not in activity


def test_botbuilder_activity_carries_what_botbuilder_and_handlers_use() -> None:
    from botbuilder.core import TurnContext

    from bot.teams import bot_activity

    body = card_submit(URL)
    activity = bot_activity(parse_activity(body), body)
    assert (activity.type, activity.id, activity.channel_id, activity.service_url) == (
        "message", "f:6208521873967276741", "msteams", URL)
    assert activity.value == {"key": "value", "x": "herocard"} and activity.reply_to_id == body["replyToId"]
    assert activity.channel_data["tenant"]["id"] == TENANT
    reference = TurnContext.get_conversation_reference(activity)
    assert reference.conversation.id == body["conversation"]["id"] and reference.conversation.tenant_id == TENANT
    assert reference.user.aad_object_id == body["from"]["aadObjectId"] and reference.bot.id == BOT["id"]
    odd = {**personal_message(URL, "hi"), "locale": 7, "replyToId": ["x"]}
    lean = bot_activity(parse_activity(odd), odd)
    assert lean.locale is None and lean.reply_to_id is None and lean.text == "hi"
