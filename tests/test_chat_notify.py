"""``chat.notify``: a neutral row rendered as Block Kit for Slack or an Adaptive Card for Teams, and delivered.

The exact shapes are asserted here (they are the contract with what the page-button edges read back);
delivery goes over real HTTP to the fake Slack Web API and the fake Bot Connector.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.app import CORE, create_app
from bot.connectors import SlackWebConnector
from bot.connectors.notify import ChatNotifyConnector, user_reference_key
from bot.connectors.teams import BotTokenProvider, TeamsConnector
from bot.page_cards import card_action, page_card, slack_action, slack_message
from handlers.notify import notify_row
from storage import service
from storage.models import OutboxRow
from tests.fakes import FakeSlackApi
from tests.fakes.bot_connector import (
    APP_ID,
    APP_PASSWORD,
    BOT,
    CHANNEL,
    PERSONAL_CONVERSATION,
    TENANT,
    USER,
    FakeBotConnector,
)
from tests.fakes.slack_api import block_errors
from tests.helpers import BOT_TOKEN, eventually, make_settings

SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
CARD = "application/vnd.microsoft.card.adaptive"
ONCALL = "U0ONCALL"
AAD = USER["aadObjectId"]
_, PAGE = notify_row(platform="slack", user=ONCALL, title="Page: e-mail is down",
                     text="*40 people* report e-mail is down & Outlook says <disconnected>.", ticket="IT-1042",
                     incident_id=12, actions=["acknowledge", "resolve", "escalate", "not_critical"])


# --- rendering ---------------------------------------------------------------------------------------

def test_slack_page_message_shape() -> None:
    assert slack_message(PAGE) == {
        "text": "Page: e-mail is down: *40 people* report e-mail is down & Outlook says <disconnected>.",
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": "*Page: e-mail is down*\n*40 people* report e-mail "
                                                                  "is down & Outlook says <disconnected>."}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "Ticket *IT-1042*"}]},
            {"type": "actions", "block_id": "handoff.page.12", "elements": [
                {"type": "button", "action_id": "handoff.page.acknowledge", "value": "12", "style": "primary",
                 "text": {"type": "plain_text", "text": "Acknowledge"}},
                {"type": "button", "action_id": "handoff.page.resolve", "value": "12",
                 "text": {"type": "plain_text", "text": "Resolve"}},
                {"type": "button", "action_id": "handoff.page.escalate", "value": "12",
                 "text": {"type": "plain_text", "text": "Escalate"}},
                {"type": "button", "action_id": "handoff.page.not_critical", "value": "12", "style": "danger",
                 "text": {"type": "plain_text", "text": "Not critical"}},
            ]},
        ],
    }
    assert block_errors(slack_message(PAGE)["blocks"]) == []


def test_slack_here_and_no_buttons() -> None:
    _, row = notify_row(platform="slack", channel="C0ONCALL", text="Nobody acknowledged IT-1042.", mention_here=True,
                        incident_id=12, actions=["acknowledge", "snooze"])
    message = slack_message(row)
    assert message["text"].startswith("<!here> Nobody") and message["blocks"][0]["text"]["text"].startswith("<!here> ")
    assert [e["action_id"] for e in message["blocks"][-1]["elements"]] == ["handoff.page.acknowledge"]
    plain = slack_message({"to": row["to"], "text": "Resolved.", "incident_id": 12})  # no actions: no buttons
    assert [b["type"] for b in plain["blocks"]] == ["section"]
    long = slack_message({"text": "x" * 5000, "incident_id": 12, "actions": ["resolve"]})
    assert len(long["blocks"][0]["text"]["text"]) == 3000 and block_errors(long["blocks"]) == []


def test_teams_page_card_shape() -> None:
    def execute(verb: str, title: str, **style: str) -> dict[str, Any]:
        return {"type": "Action.Execute", "title": title, "verb": f"handoff.page.{verb}", "data": {"incident_id": 12},
                "fallback": {"type": "Action.Submit", "title": title,
                             "data": {"verb": f"handoff.page.{verb}", "incident_id": 12}}, **style}

    assert page_card({**PAGE, "mention_here": True}) == {
        "type": "AdaptiveCard", "$schema": SCHEMA, "version": "1.4",
        "body": [
            {"type": "TextBlock", "text": "\U0001f514 Everyone in this channel: please look at this now.", "wrap": True,
             "weight": "Bolder", "color": "Attention"},
            {"type": "TextBlock", "text": "Page: e-mail is down", "wrap": True, "weight": "Bolder", "size": "Medium"},
            {"type": "TextBlock", "text": "**40 people** report e-mail is down & Outlook says <disconnected>.",
             "wrap": True},
            {"type": "FactSet", "facts": [{"title": "Ticket", "value": "IT-1042"}]},
        ],
        "actions": [execute("acknowledge", "Acknowledge", style="positive"), execute("resolve", "Resolve"),
                    execute("escalate", "Escalate"), execute("not_critical", "Not critical", style="destructive")],
    }
    assert "actions" not in page_card({"text": "Resolved by Olga.", "incident_id": 12})


def test_buttons_read_back_what_was_rendered() -> None:
    for button in slack_message(PAGE)["blocks"][-1]["elements"]:
        press = slack_action(button)
        assert press is not None and press.incident_id == 12 and button["action_id"].endswith(press.action)
    for action in page_card(PAGE)["actions"]:
        invoke = card_action({"action": {k: action[k] for k in ("type", "verb", "data")}, "trigger": "manual"})
        submit = card_action(action["fallback"]["data"])
        assert invoke == submit and invoke is not None and invoke.incident_id == 12


# --- delivery ----------------------------------------------------------------------------------------

@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def lookup_for(sessionmaker: async_sessionmaker[AsyncSession]) -> Any:
    async def lookup(key: str) -> dict[str, Any] | None:
        async with sessionmaker() as session:
            ref = await service.get_conversation_ref(session=session, platform="teams", key=key)
        return None if ref is None else {"service_url": ref.service_url, "conversation_id": ref.conversation_id,
                                         "reference": dict(ref.reference)}
    return lookup


async def store_ref(sessionmaker: async_sessionmaker[AsyncSession], key: str, kind: str, service_url: str,
                    conversation_id: str, **extra: Any) -> None:
    reference = {"service_url": service_url, "conversation_id": conversation_id, "tenant_id": TENANT,
                 "channel_id": "msteams", "conversation_type": "personal" if kind == "user" else "channel",
                 "bot": dict(BOT), **extra}
    async with sessionmaker.begin() as session:
        await service.upsert_conversation_ref(session=session, platform="teams", key=key, kind=kind,
                                              service_url=service_url, conversation_id=conversation_id,
                                              reference=reference, now=datetime.now(UTC), tenant_id=TENANT)


async def test_slack_dm_is_posted_with_blocks(http: aiohttp.ClientSession) -> None:
    async with FakeSlackApi(token=BOT_TOKEN) as slack:
        notify = ChatNotifyConnector(slack=SlackWebConnector(session=http, token=BOT_TOKEN, base_url=slack.api_base),
                                     teams=None, lookup=None)
        result = await notify.deliver(payload=PAGE, idempotency_key="notify:12:dm")
        [post] = slack.posts
        assert post["channel"] == ONCALL  # a DM: Slack posts it in the app's DM with that user
        assert {k: post[k] for k in ("text", "blocks")} == slack_message(PAGE)
        assert slack.calls("chat.postMessage")[0].header("Authorization") == f"Bearer {BOT_TOKEN}"
        assert result.ok and result.remote_id == post["ts"]


async def test_slack_channel_errors_are_classified(http: aiohttp.ClientSession) -> None:
    _, row = notify_row(platform="slack", channel="C0ONCALL", text="page", mention_here=True)
    async with FakeSlackApi(token=BOT_TOKEN, channels={"C0OTHER"}) as slack:
        notify = ChatNotifyConnector(slack=SlackWebConnector(session=http, token=BOT_TOKEN, base_url=slack.api_base),
                                     teams=None, lookup=None)
        missing = await notify.deliver(payload=row, idempotency_key="k")
        assert (missing.ok, missing.retryable) == (False, False) and "channel_not_found" in missing.detail
        slack.ratelimit_next(1, retry_after=3)
        limited = await notify.deliver(payload=row, idempotency_key="k")
        assert (limited.retryable, limited.retry_after) == (True, 3.0)


async def test_teams_dm_uses_the_stored_reference_and_sends_the_card(
        http: aiohttp.ClientSession, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    async with FakeBotConnector(app_id=APP_ID, app_password=APP_PASSWORD) as connector:
        await store_ref(sessionmaker, f"user:{AAD}", "user", connector.service_url, PERSONAL_CONVERSATION,
                        user={"id": USER["id"], "name": USER["name"], "aad_object_id": AAD})
        tokens = BotTokenProvider(session=http, app_id=APP_ID, app_password=SecretStr(APP_PASSWORD),
                                  token_url=connector.token_url())
        teams = TeamsConnector(session=http, tokens=tokens, service_url_prefixes=[connector.service_url])
        notify = ChatNotifyConnector(slack=None, teams=teams, lookup=lookup_for(sessionmaker))
        _, row = notify_row(platform="teams", user=AAD, title="Page: e-mail is down", text="40 reports",
                            ticket="IT-1042", incident_id=12, actions=["acknowledge", "resolve"])
        result = await notify.deliver(payload=row, idempotency_key="notify:12:teams")
        [sent] = connector.sends
        assert result.ok and result.remote_id and result.remote_id.startswith("1:")
        assert sent.conversation_id == PERSONAL_CONVERSATION and sent.reply_to_id is None
        assert sent.authorization == f"Bearer {connector.issued[0]}"
        assert sent.activity == {
            "type": "message", "channelId": "msteams",
            "conversation": {"id": PERSONAL_CONVERSATION, "tenantId": TENANT}, "from": BOT,
            "recipient": {"id": USER["id"], "name": USER["name"]},
            "channelData": {"notification": {"alert": True}}, "summary": "Page: e-mail is down",
            "attachments": [{"contentType": CARD, "content": page_card(row)}],
        }


async def test_teams_channel_post_and_missing_reference(
        http: aiohttp.ClientSession, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    async with FakeBotConnector(require_auth=False) as connector:
        teams = TeamsConnector(session=http, tokens=None, service_url_prefixes=[connector.service_url])
        notify = ChatNotifyConnector(slack=None, teams=teams, lookup=lookup_for(sessionmaker))
        _, row = notify_row(platform="teams", channel=CHANNEL, text="Nobody acknowledged.", mention_here=True,
                            incident_id=12, actions=["acknowledge"])
        missing = await notify.deliver(payload=row, idempotency_key="k")
        assert (missing.ok, missing.retryable) == (False, False)
        assert f"no Teams conversation reference for channel {CHANNEL}" in missing.detail
        _, dm = notify_row(platform="teams", user="someone-new", text="hi")
        no_dm = await notify.deliver(payload=dm, idempotency_key="k")
        assert not no_dm.retryable and "must message the bot once" in no_dm.detail
        assert connector.sends == []

        await store_ref(sessionmaker, f"channel:{CHANNEL}", "channel", connector.service_url, CHANNEL)
        assert (await notify.deliver(payload=row, idempotency_key="k")).ok
        [sent] = connector.sends
        assert sent.conversation_id == CHANNEL and "recipient" not in sent.activity
        assert "channelData" not in sent.activity  # the alert flag is for 1:1 chats only
        assert sent.activity["attachments"][0]["content"]["body"][0]["color"] == "Attention"


async def test_unconfigured_platforms_bad_rows_and_console() -> None:
    notify = ChatNotifyConnector(slack=None, teams=None, lookup=None)
    for platform, says in (("slack", "Slack is not configured"), ("teams", "Teams is not configured")):
        _, row = notify_row(platform=platform, user="U1", text="page")
        result = await notify.deliver(payload=row, idempotency_key="k")
        assert (result.ok, result.retryable) == (False, False) and says in result.detail
    for bad in ({"text": "x"}, {"to": {"platform": "slack"}, "text": "x"},
                {"to": {"platform": "slack", "user": "U1", "channel": "C1"}, "text": "x"},
                {"to": {"platform": "irc", "user": "U1"}, "text": "x"}):
        result = await notify.deliver(payload=bad, idempotency_key="k")
        assert (result.ok, result.retryable) == (False, False) and result.detail.startswith("invalid row:")
    _, console = notify_row(platform="console", user="console-user", text="You are on call")
    result = await notify.deliver(payload=console, idempotency_key="k")
    assert result.ok and "recorded locally" in result.detail


async def test_reference_lookup_failure_is_retryable(http: aiohttp.ClientSession) -> None:
    async def broken(key: str) -> dict[str, Any] | None:
        raise ConnectionError("database down")

    teams = TeamsConnector(session=http, tokens=None, service_url_prefixes=["https://smba.trafficmanager.net/"])
    _, row = notify_row(platform="teams", user=AAD, text="x")
    result = await ChatNotifyConnector(slack=None, teams=teams, lookup=broken).deliver(payload=row, idempotency_key="k")
    assert (result.ok, result.retryable) == (False, True) and "ConnectionError" in result.detail
    assert user_reference_key(AAD) == f"user:{AAD}" and user_reference_key("x" * 300).startswith("user:sha256:")


async def test_worker_delivers_and_dead_letters_chat_notify(db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """Through the app: a Slack DM is delivered; a Teams DM without a reference is dead and the admins are told."""
    caplog.set_level(logging.DEBUG)
    async with FakeSlackApi(token=BOT_TOKEN) as slack, FakeBotConnector(app_id=APP_ID, app_password=APP_PASSWORD) \
            as connector:
        settings = make_settings(db_url, SLACK_SIGNING_SECRET="s" * 32, SLACK_BOT_TOKEN=BOT_TOKEN,
                                 SLACK_API_URL=slack.api_base, TEAMS_APP_ID=APP_ID, TEAMS_APP_PASSWORD=APP_PASSWORD,
                                 TEAMS_OAUTH_URL=connector.token_url(), TEAMS_CONNECTOR_URL=connector.service_url)
        settings.admins.alert_slack_channel = "C0ADMINS"
        settings.delivery.poll_interval_seconds = 0.05
        async with TestClient(TestServer(create_app(settings))) as client:
            core = client.server.app[CORE]
            _, teams_row = notify_row(platform="teams", user="aad-of-someone-new", text="You are on call", incident_id=3,
                                      actions=["acknowledge"])
            async with core.sessionmaker.begin() as session:
                for key, payload in (("n:1", PAGE), ("n:2", teams_row)):
                    await service.enqueue(session=session, kind="chat.notify", payload=payload, now=datetime.now(UTC),
                                          idempotency_key=key)
            core.worker.wake()
            await eventually(lambda: slack.posts_to(ONCALL) and slack.posts_to("C0ADMINS"))
            [alert] = slack.posts_to("C0ADMINS")
            assert "(chat.notify)" in alert["text"] and "no Teams conversation reference for user" in alert["text"]
            assert slack.posts_to(ONCALL)[0]["blocks"] == slack_message(PAGE)["blocks"]
            rows: list[OutboxRow] = []
            for _ in range(100):
                async with core.sessionmaker() as session:
                    rows = list(await service.list_outbox(session=session, limit=10, kind="chat.notify"))
                if {r.status for r in rows} == {"delivered", "dead"}:
                    break
                await asyncio.sleep(0.02)
            assert sorted((r.idempotency_key, r.status) for r in rows) == [("n:1", "delivered"), ("n:2", "dead")]
            assert connector.sends == []
    assert BOT_TOKEN not in caplog.text and APP_PASSWORD not in caplog.text
