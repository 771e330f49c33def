"""Forged, stale and replayed requests on every inbound edge: refused with the right 4xx, and counted.

One application serves Slack, Teams and the MSP callback. Each forgery is sent through the real HTTP
edge; the answer's status is checked, nothing is stored, and ``handoff_http_rejected_total`` from
``GET /metrics`` must have gone up by one for that platform and status. Replays of a correctly
signed request inside the freshness window are absorbed as duplicates (one ticket, one update).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives import serialization
from sqlalchemy import func, select

from bot.app import CORE, create_app
from bot.connectors.msp import sign
from storage.models import InboundEvent, Ticket, TicketEvent
from tests.edge_world import edge_fakes
from tests.fakes.bot_connector import (
    APP_ID,
    FakeBotConnector,
    next_id,
    personal_message,
)
from tests.fakes.openid import FakeOpenId, SigningKey
from tests.helpers import (
    command_body,
    event_body,
    signed_headers,
)

MSP_SECRET = "msp-callback-secret-for-forgery-tests"
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


@dataclass
class ShiftClock:
    """Real time plus an offset the test moves (the application's clock)."""

    offset: timedelta = field(default_factory=timedelta)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@dataclass
class World:
    client: TestClient
    idp: FakeOpenId
    connector: FakeBotConnector
    clock: ShiftClock

    async def rejected(self, platform: str, status: int) -> float:
        text = await (await self.client.get("/metrics")).text()
        prefix = f'handoff_http_rejected_total{{platform="{platform}",status="{status}"}} '
        return next((float(line[len(prefix):]) for line in text.splitlines() if line.startswith(prefix)), 0.0)

    async def metric(self, line_prefix: str) -> float:
        text = await (await self.client.get("/metrics")).text()
        return next((float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(line_prefix)), 0.0)

    async def count(self, model: Any) -> int:
        async with self.client.server.app[CORE].sessionmaker() as session:
            return int((await session.execute(select(func.count()).select_from(model))).scalar_one())

    def token(self, **overrides: Any) -> str:
        return self.idp.token(app_id=APP_ID, service_url=self.connector.service_url, **overrides)


@pytest.fixture
async def world(db_url: str) -> AsyncIterator[World]:
    clock = ShiftClock()
    async with edge_fakes(db_url, msp_secret=MSP_SECRET) as edges:
        settings, idp, connector = edges.settings, edges.idp, edges.connector
        settings.delivery.poll_interval_seconds = 0.05
        async with TestClient(TestServer(create_app(settings, clock=clock))) as client:
            yield World(client, idp, connector, clock)


# --- Slack ---------------------------------------------------------------------------------------

async def _raw_post(world: World, path: str, headers: dict[str, str], body: bytes) -> bytes:
    """POST over a plain socket: headers that aiohttp's client would refuse to send (any client can)."""
    server = world.client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    head = f"POST {path} HTTP/1.1\r\nHost: {server.host}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
    writer.write((head + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode() + body)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    return answer.split(b"\r\n", 1)[0]


def _slack_forgery(label: str, body: str) -> dict[str, str]:
    now = int(time.time())
    if label == "unsigned":
        return {"Content-Type": JSON}
    if label == "no-signature":
        return {"Content-Type": JSON, "X-Slack-Request-Timestamp": str(now)}
    if label == "wrong-secret":
        return signed_headers(body, content_type=JSON, secret="0123456789abcdef0123456789abcdef")
    if label == "stale":
        return signed_headers(body, content_type=JSON, timestamp=now - 301 - 5)
    if label == "future":
        return signed_headers(body, content_type=JSON, timestamp=now + 3600)
    if label == "timestamp-swapped":  # a fresh timestamp header on a signature made for an old one
        old = signed_headers(body, content_type=JSON, timestamp=now - 3600)
        return {**old, "X-Slack-Request-Timestamp": str(now)}
    if label == "body-tampered":  # signature of another body
        return signed_headers(body.replace("printer", "payroll"), content_type=JSON)
    if label == "v1-scheme":
        headers = signed_headers(body, content_type=JSON)
        return {**headers, "X-Slack-Signature": headers["X-Slack-Signature"].replace("v0=", "v1=")}
    if label == "signature-truncated":
        headers = signed_headers(body, content_type=JSON)
        return {**headers, "X-Slack-Signature": headers["X-Slack-Signature"][:-8]}
    raise AssertionError(label)


SLACK_FORGERIES = ["unsigned", "no-signature", "wrong-secret", "stale", "future", "timestamp-swapped",
                   "body-tampered", "v1-scheme", "signature-truncated"]


async def test_slack_forgeries_are_refused_401_and_counted(world: World) -> None:
    wrong = []
    for label in SLACK_FORGERIES:
        body = event_body("printer on floor 3 is jammed", event_id=f"EvForged-{label}")
        before = await world.rejected("slack", 401)
        resp = await world.client.post("/slack/events", data=body, headers=_slack_forgery(label, body))
        if resp.status != 401 or await world.rejected("slack", 401) != before + 1:
            wrong.append(f"{label}: {resp.status} {await resp.text()}")
    assert not wrong
    assert await world.count(Ticket) == 0 and await world.count(InboundEvent) == 0


@pytest.mark.parametrize("header", ["X-Slack-Signature", "X-Slack-Request-Timestamp"])
async def test_slack_non_ascii_signature_headers_are_refused_401(world: World, header: str) -> None:
    body = event_body("printer on floor 3 is jammed", event_id="EvForged-non-ascii")
    headers = {**signed_headers(body, content_type=JSON), "Content-Type": JSON}
    headers[header] = "v0=\u00e9" + "0" * 63 if header == "X-Slack-Signature" else "\u0661" * 10  # Arabic-Indic digits
    before = await world.rejected("slack", 401)
    assert b" 401 " in await _raw_post(world, "/slack/events", headers, body.encode())
    assert await world.rejected("slack", 401) == before + 1
    assert await world.count(InboundEvent) == 0


async def test_slack_replayed_event_is_one_ticket_and_counted_as_duplicate(world: World) -> None:
    body = event_body("printer on floor 3 is jammed", event_id="EvReplay")
    headers = signed_headers(body, content_type=JSON)
    dup = 'handoff_duplicate_events_total{platform="slack"}'
    before = await world.metric(dup)
    for _ in range(3):  # the same bytes and headers, as an attacker (or Slack's retry) resends them
        resp = await world.client.post("/slack/events", data=body, headers=headers)
        assert resp.status == 200
    assert await world.count(Ticket) == 1
    assert await world.metric(dup) == before + 2


async def test_slack_replayed_slash_command_opens_one_ticket(world: World) -> None:
    body = command_body("my laptop will not boot", trigger_id="1234.5678.replayed")
    headers = signed_headers(body, content_type=FORM)
    first = await world.client.post("/slack/events", data=body, headers=headers)
    again = await world.client.post("/slack/events", data=body, headers=headers)
    assert first.status == again.status == 200
    assert "IT-" in (await first.json())["text"]
    assert await world.count(Ticket) == 1


async def test_slack_replay_after_the_window_is_refused(world: World) -> None:
    """A captured request replayed later: its signed timestamp is stale, so 401 even for a new event id."""
    ts = int(time.time()) - 600
    body = event_body("printer on floor 3 is jammed", event_id="EvCapturedLongAgo")
    before = await world.rejected("slack", 401)
    resp = await world.client.post("/slack/events", data=body,
                                   headers=signed_headers(body, content_type=JSON, timestamp=ts))
    assert resp.status == 401
    assert await world.rejected("slack", 401) == before + 1
    assert await world.count(Ticket) == 0


# --- Teams ---------------------------------------------------------------------------------------

def _hs256_with_public_key(world: World) -> str:
    """Algorithm confusion: HS256 "signed" with the published RSA public key as the HMAC secret."""
    pem = world.idp.keys[0].private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    claims = world.idp.claims(app_id=APP_ID, service_url=world.connector.service_url)
    header = {"alg": "HS256", "typ": "JWT", "kid": world.idp.keys[0].kid}
    segments = [base64.urlsafe_b64encode(json.dumps(p).encode()).rstrip(b"=") for p in (header, claims)]
    signature = hmac.new(pem, b".".join(segments), hashlib.sha256).digest()
    return b".".join([*segments, base64.urlsafe_b64encode(signature).rstrip(b"=")]).decode()


def _teams_forgery(world: World, label: str) -> str | None:
    url = world.connector.service_url
    if label == "missing":
        return None
    if label == "wrong-key":
        stranger = SigningKey.generate()
        stolen_kid = world.idp.keys[0].kid  # claims to be the published key, signed by another one
        return "Bearer " + world.idp.sign(world.idp.claims(app_id=APP_ID, service_url=url), key=stranger,
                                          headers={"kid": stolen_kid})
    if label == "unknown-key":
        return "Bearer " + world.idp.sign(world.idp.claims(app_id=APP_ID, service_url=url), key=SigningKey.generate())
    if label == "expired":
        return "Bearer " + world.token(exp_delta=-3600)
    if label == "not-yet-valid":
        return "Bearer " + world.token(nbf=int(time.time()) + 3600, exp_delta=7200)
    if label == "wrong-audience":
        return "Bearer " + world.token(aud="00000000-0000-0000-0000-000000000000")
    if label == "wrong-issuer":
        return "Bearer " + world.token(iss="https://sts.windows.net/attacker-tenant/")
    if label == "no-exp":
        return "Bearer " + world.token(exp=None)
    if label == "alg-none":
        return "Bearer " + jwt.encode(world.idp.claims(app_id=APP_ID, service_url=url), None,  # type: ignore[arg-type]
                                      algorithm="none")
    if label == "alg-confusion":
        return "Bearer " + _hs256_with_public_key(world)
    if label == "other-service-url":
        return "Bearer " + world.token(serviceurl="https://smba.attacker.example/amer/")
    raise AssertionError(label)


TEAMS_FORGERIES = ["missing", "wrong-key", "unknown-key", "expired", "not-yet-valid", "wrong-audience", "wrong-issuer",
                   "no-exp", "alg-none", "alg-confusion", "other-service-url"]


async def test_teams_forged_tokens_are_refused_401_and_counted(world: World) -> None:
    wrong = []
    for label in TEAMS_FORGERIES:
        authorization = _teams_forgery(world, label)
        headers = {"Content-Type": JSON, **({"Authorization": authorization} if authorization else {})}
        before = await world.rejected("teams", 401)
        activity = personal_message(world.connector.service_url, "printer on floor 3 is jammed", activity_id=next_id())
        resp = await world.client.post("/api/messages", data=json.dumps(activity), headers=headers)
        if resp.status != 401 or await world.rejected("teams", 401) != before + 1:
            wrong.append(f"{label}: {resp.status} {await resp.text()}")
    assert not wrong
    assert await world.count(Ticket) == 0 and await world.count(InboundEvent) == 0


async def test_teams_replayed_activity_is_one_ticket(world: World) -> None:
    activity = personal_message(world.connector.service_url, "printer on floor 3 is jammed", activity_id=next_id())
    headers = {"Content-Type": JSON, "Authorization": f"Bearer {world.token()}"}
    for _ in range(3):
        resp = await world.client.post("/api/messages", data=json.dumps(activity), headers=headers)
        assert resp.status == 200
    assert await world.count(Ticket) == 1
    assert await world.metric('handoff_duplicate_events_total{platform="teams"}') == 2


# --- MSP callback --------------------------------------------------------------------------------

async def _msp_ticket(world: World) -> str:
    body = event_body("need excel installed on my laptop", event_id="EvForMsp")
    resp = await world.client.post("/slack/events", data=body, headers=signed_headers(body, content_type=JSON))
    assert resp.status == 200
    async with world.client.server.app[CORE].sessionmaker() as session:
        ticket = (await session.execute(select(Ticket))).scalar_one()
    assert ticket.route == "msp"
    return ticket.key


def _msp_headers(body: bytes, *, ts: int, secret: str = MSP_SECRET) -> dict[str, str]:
    return {"Content-Type": JSON, "X-Handoff-Timestamp": str(ts), "X-Handoff-Signature": sign(secret, ts, body)}


def _msp_forgery(label: str, body: bytes, now: int) -> dict[str, str]:
    if label == "unsigned":
        return {"Content-Type": JSON}
    if label == "no-timestamp":
        return {"Content-Type": JSON, "X-Handoff-Signature": sign(MSP_SECRET, now, body)}
    if label == "wrong-secret":
        return _msp_headers(body, ts=now, secret="not-the-msp-secret")
    if label == "stale":
        return _msp_headers(body, ts=now - 3600)
    if label == "future":
        return _msp_headers(body, ts=now + 3600)
    if label == "timestamp-swapped":
        return {**_msp_headers(body, ts=now - 3600), "X-Handoff-Timestamp": str(now)}
    if label == "body-tampered":
        return _msp_headers(body.replace(b"resolved", b"closed"), ts=now)
    if label == "garbage-timestamp":
        return {**_msp_headers(body, ts=now), "X-Handoff-Timestamp": "yesterday"}
    raise AssertionError(label)


MSP_FORGERIES = ["unsigned", "no-timestamp", "wrong-secret", "stale", "future", "timestamp-swapped", "body-tampered",
                 "garbage-timestamp"]


async def test_msp_callback_forgeries_are_refused_401_and_counted(world: World) -> None:
    key = await _msp_ticket(world)
    events = await world.count(TicketEvent)
    wrong = []
    for label in MSP_FORGERIES:
        body = json.dumps({"event_id": f"msp-{label}", "ticket": key, "type": "status", "status": "resolved"}).encode()
        before = await world.rejected("msp", 401)
        now = int(world.clock().timestamp())
        resp = await world.client.post("/msp/callback", data=body, headers=_msp_forgery(label, body, now))
        if resp.status != 401 or await world.rejected("msp", 401) != before + 1:
            wrong.append(f"{label}: {resp.status} {await resp.text()}")
    assert not wrong
    assert await world.count(TicketEvent) == events
    async with world.client.server.app[CORE].sessionmaker() as session:
        ticket = (await session.execute(select(Ticket))).scalar_one()
    assert ticket.status != "resolved" and ticket.msp_status is None


async def test_msp_callback_replay_is_absorbed_then_refused_once_stale(world: World) -> None:
    key = await _msp_ticket(world)
    body = json.dumps({"event_id": "msp-replayed", "ticket": key, "type": "comment",
                       "comment": "We are on it."}).encode()
    headers = _msp_headers(body, ts=int(world.clock().timestamp()))
    first = await world.client.post("/msp/callback", data=body, headers=headers)
    assert first.status == 200 and not (await first.json()).get("duplicate")
    events = await world.count(TicketEvent)
    again = await world.client.post("/msp/callback", data=body, headers=headers)
    assert again.status == 200 and (await again.json())["duplicate"] is True
    assert await world.count(TicketEvent) == events  # the replay changed nothing

    world.clock.offset = timedelta(minutes=10)  # the same captured request, ten minutes later
    before = await world.rejected("msp", 401)
    late = await world.client.post("/msp/callback", data=body, headers=headers)
    assert late.status == 401
    assert await world.rejected("msp", 401) == before + 1
    assert await world.count(TicketEvent) == events
