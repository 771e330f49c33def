"""Page buttons and thread comments at the chat edges, over real HTTP.

The use cases behind them (``PageActions``, ``ThreadComments``) are ports implemented in handlers;
here they are small in-test fakes that record what the edge asked and answer a scripted outcome, so
what is asserted is the edge: parsing, the actor and event id it passes, and what reaches Slack's
``response_url`` or the Teams invoke response.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from bot.app import CORE, SLACK, TEAMS, create_app
from bot.page_cards import page_card, slack_message
from handlers.ports import ActionOutcome, Actor, ThreadMessage, ThreadOutcome
from storage.models import Ticket
from tests.fakes.bot_connector import (
    APP_ID,
    APP_PASSWORD,
    CHANNEL,
    OTHER_USER,
    USER,
    FakeBotConnector,
    card_execute,
    card_submit_value,
    channel_mention,
    channel_reply,
)
from tests.fakes.openid import FakeOpenId
from tests.fakes.slack_api import FakeSlackApi, block_actions_body
from tests.helpers import (
    BOT_TOKEN,
    SIGNING_SECRET,
    event_body,
    eventually,
    make_settings,
    signed_headers,
)

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
CARD = "application/vnd.microsoft.card.adaptive"
MESSAGE = "application/vnd.microsoft.activity.message"
UPDATED = {"text": "*Acknowledged* by Olga at 09:14.", "title": "Page: e-mail is down", "ticket": "IT-1042",
           "incident_id": 12, "actions": ["resolve", "escalate", "not_critical"]}
ACKED = ActionOutcome(ok=True, text="You acknowledged IT-1042. PagerDuty was told.", card=UPDATED)
ALREADY = ActionOutcome(ok=False, text="IT-1042 was already resolved by Sam; nothing changed.")


@dataclass
class FakePageActions:
    """In-test stand-in for the on-call use case: records calls, answers ``outcome`` (or raises ``error``)."""

    outcome: ActionOutcome = ACKED
    error: Exception | None = None
    calls: list[tuple[Actor, str, int, str]] = field(default_factory=list)

    async def act(self, *, actor: Actor, action: str, incident_id: int, event_id: str) -> ActionOutcome:
        self.calls.append((actor, action, incident_id, event_id))
        if self.error is not None:
            raise self.error
        return self.outcome


@dataclass
class FakeThreads:
    """In-test stand-in for thread comments: a ticket lives in the thread when ``handled``."""

    handled: bool = True
    messages: list[ThreadMessage] = field(default_factory=list)

    async def comment(self, message: ThreadMessage) -> ThreadOutcome:
        self.messages.append(message)
        return "comment" if self.handled else "no-ticket"


async def ticket_count(client: TestClient) -> int:
    async with client.server.app[CORE].sessionmaker() as session:
        return int((await session.execute(select(func.count()).select_from(Ticket))).scalar_one())


# --- Slack ----------------------------------------------------------------------------------------------


@dataclass
class SlackWorld:
    client: TestClient
    slack: FakeSlackApi
    actions: FakePageActions
    threads: FakeThreads

    async def press(self, action_id: str = "handoff.page.acknowledge", value: str = "12", *, rid: str = "r1",
                    **kw: Any) -> Any:
        body = block_actions_body(action_id, value, response_url=self.slack.response_url(rid), **kw)
        return await self.client.post("/slack/events", data=body, headers=signed_headers(body, content_type=FORM))

    async def event(self, body: str) -> Any:
        return await self.client.post("/slack/events", data=body, headers=signed_headers(body, content_type=JSON))


@pytest.fixture
async def slack_world(db_url: str) -> AsyncIterator[SlackWorld]:
    async with FakeSlackApi(token=BOT_TOKEN) as slack:
        settings = make_settings(db_url, SLACK_SIGNING_SECRET=SIGNING_SECRET, SLACK_BOT_TOKEN=BOT_TOKEN,
                                 SLACK_API_URL=slack.api_base)
        async with TestClient(TestServer(create_app(settings))) as client:
            edge, core = client.server.app[SLACK], client.server.app[CORE]
            assert edge.page_actions is core.page_actions and edge.threads is core.threads  # wired from Core
            world = SlackWorld(client, slack, FakePageActions(), FakeThreads())
            edge.page_actions, edge.threads = world.actions, world.threads
            yield world


async def test_slack_press_acts_then_replaces_the_card_and_tells_the_presser(slack_world: SlackWorld) -> None:
    resp = await slack_world.press(trigger_id="1726133900.1.abc")
    assert resp.status == 200 and await resp.text() == ""
    assert slack_world.actions.calls == [(Actor(platform="slack", user_id="U0ONCALL", user_name="oncall-olga",
                                                channel_id="D0ONCALL"), "acknowledge", 12, "action:1726133900.1.abc")]
    answers = await eventually(lambda: len(slack_world.slack.responses.get("r1", [])) == 2
                               and slack_world.slack.responses["r1"])
    assert answers == [
        {"replace_original": True, **slack_message(UPDATED)},
        {"response_type": "ephemeral", "replace_original": False, "text": ACKED.text},
    ]
    buttons = answers[0]["blocks"][-1]["elements"]
    assert [b["action_id"] for b in buttons] == ["handoff.page.resolve", "handoff.page.escalate",
                                                 "handoff.page.not_critical"]


async def test_slack_outcome_without_card_is_an_ephemeral_text(slack_world: SlackWorld) -> None:
    slack_world.actions.outcome = ALREADY
    assert (await slack_world.press("handoff.page.resolve")).status == 200
    answers = await eventually(lambda: slack_world.slack.responses.get("r1"))
    assert answers == [{"response_type": "ephemeral", "replace_original": False, "text": ALREADY.text}]
    assert slack_world.actions.calls[0][1:3] == ("resolve", 12)


@pytest.mark.parametrize(("action_id", "value"), [
    ("handoff.page.acknowledge", "twelve"), ("handoff.page.acknowledge", "-3"), ("handoff.page.acknowledge", ""),
    ("handoff.page.acknowledge", "9" * 40), ("handoff.page.snooze", "12"), ("someone.elses.button", "12"),
])
async def test_slack_unusable_buttons_are_acknowledged_and_ignored(
        slack_world: SlackWorld, caplog: pytest.LogCaptureFixture, action_id: str, value: str) -> None:
    caplog.set_level(logging.INFO)
    assert (await slack_world.press(action_id, value, rid="bad")).status == 200
    assert (await slack_world.press(rid="good")).status == 200  # a good press after it: its answer is the sync point
    await eventually(lambda: len(slack_world.slack.responses.get("good", [])) == 2)
    assert [c[1] for c in slack_world.actions.calls] == ["acknowledge"] and "bad" not in slack_world.slack.responses
    if action_id.startswith("handoff.page."):
        assert "slack page button" in caplog.text and "refused" in caplog.text


async def test_slack_malformed_block_actions_is_400(slack_world: SlackWorld) -> None:
    for actions in ([], "x", [1]):
        body = block_actions_body("handoff.page.acknowledge", "12", actions=actions)
        resp = await slack_world.client.post("/slack/events", data=body, headers=signed_headers(body, content_type=FORM))
        assert resp.status == 400 and "actions" in (await resp.json())["error"]
    unsigned = block_actions_body("handoff.page.acknowledge", "12")
    resp = await slack_world.client.post("/slack/events", data=unsigned, headers=signed_headers(
        unsigned, content_type=FORM, secret="another-secret"))
    assert resp.status == 401 and slack_world.actions.calls == []


async def test_slack_not_wired_says_so(slack_world: SlackWorld) -> None:
    slack_world.client.server.app[SLACK].page_actions = None
    assert (await slack_world.press()).status == 200
    [answer] = await eventually(lambda: slack_world.slack.responses.get("r1"))
    assert answer["response_type"] == "ephemeral" and "not enabled" in answer["text"]


async def test_slack_ack_does_not_wait_for_a_slow_response_url(slack_world: SlackWorld) -> None:
    assert (await slack_world.press(rid="warm")).status == 200  # bolt calls auth.test once, on the first request
    await eventually(lambda: len(slack_world.slack.responses.get("warm", [])) == 2)
    slack_world.slack.delay_next(1, 2.5)  # the next request to Slack, the response_url POST, is held 2.5 s
    started = time.monotonic()
    assert (await slack_world.press()).status == 200
    assert time.monotonic() - started < 1.5
    await eventually(lambda: len(slack_world.slack.responses.get("r1", [])) == 2, timeout=8)


async def test_slack_failed_answer_is_logged_without_the_url(slack_world: SlackWorld,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    slack_world.slack.expire_response_url("r1")
    assert (await slack_world.press()).status == 200
    await eventually(lambda: "answer to acknowledge on incident 12 failed" in caplog.text)
    assert "expired_url" in caplog.text and "the action itself is done" in caplog.text
    assert slack_world.slack.response_url("r1") not in caplog.text and BOT_TOKEN not in caplog.text
    assert len(slack_world.actions.calls) == 1


async def test_slack_act_failure_answers_503(slack_world: SlackWorld) -> None:
    slack_world.actions.error = ConnectionError("database went away")
    resp = await slack_world.press()
    assert resp.status == 503 and resp.headers.get("Retry-After") == "1"


def dm_in_thread(text: str, *, event_id: str, thread_ts: str | None = "1726133700.887259",
                 ts: str = "1726133900.000200", **kw: Any) -> str:
    extra = {"thread_ts": thread_ts} if thread_ts else {}
    return event_body(text, event_id=event_id, ts=ts, **extra, **kw)


async def test_slack_reply_in_a_ticket_thread_is_a_comment(slack_world: SlackWorld) -> None:
    assert (await slack_world.event(dm_in_thread("it works again, thanks", event_id="EvC1"))).status == 200
    assert slack_world.threads.messages == [ThreadMessage(
        platform="slack", event_id="EvC1", user_id="U0EMPLOYEE", channel_id="D0DM", thread_ref="1726133700.887259",
        text="it works again, thanks")]
    assert await ticket_count(slack_world.client) == 0


async def test_slack_reply_in_another_thread_is_a_new_request(slack_world: SlackWorld) -> None:
    slack_world.threads.handled = False
    assert (await slack_world.event(dm_in_thread("printer on floor 3 is jammed", event_id="EvC2"))).status == 200
    assert len(slack_world.threads.messages) == 1 and await ticket_count(slack_world.client) == 1
    # a top-level message (no thread_ts, or thread_ts equal to its own ts) is never a comment
    assert (await slack_world.event(dm_in_thread("monitor flickers", event_id="EvC3", thread_ts=None))).status == 200
    assert (await slack_world.event(dm_in_thread("need excel", event_id="EvC4", thread_ts="1726133900.000200")))\
        .status == 200
    assert len(slack_world.threads.messages) == 1 and await ticket_count(slack_world.client) == 3


async def test_slack_mention_in_a_thread_is_a_comment_without_the_mention(slack_world: SlackWorld) -> None:
    body = dm_in_thread("<@U0HANDOFF> any update on this?", event_id="EvC5", event_type="app_mention",
                        channel="C0GENERAL", channel_type="channel")
    assert (await slack_world.event(body)).status == 200
    [message] = slack_world.threads.messages
    assert (message.text, message.channel_id, message.thread_ref) == ("any update on this?", "C0GENERAL",
                                                                      "1726133700.887259")


# --- Teams ----------------------------------------------------------------------------------------------


@dataclass
class TeamsWorld:
    client: TestClient
    connector: FakeBotConnector
    idp: FakeOpenId
    actions: FakePageActions
    threads: FakeThreads

    async def post(self, activity: dict[str, Any]) -> Any:
        token = self.idp.token(app_id=APP_ID, service_url=self.connector.service_url)
        return await self.client.post("/api/messages", data=json.dumps(activity), headers={
            "Authorization": f"Bearer {token}", "Content-Type": "application/json"})


@pytest.fixture
async def teams_world(db_url: str) -> AsyncIterator[TeamsWorld]:
    async with FakeOpenId() as idp, FakeBotConnector(app_id=APP_ID, app_password=APP_PASSWORD) as connector:
        settings = make_settings(
            db_url, TEAMS_APP_ID=APP_ID, TEAMS_APP_PASSWORD=APP_PASSWORD, TEAMS_OPENID_URL=idp.metadata_url,
            TEAMS_OAUTH_URL=connector.token_url(), TEAMS_CONNECTOR_URL=connector.service_url,
        )
        settings.delivery.poll_interval_seconds = 0.05
        async with TestClient(TestServer(create_app(settings))) as client:
            bot, core = client.server.app[TEAMS].bot, client.server.app[CORE]
            assert bot.page_actions is core.page_actions and bot.threads is core.threads  # wired from Core
            world = TeamsWorld(client, connector, idp, FakePageActions(), FakeThreads())
            bot.page_actions, bot.threads = world.actions, world.threads
            yield world


async def test_teams_execute_acts_and_answers_with_the_updated_card(teams_world: TeamsWorld) -> None:
    url = teams_world.connector.service_url
    activity = card_execute(url, "handoff.page.acknowledge", {"incident_id": 12}, personal=True)
    resp = await teams_world.post(activity)
    assert resp.status == 200
    assert await resp.json() == {"statusCode": 200, "type": CARD, "value": page_card(UPDATED)}
    [(actor, action, incident, event_id)] = teams_world.actions.calls
    assert actor == Actor(platform="teams", user_id=USER["aadObjectId"], user_name=USER["name"],
                          channel_id=activity["conversation"]["id"])
    assert (action, incident) == ("acknowledge", 12) and event_id.startswith(activity["id"] + "@")


async def test_teams_outcome_without_card_is_a_message(teams_world: TeamsWorld) -> None:
    teams_world.actions.outcome = ALREADY
    resp = await teams_world.post(card_execute(teams_world.connector.service_url, "handoff.page.resolve",
                                               {"incident_id": "12"}))
    assert await resp.json() == {"statusCode": 200, "type": MESSAGE, "value": ALREADY.text}
    [(actor, action, incident, _)] = teams_world.actions.calls
    assert (actor.user_id, actor.channel_id, action, incident) == (OTHER_USER["aadObjectId"], CHANNEL, "resolve", 12)


@pytest.mark.parametrize(("verb", "data"), [
    ("handoff.page.acknowledge", {"incident_id": "abc"}), ("handoff.page.acknowledge", {}),
    ("handoff.page.acknowledge", {"incident_id": True}), ("handoff.page.acknowledge", "12"),
    ("handoff.page.reboot", {"incident_id": 12}),
])
async def test_teams_malformed_page_action_is_a_400_invoke_answer(teams_world: TeamsWorld, verb: str,
                                                                  data: Any) -> None:
    resp = await teams_world.post(card_execute(teams_world.connector.service_url, verb, data))
    assert resp.status == 200  # the HTTP answer is 200; the invoke's own status says 400
    body = await resp.json()
    assert body["statusCode"] == 400 and body["type"] == "application/vnd.microsoft.error"
    assert body["value"]["code"] == "BadRequest" and teams_world.actions.calls == []


async def test_teams_other_card_actions_are_received_as_before(teams_world: TeamsWorld) -> None:
    resp = await teams_world.post(card_execute(teams_world.connector.service_url, "vote", {"choice": 1}))
    assert await resp.json() == {"statusCode": 200, "type": MESSAGE, "value": "Received."}
    assert teams_world.actions.calls == []


async def test_teams_not_wired_says_so(teams_world: TeamsWorld) -> None:
    teams_world.client.server.app[TEAMS].bot.page_actions = None
    resp = await teams_world.post(card_execute(teams_world.connector.service_url, "handoff.page.escalate",
                                               {"incident_id": 12}))
    body = await resp.json()
    assert body["type"] == MESSAGE and "not enabled" in body["value"]


async def test_teams_submit_fallback_acts_and_replies_once(teams_world: TeamsWorld) -> None:
    url = teams_world.connector.service_url
    activity = card_submit_value(url, {"verb": "handoff.page.not_critical", "incident_id": 12})
    assert (await teams_world.post(activity)).status == 200
    assert (await teams_world.post(activity)).status == 200  # Teams retries: one reply
    [reply] = await eventually(lambda: teams_world.connector.replies)
    assert reply.reply_to_id == activity["id"] and ACKED.text in reply.activity["text"]
    assert [c[1:3] for c in teams_world.actions.calls] == [("not_critical", 12)] * 2  # the port dedupes by event id
    assert teams_world.actions.calls[0][3] == teams_world.actions.calls[1][3]
    other = card_submit_value(url, {"key": "value"})  # another card's submit: ignored as before
    assert (await teams_world.post(other)).status == 200 and len(teams_world.actions.calls) == 2
    broken = card_submit_value(url, {"verb": "handoff.page.resolve", "incident_id": "x"})
    assert (await teams_world.post(broken)).status == 200 and len(teams_world.actions.calls) == 2


async def test_teams_reply_in_a_ticket_thread_is_a_comment(teams_world: TeamsWorld) -> None:
    url = teams_world.connector.service_url
    reply = channel_reply(url, "still broken on floor 3", root_id="1571691217999")
    assert (await teams_world.post(reply)).status == 200
    [message] = teams_world.threads.messages
    assert message == ThreadMessage(platform="teams", event_id=message.event_id, user_id=OTHER_USER["aadObjectId"],
                                    channel_id=CHANNEL, thread_ref="1571691217999", text="still broken on floor 3",
                                    user_name=OTHER_USER["name"])
    assert message.event_id.startswith(reply["id"] + "@") and await ticket_count(teams_world.client) == 0


async def test_teams_thread_without_ticket_falls_back_to_today(teams_world: TeamsWorld) -> None:
    url = teams_world.connector.service_url
    teams_world.threads.handled = False
    assert (await teams_world.post(channel_reply(url, "me too", root_id="1571691217999"))).status == 200
    assert await ticket_count(teams_world.client) == 0  # not mentioned: ignored, as before
    mentioned = channel_reply(url, "printer on floor 3 is jammed", root_id="1571691217999", mention=True)
    assert (await teams_world.post(mentioned)).status == 200
    assert await ticket_count(teams_world.client) == 1 and len(teams_world.threads.messages) == 2
    root = channel_mention(url, "monitor flickers")  # the root post of a thread is never a comment
    assert (await teams_world.post(root)).status == 200
    assert await ticket_count(teams_world.client) == 2 and len(teams_world.threads.messages) == 2
