"""The ``teams.post`` connector and the bot's token provider against the fake Bot Connector."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from bot.connectors.teams import BotTokenProvider, TeamsConnector, TokenError, activities_url
from tests.fakes.bot_connector import APP_ID, APP_PASSWORD, BOT, CHANNEL, TENANT, USER, FakeBotConnector


@dataclass
class Rig:
    fake: FakeBotConnector
    http: aiohttp.ClientSession
    clock: list[float]
    tokens: BotTokenProvider
    connector: TeamsConnector

    def row(self, **fields: Any) -> dict[str, Any]:
        return {
            "service_url": self.fake.service_url, "conversation_id": f"{CHANNEL};messageid=1571537152320",
            "reply_to_id": "1571537152320", "tenant_id": TENANT, "channel_id": "msteams",
            "bot": BOT, "user": {"id": USER["id"], "name": USER["name"]},
            "text": "Ticket IT-1001 is with our IT service desk (MSP).\nWhy: Queue msp-service-desk; printer.",
            "ticket": "IT-1001", **fields,
        }


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async with FakeBotConnector(app_id=APP_ID, app_password=APP_PASSWORD) as fake, aiohttp.ClientSession() as http:
        clock = [1_000_000.0]
        tokens = BotTokenProvider(session=http, app_id=APP_ID, app_password=SecretStr(APP_PASSWORD),
                                  token_url=fake.token_url(), clock=lambda: clock[0], timeout=2)
        connector = TeamsConnector(session=http, tokens=tokens, service_url_prefixes=[fake.service_url], timeout=2,
                                   clock=lambda: clock[0])
        yield Rig(fake, http, clock, tokens, connector)


async def deliver(rig: Rig, row: dict[str, Any]) -> Any:
    return await rig.connector.deliver(payload=row, idempotency_key="k1")


async def test_reply_in_a_channel_thread(rig: Rig) -> None:
    result = await deliver(rig, rig.row())
    assert result.ok and result.remote_id and result.remote_id.startswith("1:")
    [posted] = rig.fake.replies
    assert posted.conversation_id == f"{CHANNEL};messageid=1571537152320" and posted.reply_to_id == "1571537152320"
    assert posted.raw_path == ("/v3/conversations/19%3A097e6717fd7245bdbeba6baa13840db8%40thread.skype%3Bmessageid"
                               "%3D1571537152320/activities/1571537152320")
    activity = posted.activity
    assert activity["type"] == "message" and activity["replyToId"] == "1571537152320"
    assert activity["conversation"]["tenantId"] == TENANT and activity["from"]["id"] == BOT["id"]
    card = activity["attachments"][0]
    assert card["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert card["content"]["body"][1]["facts"] == [{"title": "Ticket", "value": "IT-1001"}]
    assert activity["summary"].startswith("Ticket IT-1001")


async def test_proactive_send_has_no_reply_id(rig: Rig) -> None:
    row = rig.row(reply_to_id=None, conversation_id=CHANNEL, ticket=None, text="*PAGE* IT-1002 acknowledged")
    assert (await deliver(rig, row)).ok
    [sent] = rig.fake.sends
    assert sent.conversation_id == CHANNEL and sent.raw_path.endswith("/activities")
    assert sent.activity["text"] == "**PAGE** IT-1002 acknowledged" and "replyToId" not in sent.activity


async def test_token_is_cached_until_shortly_before_expiry(rig: Rig) -> None:
    for _ in range(3):
        assert (await deliver(rig, rig.row())).ok
    assert rig.tokens.fetches == 1 and len({p.authorization for p in rig.fake.replies}) == 1
    rig.clock[0] += 3599 - 299  # the token lives 3599 s; it is replaced 300 s before the end
    assert (await deliver(rig, rig.row())).ok
    assert rig.tokens.fetches == 2 and rig.fake.replies[-1].authorization == f"Bearer {rig.fake.issued[-1]}"


async def test_a_refused_token_is_dropped_and_the_retry_gets_a_new_one(rig: Rig) -> None:
    assert (await deliver(rig, rig.row())).ok
    rig.fake.issued.clear()  # the connector no longer accepts the cached token
    result = await deliver(rig, rig.row())
    assert not result.ok and result.retryable and "401" in result.detail
    assert (await deliver(rig, rig.row())).ok
    assert rig.tokens.fetches == 2


@pytest.mark.parametrize(
    ("status", "headers", "retryable", "retry_after"),
    [(429, {"Retry-After": "7"}, True, 7.0), (500, None, True, None), (503, {"Retry-After": "2"}, True, 2.0),
     (400, None, False, None), (403, None, False, None), (404, None, False, None)],
)
async def test_connector_errors_are_classified(rig: Rig, status: int, headers: dict[str, str] | None,
                                               retryable: bool, retry_after: float | None) -> None:
    await rig.tokens.token()
    rig.fake.fail_next(1, status=status, headers=headers)
    result = await deliver(rig, rig.row())
    assert not result.ok and result.retryable is retryable and result.retry_after == retry_after
    assert str(status) in result.detail
    assert rig.fake.issued[0] not in result.detail and APP_PASSWORD not in result.detail


async def test_token_endpoint_failures(rig: Rig) -> None:
    wrong = BotTokenProvider(session=rig.http, app_id=APP_ID, app_password=SecretStr("wrong"),
                             token_url=rig.fake.token_url())
    with pytest.raises(TokenError) as info:
        await wrong.token()
    assert not info.value.retryable and "invalid_client" in info.value.detail and "wrong" not in info.value.detail
    connector = TeamsConnector(session=rig.http, tokens=wrong, service_url_prefixes=[rig.fake.service_url])
    result = await connector.deliver(payload=rig.row(), idempotency_key="k")
    assert not result.ok and not result.retryable and rig.fake.replies == []

    rig.fake.fail_next(1, status=503, headers={"Retry-After": "3"})
    result = await deliver(rig, rig.row())
    assert not result.ok and result.retryable and result.retry_after == 3.0 and "token endpoint" in result.detail
    assert (await deliver(rig, rig.row())).ok

    unreachable = BotTokenProvider(session=rig.http, app_id=APP_ID, app_password=SecretStr(APP_PASSWORD),
                                   token_url="http://127.0.0.1:9/botframework.com/oauth2/v2.0/token", timeout=1)
    with pytest.raises(TokenError) as info:
        await unreachable.token()
    assert info.value.retryable


async def test_rows_that_cannot_be_sent_are_dead_without_a_request(rig: Rig) -> None:
    for row in (rig.row(service_url="https://smba.evil.example/amer/"), rig.row(conversation_id=""),
                {k: v for k, v in rig.row().items() if k != "service_url"}):
        result = await deliver(rig, row)
        assert not result.ok and not result.retryable
    assert rig.fake.requests == []


async def test_unreachable_connector_is_retryable(rig: Rig) -> None:
    await rig.tokens.token()
    connector = TeamsConnector(session=rig.http, tokens=rig.tokens, service_url_prefixes=["http://127.0.0.1:9/"],
                               timeout=1)
    result = await connector.deliver(payload=rig.row(service_url="http://127.0.0.1:9/"), idempotency_key="k")
    assert not result.ok and result.retryable


def test_activities_url_encodes_ids() -> None:
    url = activities_url("https://smba.trafficmanager.net/amer/", "a:1b/2", "f:3")
    assert str(url) == "https://smba.trafficmanager.net/amer/v3/conversations/a%3A1b%2F2/activities/f%3A3"
    assert str(activities_url("https://smba.trafficmanager.net/amer", "19:x@thread.v2", None)).endswith(
        "/amer/v3/conversations/19%3Ax%40thread.v2/activities")
