"""The whole request path through Teams: a signed activity in, the fakes receive the right bodies."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select, text

from bot.app import CORE, create_app
from bot.core import utcnow
from storage import service
from storage.models import ConversationRef, InboundEvent, OutboxRow, Ticket, TicketEvent
from tests.fakes.bot_connector import (
    APP_ID,
    APP_PASSWORD,
    BOT,
    CHANNEL,
    PERSONAL_CONVERSATION,
    TENANT,
    USER,
    FakeBotConnector,
    bot_added_to_team,
    card_submit,
    channel_mention,
    channel_message,
    channel_reply,
    invoke,
    next_id,
    personal_message,
)
from tests.fakes.msp import FakeMsp
from tests.fakes.openid import FakeOpenId, SigningKey
from tests.fakes.pagerduty import FakePagerDuty
from tests.helpers import eventually, make_settings

ROUTING_KEY = "R0123456789abcdef0123456789abcde"
CARD = "application/vnd.microsoft.card.adaptive"


@dataclass
class World:
    client: TestClient
    connector: FakeBotConnector
    idp: FakeOpenId
    msp: FakeMsp
    pd: FakePagerDuty

    def token(self, **overrides: Any) -> str:
        return self.idp.token(app_id=APP_ID, service_url=self.connector.service_url, **overrides)

    async def post(self, activity: Any, *, authorization: str | None = "valid", **headers: str) -> Any:
        if authorization == "valid":
            authorization = f"Bearer {self.token()}"
        if authorization is not None:
            headers["Authorization"] = authorization
        if isinstance(activity, (dict, list)):
            headers.setdefault("Content-Type", "application/json; charset=utf-8")
            activity = json.dumps(activity)
        return await self.client.post("/api/messages", data=activity, headers=headers)

    async def count(self, model: Any) -> int:
        async with self.client.server.app[CORE].sessionmaker() as session:
            return int((await session.execute(select(func.count()).select_from(model))).scalar_one())

    async def tickets(self) -> list[Ticket]:
        async with self.client.server.app[CORE].sessionmaker() as session:
            return list((await session.execute(select(Ticket).order_by(Ticket.id))).scalars())

    async def refs(self, *keys: str) -> dict[str, ConversationRef]:
        """Stored references, once ``keys`` are among them (they are written in batches, off the request)."""
        deadline = asyncio.get_running_loop().time() + 5
        while True:
            async with self.client.server.app[CORE].sessionmaker() as session:
                refs = {r.key: r for r in await service.list_conversation_refs(session=session, platform="teams")}
            if all(k in refs for k in keys) or asyncio.get_running_loop().time() > deadline:
                return refs
            await asyncio.sleep(0.02)


@pytest.fixture
async def world(db_url: str) -> AsyncIterator[World]:
    async with FakeOpenId() as idp, FakeBotConnector(app_id=APP_ID, app_password=APP_PASSWORD) as connector, \
            FakeMsp() as msp, FakePagerDuty() as pd:
        settings = make_settings(
            db_url, TEAMS_APP_ID=APP_ID, TEAMS_APP_PASSWORD=APP_PASSWORD, TEAMS_OPENID_URL=idp.metadata_url,
            TEAMS_OAUTH_URL=connector.token_url(), TEAMS_CONNECTOR_URL=connector.service_url,
            HANDOFF_MSP_URL=msp.tickets_url, PAGERDUTY_ROUTING_KEY=ROUTING_KEY, PAGERDUTY_EVENTS_URL=pd.enqueue_url,
        )
        settings.delivery.backoff_base_seconds = 0.01
        settings.delivery.poll_interval_seconds = 0.05
        async with TestClient(TestServer(create_app(settings))) as client:
            yield World(client, connector, idp, msp, pd)


def card_text(activity: dict[str, Any]) -> str:
    """Every text of an activity: its text and the TextBlocks/facts of its Adaptive Cards."""
    parts = [str(activity.get("text") or "")]
    for attachment in activity.get("attachments") or []:
        assert attachment["contentType"] == CARD
        for block in attachment["content"]["body"]:
            parts.append(block.get("text", ""))
            parts += [f"{f['title']}: {f['value']}" for f in block.get("facts", [])]
    return "\n".join(parts)


async def test_personal_message_becomes_msp_ticket_and_card_reply(world: World) -> None:
    activity = personal_message(world.connector.service_url, "Outlook keeps crashing when I open attachments")
    resp = await world.post(activity)
    assert resp.status == 200

    [request] = await world.msp.wait_for_requests(1, timeout=5)
    assert request.json["route"] == "msp" and request.json["text"].startswith("Outlook keeps crashing")
    assert request.json["requester"] == {"platform": "teams", "user_id": USER["aadObjectId"], "name": USER["name"],
                                         "channel": PERSONAL_CONVERSATION}
    [reply] = await eventually(lambda: world.connector.replies)
    assert reply.conversation_id == PERSONAL_CONVERSATION and reply.reply_to_id == activity["id"]
    assert reply.raw_path.startswith("/v3/conversations/a%3A1VF4K2")
    assert reply.authorization == f"Bearer {world.connector.issued[0]}"
    body = card_text(reply.activity)
    assert request.json["id"] in body and "service desk" in body and "Why:" in body
    assert reply.activity["recipient"]["id"] == USER["id"] and reply.activity["from"] == BOT
    assert reply.activity["conversation"] == {"id": PERSONAL_CONVERSATION, "tenantId": TENANT}
    assert world.pd.requests == []
    [ticket] = await world.tickets()
    assert ticket.platform == "teams" and ticket.conversation["reply_kind"] == "teams.post"
    assert ticket.conversation["service_url"] == world.connector.service_url

    refs = await world.refs(f"user:{USER['aadObjectId']}")
    ref = refs[f"user:{USER['aadObjectId']}"]
    assert ref.kind == "user" and ref.conversation_id == PERSONAL_CONVERSATION and ref.tenant_id == TENANT
    assert "reply_to_id" not in ref.reference and ref.reference["user"]["id"] == USER["id"]


async def test_token_is_fetched_once_for_many_replies(world: World) -> None:
    for words in ("printer on floor 3 is jammed", "need excel installed", "monitor flickers"):
        assert (await world.post(personal_message(world.connector.service_url, words))).status == 200
    await eventually(lambda: len(world.connector.replies) == 3)
    assert len(world.connector.token_requests()) == 1
    form = world.connector.token_requests()[0].form
    assert form is not None and form["client_id"] == APP_ID and form["grant_type"] == "client_credentials"


async def test_channel_mention_is_stripped_and_answered_in_the_thread(world: World) -> None:
    activity = channel_mention(world.connector.service_url, "the wifi in meeting room 2 keeps dropping")
    assert (await world.post(activity)).status == 200
    [reply] = await eventually(lambda: world.connector.replies)
    assert reply.conversation_id == f"{CHANNEL};messageid={activity['id']}"
    assert "%3Bmessageid%3D" in reply.raw_path  # the thread suffix is sent encoded, as botbuilder does
    [ticket] = await world.tickets()
    assert ticket.text == "the wifi in meeting room 2 keeps dropping"
    assert ticket.channel_id == CHANNEL and ticket.thread_ref == activity["id"]
    refs = await world.refs(f"channel:{CHANNEL}")
    assert refs[f"channel:{CHANNEL}"].conversation_id == CHANNEL  # posts there start a new thread
    assert "user" not in refs[f"channel:{CHANNEL}"].reference


async def test_ransomware_pages_and_never_reaches_msp(world: World) -> None:
    resp = await world.post(personal_message(world.connector.service_url,
                                             "ransomware note on my screen, files renamed .locked"))
    assert resp.status == 200
    [request] = await world.pd.wait_for_requests(1, timeout=5)
    assert request.json["event_action"] == "trigger" and request.json["payload"]["severity"] == "critical"
    [reply] = await eventually(lambda: world.connector.replies)
    assert "paged" in card_text(reply.activity)
    assert world.msp.requests == []
    [ticket] = await world.tickets()
    assert ticket.route == "page"


async def test_retried_activity_makes_one_ticket_and_one_reply(world: World) -> None:
    activity = personal_message(world.connector.service_url, "printer on floor 3 is jammed")
    assert (await world.post(activity)).status == 200
    assert (await world.post(activity)).status == 200  # Teams retries with the same id
    await world.msp.wait_for_requests(1, timeout=5)
    await eventually(lambda: world.connector.replies)
    assert await world.count(Ticket) == 1 and await world.count(InboundEvent) == 1
    assert await world.count(OutboxRow) == 3  # msp + reply + the MSP first-response watchdog, once
    assert len(world.connector.replies) == 1


async def test_same_activity_id_in_another_conversation_is_another_request(world: World) -> None:
    first = personal_message(world.connector.service_url, "printer is jammed", activity_id="1700000000000")
    second = personal_message(world.connector.service_url, "monitor flickers", activity_id="1700000000000",
                              conversation_id="a:another-1to1-chat")
    assert (await world.post(first)).status == 200 and (await world.post(second)).status == 200
    assert await world.count(Ticket) == 2


async def test_handoff_help_and_command_menu_are_answered(world: World) -> None:
    url = world.connector.service_url
    help_activity = personal_message(url, "/handoff help")
    assert (await world.post(help_activity)).status == 200
    assert (await world.post(help_activity)).status == 200  # retry: answered once
    assert (await world.post(channel_mention(url, "help"))).status == 200  # the manifest's command menu
    await eventually(lambda: len(world.connector.replies) == 2)
    for reply in world.connector.replies:
        assert "**handoff** routes IT requests" in reply.activity["text"]
        assert reply.activity["textFormat"] == "markdown"
    assert await world.count(Ticket) == 0
    assert len(world.connector.replies) == 2


async def test_handoff_request_opens_a_ticket_once(world: World) -> None:
    activity = personal_message(world.connector.service_url, "/handoff my laptop will not boot")
    assert (await world.post(activity)).status == 200
    assert (await world.post(activity)).status == 200
    [reply] = await eventually(lambda: world.connector.replies)
    [ticket] = await world.tickets()
    assert ticket.text == "my laptop will not boot" and ticket.key in card_text(reply.activity)
    await world.msp.wait_for_requests(1, timeout=5)
    await eventually(lambda: len(world.connector.replies) == 1)
    assert await world.count(Ticket) == 1


async def test_handoff_request_and_its_answer_are_one_transaction(world: World) -> None:
    # The answer used to be written after the ticket, in a second transaction: when that one failed
    # the edge said 503, and Teams's retry found the ticket already there and answered nothing.
    core = world.client.server.app[CORE]
    async with core.engine.begin() as conn:
        await conn.execute(text("ALTER TABLE outbox RENAME TO outbox_away"))
    activity = personal_message(world.connector.service_url, "/handoff my laptop will not boot")
    assert (await world.post(activity)).status == 503
    assert await world.count(Ticket) == 0  # nothing half-done
    async with core.engine.begin() as conn:
        await conn.execute(text("ALTER TABLE outbox_away RENAME TO outbox"))
    assert (await world.post(activity)).status == 200
    [reply] = await eventually(lambda: world.connector.replies)
    [ticket] = await world.tickets()
    assert ticket.key in card_text(reply.activity)
    assert ticket.conversation is not None and ticket.conversation["reply_kind"] == "teams.post"  # later news too


async def test_a_command_answer_that_echoes_a_password_is_stored_and_sent_redacted(world: World) -> None:
    # "`pwd:…` is not a ticket id": the answer is a teams.post outbox row, so it was stored and sent as typed.
    assert (await world.post(personal_message(world.connector.service_url, "/handoff status pwd:Quokka55$zz"))).status == 200
    [reply] = await eventually(lambda: world.connector.replies)
    async with world.client.server.app[CORE].sessionmaker() as session:
        [row] = (await session.scalars(select(OutboxRow).where(OutboxRow.kind == "teams.post"))).all()
    assert "is not a ticket id" in row.payload["text"] and "[redacted:password]" in row.payload["text"]
    assert "Quokka55" not in json.dumps(row.payload) and "Quokka55" not in json.dumps(reply.activity)


async def test_a_critical_reply_in_a_ticket_thread_pages_even_without_a_mention(world: World) -> None:
    # Replies in a ticket's channel thread reach the bot without a mention (resource-specific consent)
    # and are comments; a critical one is a request of its own, which pages.
    url = world.connector.service_url
    root = channel_mention(url, "need excel installed on my laptop")
    assert (await world.post(root)).status == 200
    critical = channel_reply(url, "ransomware note on my screen, files renamed .locked", root_id=root["id"])
    assert (await world.post(critical)).status == 200
    first, second = await world.tickets()
    assert first.route == "msp" and second.route == "page"
    await world.pd.wait_for_requests(1, timeout=5)
    chatter = channel_reply(url, "ransomware note on my screen, files renamed .locked", root_id="1726133700000")
    assert (await world.post(chatter)).status == 200 and await world.count(Ticket) == 2  # no ticket there: not ours


async def test_a_retried_comment_command_is_added_once(world: World) -> None:
    url = world.connector.service_url
    assert (await world.post(personal_message(url, "need excel installed on my laptop"))).status == 200
    [ticket] = await world.tickets()
    activity = personal_message(url, f"/handoff comment {ticket.key} it also happens on my phone")
    assert (await world.post(activity)).status == 200
    assert (await world.post(activity)).status == 200  # the Bot Framework delivers it again
    async with world.client.server.app[CORE].sessionmaker() as session:
        comments = (await session.scalars(select(TicketEvent).where(TicketEvent.kind == "comment"))).all()
        forwards = (await session.scalars(select(OutboxRow).where(OutboxRow.kind == "msp"))).all()
    assert [c.text for c in comments] == ["it also happens on my phone"]
    assert sorted(r.payload["event"] for r in forwards) == ["ticket.comment", "ticket.created"]


async def test_card_submits_invokes_and_unmentioned_channel_posts_are_acknowledged_only(world: World) -> None:
    url = world.connector.service_url
    assert (await world.post(card_submit(url))).status == 200
    assert (await world.post(channel_message(url, "lunch anyone?"))).status == 200
    resp = await world.post(invoke(url))
    assert resp.status == 200 and await resp.read() == b""
    resp = await world.post(invoke(url, "adaptiveCard/action", {"action": {"type": "Action.Execute", "verb": "ack"}}))
    assert resp.status == 200 and (await resp.json())["statusCode"] == 200
    assert await world.count(Ticket) == 0 and await world.count(OutboxRow) == 0


async def test_bot_added_to_a_team_stores_the_channel(world: World) -> None:
    assert (await world.post(bot_added_to_team(world.connector.service_url))).status == 200
    ref = (await world.refs(f"channel:{CHANNEL}"))[f"channel:{CHANNEL}"]
    assert ref.kind == "channel" and ref.reference["bot"] == BOT and ref.service_url == world.connector.service_url


async def test_proactive_message_to_a_stored_reference(world: World) -> None:
    assert (await world.post(personal_message(world.connector.service_url, "printer is jammed"))).status == 200
    await world.refs(f"user:{USER['aadObjectId']}")
    core = world.client.server.app[CORE]
    async with core.sessionmaker.begin() as session:
        ref = await service.get_conversation_ref(session=session, platform="teams", key=f"user:{USER['aadObjectId']}")
        assert ref is not None
        await service.enqueue(session=session, kind="teams.post", idempotency_key="update-1",
                              payload={**ref.reference, "text": "Ticket IT-1001 was *resolved*."},
                              now=utcnow())
    core.worker.wake()
    [sent] = await eventually(lambda: world.connector.sends)
    assert sent.conversation_id == PERSONAL_CONVERSATION and sent.reply_to_id is None
    assert sent.activity["text"] == "Ticket IT-1001 was **resolved**."


async def test_database_failure_answers_503_and_the_retry_succeeds(world: World) -> None:
    core = world.client.server.app[CORE]
    async with core.engine.begin() as conn:
        await conn.execute(text("ALTER TABLE tickets RENAME TO tickets_away"))
    activity = personal_message(world.connector.service_url, "printer on floor 3 is jammed")
    resp = await world.post(activity)
    assert resp.status == 503 and resp.headers["Retry-After"]
    async with core.engine.begin() as conn:
        await conn.execute(text("ALTER TABLE tickets_away RENAME TO tickets"))
    metrics = await (await world.client.get("/metrics")).text()
    assert 'handoff_http_rejected_total{platform="teams",status="503"} 1.0' in metrics
    assert (await world.post(activity)).status == 200
    await eventually(lambda: world.connector.replies)
    assert await world.count(Ticket) == 1


def _forged(world: World, label: str) -> dict[str, str]:
    url = world.connector.service_url
    stranger = SigningKey.generate()
    tokens = {
        "missing": None,
        "empty": "",
        "not-bearer": f"Basic {world.token()}",
        "malformed": "Bearer not-a-jwt",
        "garbage-segments": "Bearer eyJhbGciOi.eyJzdWIi.c2ln",
        "expired": f"Bearer {world.token(exp_delta=-3600)}",
        "wrong-audience": f"Bearer {world.token(aud='another-bot')}",
        "wrong-issuer": f"Bearer {world.token(iss='https://sts.windows.net/evil/')}",
        "unknown-key": f"Bearer {world.idp.sign(world.idp.claims(app_id=APP_ID, service_url=url), key=stranger)}",
        "wrong-serviceurl": f"Bearer {world.token(serviceurl='https://smba.evil.example/amer/')}",
        "unsigned": "Bearer " + _unsigned(world.idp.claims(app_id=APP_ID, service_url=url)),
    }
    value = tokens[label]
    return {} if value is None else {"authorization": value}


def _unsigned(claims: dict[str, Any]) -> str:
    import jwt

    return jwt.encode(claims, None, algorithm="none")  # type: ignore[arg-type]


@pytest.mark.parametrize(("label", "reason"), [
    ("missing", "missing Authorization"), ("empty", "missing Authorization"), ("not-bearer", "not a Bearer"),
    ("malformed", "malformed token"), ("garbage-segments", "malformed token"), ("expired", "token expired"),
    ("wrong-audience", "audience"), ("wrong-issuer", "issuer"), ("unknown-key", "unknown key"),
    ("wrong-serviceurl", "serviceurl"), ("unsigned", "algorithm not allowed"),
])
async def test_bad_tokens_get_401_and_store_nothing(world: World, label: str, reason: str,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    forged = _forged(world, label)
    token = forged.get("authorization")
    resp = await world.post(personal_message(world.connector.service_url, "printer jammed"), authorization=token)
    assert resp.status == 401, await resp.text()
    assert reason in (await resp.json())["error"]
    assert await world.count(Ticket) == 0 and await world.count(InboundEvent) == 0
    assert await world.count(ConversationRef) == 0
    refusals = [r for r in caplog.records if "teams request refused" in r.getMessage()]
    assert len(refusals) == 1
    if token and " " in token:
        assert token.split(" ", 1)[1] not in caplog.text  # never the token


@pytest.mark.parametrize(
    ("label", "status", "reason"),
    [("not-json", 415, "content type"), ("no-content-type", 415, "content type"), ("bad-json", 400, "not valid JSON"),
     ("not-object", 400, "JSON object"), ("no-type", 400, "type must be"), ("no-conversation", 400, "conversation"),
     ("text-not-string", 400, "text must be a string"), ("bad-service-url", 400, "serviceUrl"),
     ("from-not-object", 400, "from must be an object"), ("oversized", 413, "too large")],
)
async def test_bad_bodies_get_4xx_and_store_nothing(world: World, label: str, status: int, reason: str) -> None:
    url = world.connector.service_url
    good = personal_message(url, "printer jammed")
    headers: dict[str, str] = {}
    body: Any = good
    if label == "not-json":
        body, headers = "text=printer+jammed", {"Content-Type": "application/x-www-form-urlencoded"}
    elif label == "no-content-type":
        body = json.dumps(good).encode()
    elif label == "bad-json":
        body, headers = '{"type": "message", "text": ', {"Content-Type": "application/json"}
    elif label == "not-object":
        body = [good]
    elif label == "no-type":
        body = {k: v for k, v in good.items() if k != "type"}
    elif label == "no-conversation":
        body = {k: v for k, v in good.items() if k != "conversation"}
    elif label == "text-not-string":
        body = {**good, "text": {"$gt": ""}}
    elif label == "bad-service-url":
        body = {**good, "serviceUrl": "file:///etc/passwd"}
    elif label == "from-not-object":
        body = {**good, "from": "29:someone"}
    elif label == "oversized":
        body = personal_message(url, "x" * 300_000)
    token = world.idp.token(app_id=APP_ID, service_url=body["serviceUrl"] if isinstance(body, dict) else url)
    resp = await world.post(body, authorization=f"Bearer {token}", **headers)
    assert resp.status == status, await resp.text()
    assert reason in (await resp.json())["error"]
    assert await world.count(Ticket) == 0 and await world.count(InboundEvent) == 0


async def test_unknown_activity_types_are_acknowledged(world: World) -> None:
    url = world.connector.service_url
    for kind in ("typing", "messageReaction", "event", "endOfConversation"):
        body = {**personal_message(url, "x"), "type": kind}
        assert (await world.post(body)).status == 200
    assert await world.count(Ticket) == 0


async def test_metrics_count_teams_requests_and_refusals(world: World) -> None:
    await world.post(personal_message(world.connector.service_url, "teams keeps logging me out"))
    await world.post(personal_message(world.connector.service_url, "x"), authorization=None)
    await eventually(lambda: world.connector.replies)
    delivered = 'handoff_deliveries_total{kind="teams.post",outcome="delivered"} 1.0'
    text_ = ""
    for _ in range(100):
        text_ = await (await world.client.get("/metrics")).text()
        if delivered in text_:
            break
    assert delivered in text_
    assert 'handoff_requests_total{platform="teams",route="msp"} 1.0' in text_
    assert 'handoff_http_rejected_total{platform="teams",status="401"} 1.0' in text_


async def test_without_teams_configuration_the_endpoint_is_404(db_url: str) -> None:
    async with TestClient(TestServer(create_app(make_settings(db_url)))) as client:
        resp = await client.post("/api/messages", json={"type": "message"})
        assert resp.status == 404 and "TEAMS_APP_ID" in (await resp.json())["error"]


async def test_auth_off_on_loopback_accepts_unsigned_activities(db_url: str, caplog: pytest.LogCaptureFixture
                                                                ) -> None:
    async with FakeBotConnector(require_auth=False) as connector:
        settings = make_settings(db_url, HANDOFF_TEAMS_AUTH="off", HANDOFF_HOST="127.0.0.1",
                                 TEAMS_CONNECTOR_URL=connector.service_url)
        settings.delivery.poll_interval_seconds = 0.05
        async with TestClient(TestServer(create_app(settings))) as client:
            assert "TEAMS TOKENS ARE NOT VALIDATED" in caplog.text
            activity = personal_message(connector.service_url, "printer on floor 3 is jammed", activity_id=next_id())
            resp = await client.post("/api/messages", json=activity)
            assert resp.status == 200
            [reply] = await eventually(lambda: connector.replies)
            assert reply.authorization is None and "IT-" in card_text(reply.activity)


async def test_a_slow_microsoft_endpoint_never_stalls_other_traffic(db_url: str) -> None:
    """Signing keys come from a stalled endpoint: that request waits (then 503), /healthz does not."""
    async with FakeOpenId() as idp, FakeBotConnector(app_id=APP_ID, app_password=APP_PASSWORD) as connector:
        settings = make_settings(db_url, TEAMS_APP_ID=APP_ID, TEAMS_APP_PASSWORD=APP_PASSWORD,
                                 TEAMS_OPENID_URL=idp.metadata_url, TEAMS_OAUTH_URL=connector.token_url(),
                                 TEAMS_CONNECTOR_URL=connector.service_url)
        settings.teams.timeout_seconds = 1.0
        async with TestClient(TestServer(create_app(settings))) as client:
            idp.delay_next(1, 3.0)
            token = idp.token(app_id=APP_ID, service_url=connector.service_url)
            loop = asyncio.get_running_loop()
            started = loop.time()
            teams = asyncio.create_task(client.post(
                "/api/messages", json=personal_message(connector.service_url, "printer jammed"),
                headers={"Authorization": f"Bearer {token}"}))
            await asyncio.sleep(0.2)
            health = await client.get("/healthz")
            assert health.status == 200 and loop.time() - started < 0.8  # answered while keys are awaited
            resp = await teams
            assert resp.status == 503 and resp.headers["Retry-After"]
            assert 0.9 < loop.time() - started < 2.5  # the fetch timed out; it did not hang for 3 s
            again = loop.time()
            resp = await client.post("/api/messages", json=personal_message(connector.service_url, "printer jammed"),
                                     headers={"Authorization": f"Bearer {token}"})
            assert resp.status == 503 and loop.time() - again < 0.5  # no new fetch within Retry-After
            assert len(idp.requests) == 1
