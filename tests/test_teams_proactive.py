"""In-house notifications and dead-letter alerts posted proactively to Teams channels."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from bot.app import CORE, create_app
from bot.connectors import LocalSink
from bot.connectors.teams import (
    FanOut,
    TeamsChannelPoster,
    TeamsConnector,
    reference_keys,
)
from bot.connectors_setup import ChannelPoster, build_connectors
from handlers.ports import DeliveryResult
from storage import service
from storage.models import OutboxRow, Ticket
from tests.fakes.bot_connector import (
    APP_ID,
    APP_PASSWORD,
    BOT,
    CHANNEL,
    TENANT,
    FakeBotConnector,
    Posted,
    bot_added_to_team,
    channel_mention,
    personal_message,
)
from tests.fakes.msp import FakeMsp
from tests.fakes.openid import FakeOpenId
from tests.helpers import eventually, make_settings

ALERTS = "19:a1e7c0ffee5c4f3b9d2e8f00aa11bb22@thread.tacv2"
INTERNAL_TEXT = "disk is full on the SQL server"


@dataclass
class World:
    client: TestClient
    connector: FakeBotConnector
    idp: FakeOpenId
    msp: FakeMsp

    async def post(self, activity: dict[str, Any]) -> None:
        token = self.idp.token(app_id=APP_ID, service_url=self.connector.service_url)
        resp = await self.client.post("/api/messages", data=json.dumps(activity), headers={
            "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        assert resp.status == 200

    async def rows(self, kind: str) -> list[OutboxRow]:
        async with self.client.server.app[CORE].sessionmaker() as session:
            return list((await session.execute(select(OutboxRow).where(OutboxRow.kind == kind))).scalars())

    async def wait_row(self, kind: str, check: Any, timeout: float = 5) -> OutboxRow:
        deadline = asyncio.get_running_loop().time() + timeout
        rows: list[OutboxRow] = []
        while asyncio.get_running_loop().time() < deadline:
            rows = await self.rows(kind)
            if rows and check(rows[0]):
                return rows[0]
            await asyncio.sleep(0.02)
        raise AssertionError(f"{kind} row not as expected: {[(r.status, r.attempts, r.last_error) for r in rows]}")

    async def has_ref(self, key: str) -> None:
        async def stored() -> bool:
            async with self.client.server.app[CORE].sessionmaker() as session:
                return await service.get_conversation_ref(session=session, platform="teams", key=key) is not None
        deadline = asyncio.get_running_loop().time() + 5
        while not await stored():
            assert asyncio.get_running_loop().time() < deadline, f"reference {key} never stored"
            await asyncio.sleep(0.02)

    def sends_to(self, conversation: str) -> list[Posted]:
        return [p for p in self.connector.sends if p.conversation_id == conversation]


def mention_in(service_url: str, channel: str, text: str) -> dict[str, Any]:
    """A channel @mention in another channel than the fake's default one."""
    body = json.loads(json.dumps(channel_mention(service_url, text)).replace(CHANNEL, channel))
    assert body["channelData"]["teamsChannelId"] == channel
    return body


@pytest.fixture
async def world(db_url: str) -> AsyncIterator[World]:
    async with FakeOpenId() as idp, FakeBotConnector(app_id=APP_ID, app_password=APP_PASSWORD) as connector, \
            FakeMsp() as msp:
        settings = make_settings(
            db_url, TEAMS_APP_ID=APP_ID, TEAMS_APP_PASSWORD=APP_PASSWORD, TEAMS_OPENID_URL=idp.metadata_url,
            TEAMS_OAUTH_URL=connector.token_url(), TEAMS_CONNECTOR_URL=connector.service_url,
            HANDOFF_MSP_URL=msp.tickets_url,
        )
        settings.internal.teams_channel = CHANNEL
        settings.admins.alert_teams_channel = ALERTS
        settings.delivery.backoff_base_seconds = 0.01
        settings.delivery.backoff_cap_seconds = 0.1
        settings.delivery.max_attempts = 100
        settings.delivery.poll_interval_seconds = 0.05
        async with TestClient(TestServer(create_app(settings))) as client:
            yield World(client, connector, idp, msp)


async def test_internal_ticket_is_posted_to_the_teams_channel(world: World) -> None:
    url = world.connector.service_url
    await world.post(bot_added_to_team(url))  # the app is installed in the team: General's reference
    await world.has_ref(f"channel:{CHANNEL}")
    await world.post(personal_message(url, INTERNAL_TEXT))

    [post] = await eventually(lambda: world.sends_to(CHANNEL))
    async with world.client.server.app[CORE].sessionmaker() as session:
        [ticket] = list((await session.execute(select(Ticket))).scalars())
    assert ticket.route == "internal"
    activity = post.activity
    assert post.reply_to_id is None  # a new post in the channel, not a thread reply
    assert post.raw_path == "/v3/conversations/19%3A097e6717fd7245bdbeba6baa13840db8%40thread.skype/activities"
    assert post.authorization == f"Bearer {world.connector.issued[0]}"
    assert activity["textFormat"] == "markdown" and "attachments" not in activity
    assert activity["text"].startswith("New in-house ticket IT-") and INTERNAL_TEXT in activity["text"]
    assert "Why:" in activity["text"]
    assert activity["conversation"] == {"id": CHANNEL, "tenantId": TENANT} and activity["from"] == BOT
    assert "recipient" not in activity
    row = await world.wait_row("internal", lambda r: r.status == "delivered")
    assert row.remote_id and row.remote_id.startswith("1:") and row.attempts == 1
    await eventually(lambda: world.connector.replies)  # the requester still gets the reply card


async def test_missing_reference_is_retried_until_the_bot_is_mentioned(world: World) -> None:
    url = world.connector.service_url
    await world.post(personal_message(url, INTERNAL_TEXT))
    row = await world.wait_row("internal", lambda r: r.attempts >= 2)
    assert row.status == "pending"
    assert row.last_error is not None and f"no conversation reference yet for Teams channel {CHANNEL}" in \
        row.last_error and "@mention the bot in that channel once" in row.last_error
    assert world.sends_to(CHANNEL) == []

    await world.post(channel_mention(url, "help"))  # someone @mentions the bot in the channel
    [post] = await eventually(lambda: world.sends_to(CHANNEL))
    assert post.activity["text"].startswith("New in-house ticket")
    row = await world.wait_row("internal", lambda r: r.status == "delivered")
    assert row.attempts >= 3


async def test_dead_msp_row_alert_reaches_the_alert_channel(world: World) -> None:
    url = world.connector.service_url
    await world.post(mention_in(url, ALERTS, "help"))
    await world.has_ref(f"channel:{ALERTS}")
    world.msp.fail_next(1, status=422, body={"error": "queue unknown"})
    await world.post(personal_message(url, "printer on floor 3 is jammed"))

    [post] = await eventually(lambda: world.sends_to(ALERTS))
    text = post.activity["text"]
    assert text.startswith("Outbox delivery failed for good") and "(msp)" in text and "IT-" in text
    assert post.activity["conversation"]["id"] == ALERTS
    [msp] = await world.rows("msp")
    assert msp.status == "dead"
    await world.wait_row("admin.alert", lambda r: r.status == "delivered")
    assert world.sends_to(CHANNEL) == []  # the in-house channel is not the alert channel


# --- units: the poster and the fan-out -------------------------------------------------------------


class Scripted:
    def __init__(self, *results: DeliveryResult) -> None:
        self.kind = "internal"
        self.results = list(results)
        self.calls = 0

    async def deliver(self, *, payload: dict[str, Any], idempotency_key: str) -> DeliveryResult:
        self.calls += 1
        return self.results.pop(0)


OK = DeliveryResult(ok=True, detail="HTTP 200", remote_id="r1")
LATER = DeliveryResult(ok=False, retryable=True, retry_after=7, detail="HTTP 503")
DEAD = DeliveryResult(ok=False, retryable=False, detail="HTTP 404 channel_not_found")


async def test_fan_out_is_ok_only_when_all_are_and_does_not_repeat_successes() -> None:
    slack, teams = Scripted(OK), Scripted(LATER, OK)
    fan = FanOut(kind="internal", targets={"slack": slack, "teams": teams})
    first = await fan.deliver(payload={"text": "x"}, idempotency_key="k")
    assert not first.ok and first.retryable and first.retry_after == 7 and "teams: HTTP 503" in first.detail
    second = await fan.deliver(payload={"text": "x"}, idempotency_key="k")
    assert second.ok and slack.calls == 1 and teams.calls == 2  # Slack is not posted twice
    assert second.remote_id == "slack:r1,teams:r1"


async def test_fan_out_dead_when_no_failure_is_retryable() -> None:
    fan = FanOut(kind="internal", targets={"slack": Scripted(OK), "teams": Scripted(DEAD)})
    result = await fan.deliver(payload={"text": "x"}, idempotency_key="k")
    assert not result.ok and not result.retryable and "channel_not_found" in result.detail
    mixed = FanOut(kind="internal", targets={"slack": Scripted(DEAD), "teams": Scripted(LATER)})
    assert (await mixed.deliver(payload={"text": "x"}, idempotency_key="k")).retryable


async def test_poster_lookup_failure_is_retryable_and_keys_match_the_book() -> None:
    async def broken(key: str) -> dict[str, Any] | None:
        raise ConnectionError("database down")

    async with aiohttp.ClientSession() as http:
        inner = TeamsConnector(session=http, tokens=None, service_url_prefixes=["https://smba.trafficmanager.net/"])
        poster = TeamsChannelPoster(inner=inner, channel=CHANNEL, kind="internal", lookup=broken)
        result = await poster.deliver(payload={"text": "x"}, idempotency_key="k")
    assert not result.ok and result.retryable and "ConnectionError" in result.detail
    assert reference_keys(CHANNEL) == [f"channel:{CHANNEL}", f"chat:{CHANNEL}"]
    assert reference_keys("19:" + "x" * 300)[0].startswith("channel:sha256:")


async def test_build_connectors_fans_out_when_slack_and_teams_are_both_set(db_url: str, sessionmaker: Any) -> None:
    settings = make_settings(db_url, TEAMS_APP_ID=APP_ID, TEAMS_APP_PASSWORD=APP_PASSWORD, SLACK_BOT_TOKEN="xoxb-x")
    settings.internal.slack_channel = "C0INHOUSE"
    settings.internal.teams_channel = CHANNEL
    settings.admins.alert_teams_channel = ALERTS
    async with aiohttp.ClientSession() as http:
        connectors = build_connectors(settings, http, sessionmaker=sessionmaker)
        assert isinstance(connectors["internal"], FanOut) and connectors["internal"].kind == "internal"
        assert isinstance(connectors["admin.alert"], TeamsChannelPoster)
        no_db = build_connectors(settings, http)
        assert isinstance(no_db["internal"], ChannelPoster) and isinstance(no_db["admin.alert"], LocalSink)
