"""Socket Mode: with SLACK_APP_TOKEN set the bot needs no public URL and behaves the same."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import unquote_plus

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from bot.app import CORE, METRICS, create_app
from bot.logs import RequestIdFilter
from storage.models import Ticket
from tests.fakes.msp import FakeMsp
from tests.fakes.slack_socket import FakeSlackSocketMode
from tests.helpers import (
    BOT_TOKEN,
    SIGNING_SECRET,
    command_body,
    event_body,
    eventually,
    make_settings,
)

APP_TOKEN = "xapp-1-A111-1111-fake"
#: What the Socket Mode client logs while reading the socket, before any envelope is handled (as
#: aiohttp's access log is written outside a request's handling): no request id there.
TRANSPORT = ("Received message", "A new message enqueued", "Message processing")


@dataclass
class World:
    slack: FakeSlackSocketMode
    msp: FakeMsp
    app: web.Application

    async def tickets(self) -> int:
        async with self.app[CORE].sessionmaker() as session:
            return int((await session.execute(select(func.count()).select_from(Ticket))).scalar_one())


@pytest.fixture
async def world(tmp_path: object) -> AsyncIterator[World]:
    """The app in Socket Mode, connected to the fake Slack (no HTTP endpoint is used), and a fake MSP."""
    async with FakeSlackSocketMode(token=BOT_TOKEN, app_token=APP_TOKEN) as slack, FakeMsp() as msp:
        settings = make_settings(
            f"sqlite:///{tmp_path}/socket.db", SLACK_SIGNING_SECRET=SIGNING_SECRET, SLACK_BOT_TOKEN=BOT_TOKEN,
            SLACK_APP_TOKEN=APP_TOKEN, SLACK_API_URL=slack.api_base, HANDOFF_MSP_URL=msp.tickets_url,
        )
        settings.delivery.poll_interval_seconds = 0.05
        app = create_app(settings)
        async with TestClient(TestServer(app)):
            await slack.wait_connected()
            yield World(slack, msp, app)


async def test_socket_mode_events_and_commands(world: World) -> None:
    slack, msp = world.slack, world.msp
    opened = slack.calls("apps.connections.open")
    assert opened and opened[0].header("Authorization") == f"Bearer {APP_TOKEN}"

    body = json.loads(event_body("outlook keeps crashing", event_id="EvSock1"))
    envelope = await slack.send_envelope("events_api", body)
    assert (await slack.wait_ack(envelope))["envelope_id"] == envelope
    [request] = await msp.wait_for_requests(1, timeout=5)
    assert request.json["text"] == "outlook keeps crashing"
    post = (await eventually(lambda: slack.posts_to("D0DM")))[0]
    assert request.json["id"] in post["text"]

    # Slack redelivers an unacknowledged envelope: same event id, still one ticket.
    again = await slack.send_envelope("events_api", body, retry_attempt=1)
    await slack.wait_ack(again)

    form = dict(pair.split("=", 1) for pair in command_body("printer jammed").split("&"))
    command = {k: unquote_plus(v) for k, v in form.items()}
    cmd_envelope = await slack.send_envelope("slash_commands", command)
    ack = await slack.wait_ack(cmd_envelope)
    assert "IT-" in ack["payload"]["text"]
    assert await world.tickets() == 2


async def test_socket_mode_leaves_an_envelope_unacknowledged_when_auth_test_fails(world: World) -> None:
    slack = world.slack
    slack.error_next("internal_error", 1)  # bolt's auth.test on the first envelope
    body = json.loads(event_body("outlook keeps crashing", event_id="EvSockAuth"))
    first = await slack.send_envelope("events_api", body)
    await eventually(lambda: slack.calls("auth.test"))
    with pytest.raises(TimeoutError):  # not acknowledged: Slack sends it again
        await slack.wait_ack(first, timeout=1.0)
    again = await slack.send_envelope("events_api", body, retry_attempt=1)
    await slack.wait_ack(again)
    assert await world.tickets() == 1


class RequestIds(logging.Handler):
    """Each record's logger, message and request id, as the process's log handler would write them."""

    def __init__(self) -> None:
        super().__init__()
        self.addFilter(RequestIdFilter())
        self.seen: list[tuple[str, str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append((record.name, record.getMessage(), getattr(record, "request_id", "")))


async def test_socket_mode_envelopes_are_logged_under_their_id_and_timed(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    """As over HTTP: every line logged while an envelope is handled carries a request id (the
    envelope's, so Slack's side and ours match), and its acknowledgement is timed."""
    ids = RequestIds()
    caplog.set_level(logging.DEBUG, logger="handoff.slack_bolt")
    logging.getLogger().addHandler(ids)
    try:
        body = json.loads(event_body("outlook keeps crashing", event_id="EvSockObs"))
        envelope = await world.slack.send_envelope("events_api", body)
        await world.slack.wait_ack(envelope)
    finally:
        logging.getLogger().removeHandler(ids)
    handled = [(message, rid) for name, message, rid in ids.seen
               if name == "handoff.slack_bolt" and not message.startswith(TRANSPORT)]
    assert any(message.startswith("Running listener") for message, _ in handled)
    assert {rid for _, rid in handled} == {envelope}
    metrics = world.app[METRICS].render().decode()
    assert 'handoff_intake_seconds_count{platform="slack"} 1.0' in metrics
