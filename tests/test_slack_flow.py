"""The whole request path through Slack: a signed request in, the fakes receive the right bodies."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select, text

from bot.app import CORE, create_app
from storage.models import InboundEvent, OutboxRow, Ticket
from tests.fakes.msp import FakeMsp
from tests.fakes.pagerduty import FakePagerDuty
from tests.fakes.slack_api import FakeSlackApi
from tests.helpers import (
    BOT_TOKEN,
    SIGNING_SECRET,
    command_body,
    event_body,
    eventually,
    make_settings,
    signed_headers,
)

MSP_SECRET = "msp-shared-secret-for-tests"
ROUTING_KEY = "R0123456789abcdef0123456789abcde"  # 32 characters like a real integration key

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


@dataclass
class World:
    client: TestClient
    msp: FakeMsp
    pd: FakePagerDuty
    slack: FakeSlackApi

    async def post_event(self, body: str, **headers: str) -> Any:
        return await self.client.post("/slack/events", data=body, headers=signed_headers(body, content_type=JSON, extra=headers))

    async def count(self, model: Any) -> int:
        core = self.client.server.app[CORE]
        async with core.sessionmaker() as session:
            return int((await session.execute(select(func.count()).select_from(model))).scalar_one())

    async def tickets(self) -> list[Ticket]:
        core = self.client.server.app[CORE]
        async with core.sessionmaker() as session:
            return list((await session.execute(select(Ticket).order_by(Ticket.id))).scalars())


@pytest.fixture
async def world(db_url: str) -> AsyncIterator[World]:
    async with FakeMsp() as msp, FakePagerDuty() as pd, FakeSlackApi(token=BOT_TOKEN) as slack:
        settings = make_settings(
            db_url,
            SLACK_SIGNING_SECRET=SIGNING_SECRET, SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_API_URL=slack.api_base,
            HANDOFF_MSP_URL=msp.tickets_url, HANDOFF_MSP_SECRET=MSP_SECRET,
            PAGERDUTY_ROUTING_KEY=ROUTING_KEY, PAGERDUTY_EVENTS_URL=pd.enqueue_url,
        )
        settings.delivery.backoff_base_seconds = 0.01
        settings.delivery.poll_interval_seconds = 0.05
        app = create_app(settings)
        async with TestClient(TestServer(app)) as client:
            yield World(client, msp, pd, slack)


async def test_dm_becomes_msp_ticket_and_threaded_reply(world: World) -> None:
    resp = await world.post_event(event_body("Outlook keeps crashing when I open attachments", event_id="Ev1"))
    assert resp.status == 200

    [request] = await world.msp.wait_for_requests(1, timeout=5)
    body = request.json
    assert body["route"] == "msp" and body["queue"] == "msp-service-desk"
    assert body["id"].startswith("IT-") and body["text"].startswith("Outlook keeps crashing")
    for key in ("severity", "rule", "ruleset_version", "requester", "created_at"):
        assert key in body
    assert body["requester"]["user_id"] == "U0EMPLOYEE"
    assert request.header("Idempotency-Key")
    assert FakeMsp.verify_signature(request, MSP_SECRET)
    assert not FakeMsp.verify_signature(request, "another-secret")

    post = (await eventually(lambda: world.slack.posts_to("D0DM")))[0]
    assert body["id"] in post["text"] and "service desk" in post["text"]
    assert post["thread_ts"] == "1726133700.887259"
    assert world.pd.requests == []  # routine support never pages


async def test_the_msp_learns_the_requester_s_name_from_slack(world: World) -> None:
    # A Slack message carries a user id, no name: the MSP's technicians need to know who asked.
    world.slack.add_user("U0ADA", name="ada", real_name="Ada Lovelace")
    sent = (("U0ADA", "EvNamed"), ("U0GHOST", "EvUnknown"), ("U0ADA", "EvNamedAgain"),
            ("U0GHOST", "EvUnknownAgain"))  # U0GHOST: user_not_found
    for user, event_id in sent:
        assert (await world.post_event(event_body(f"outlook keeps crashing ({event_id})", event_id=event_id,
                                                  user=user, channel=f"D{user}"))).status == 200
    requests = await world.msp.wait_for_requests(4, timeout=5)
    names = sorted((r.json["requester"]["user_id"], r.json["requester"]["name"]) for r in requests)
    assert names == [("U0ADA", "Ada Lovelace")] * 2 + [("U0GHOST", "")] * 2  # delivered either way
    assert len(world.slack.calls("users.info")) == 2  # asked once each: a name, and its absence, are cached


async def test_a_critical_report_in_an_msp_ticket_s_thread_pages_instead_of_going_to_the_msp(world: World) -> None:
    assert (await world.post_event(event_body("need excel installed on my laptop", event_id="EvExcel",
                                              ts="1726133700.000100"))).status == 200
    reply = event_body("ransomware note on my screen, files renamed .locked", event_id="EvInThread",
                       ts="1726133900.000200", thread_ts="1726133700.000100")
    assert (await world.post_event(reply)).status == 200
    first, second = await world.tickets()
    assert first.route == "msp" and second.route == "page"  # a request of its own, not a comment
    await world.pd.wait_for_requests(1, timeout=5)  # paged
    await world.msp.wait_for_requests(1, timeout=5)
    await asyncio.sleep(0.3)
    assert [r.json.get("event") for r in world.msp.requests] == ["ticket.created"]  # nothing forwarded
    assert world.msp.requests[0].json["id"] == first.key
    comment = event_body("it also happens in word", event_id="EvComment", ts="1726133950.000300",
                         thread_ts="1726133700.000100")
    assert (await world.post_event(comment)).status == 200  # an ordinary reply is still a comment
    assert await world.count(Ticket) == 2


async def test_ransomware_pages_and_never_reaches_msp(world: World) -> None:
    resp = await world.post_event(event_body("ransomware note on my screen, files renamed .locked", event_id="Ev2"))
    assert resp.status == 200
    [request] = await world.pd.wait_for_requests(1, timeout=5)
    event = request.json
    assert event["event_action"] == "trigger" and event["routing_key"] == ROUTING_KEY
    assert event["payload"]["severity"] == "critical"
    assert "ransomware" in event["payload"]["summary"].lower()
    assert event["dedup_key"] and event["payload"]["custom_details"]["ticket"].startswith("IT-")
    post = (await eventually(lambda: world.slack.posts_to("D0DM")))[0]
    assert "paged" in post["text"]
    incident = await eventually(lambda: world.pd.incident(event["dedup_key"]))
    assert incident is not None  # the fake accepted it (it validates the body like PagerDuty)
    assert world.msp.requests == []
    [ticket] = await world.tickets()
    assert ticket.route == "page" and ticket.rule_id


async def test_slack_retry_of_same_event_makes_one_ticket(world: World) -> None:
    body = event_body("printer on floor 3 is jammed", event_id="EvRetry")
    first = await world.post_event(body)
    again = await world.post_event(body, **{"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"})
    assert first.status == 200 and again.status == 200
    await world.msp.wait_for_requests(1, timeout=5)
    assert await world.count(Ticket) == 1
    assert await world.count(InboundEvent) == 1
    assert len(world.slack.posts_to("D0DM")) <= 1


@pytest.mark.parametrize("failure", ["ratelimited", "internal_error"])
async def test_auth_test_failure_is_a_503_and_slack_retry_makes_the_ticket(
        world: World, failure: str, caplog: pytest.LogCaptureFixture) -> None:
    # bolt calls auth.test on the first request; when Slack refuses it, bolt itself answers 200 and runs
    # no listener: acknowledged and lost, unless the edge makes it a 503 Slack retries.
    if failure == "ratelimited":
        world.slack.ratelimit_next(1)
    else:
        world.slack.error_next(failure, 1)
    body = event_body("my laptop will not boot after the update", event_id="EvAuthTest")
    first = await world.post_event(body)
    assert first.status == 503 and first.headers["Retry-After"] == "1"
    assert await world.count(Ticket) == 0 and await world.count(InboundEvent) == 0
    assert "auth.test failed" in caplog.text
    again = await world.post_event(body, **{"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_error"})
    assert again.status == 200
    assert await world.count(Ticket) == 1
    assert len(world.slack.calls("auth.test")) == 2


async def test_a_database_outage_is_a_503_counted_once(world: World) -> None:
    """Slack's edge answers its listener's failure itself (and counts it); the application's error
    middleware, which counts the 503s of the other edges, must not count it again."""
    core = world.client.server.app[CORE]
    async with core.engine.begin() as conn:
        await conn.execute(text("ALTER TABLE tickets RENAME TO tickets_away"))
    try:
        resp = await world.post_event(event_body("printer on floor 3 is jammed", event_id="EvDbDown"))
    finally:
        async with core.engine.begin() as conn:
            await conn.execute(text("ALTER TABLE tickets_away RENAME TO tickets"))
    assert resp.status == 503
    metrics = await (await world.client.get("/metrics")).text()
    assert 'handoff_http_rejected_total{platform="slack",status="503"} 1.0' in metrics


async def test_secret_is_redacted_everywhere_and_employee_told(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "Tr0ub4dor&3xyz"
    await world.post_event(event_body(f"vpn fails, my password is {secret} if you need it", event_id="EvSecret"))
    [request] = await world.msp.wait_for_requests(1, timeout=5)
    assert secret not in request.body.decode()
    assert "[redacted:password]" in request.json["text"]
    post = (await eventually(lambda: world.slack.posts_to("D0DM")))[0]
    assert "password" in post["text"] and ("change" in post["text"] or "rotate" in post["text"])
    assert secret not in json.dumps(post)
    [ticket] = await world.tickets()
    assert secret not in ticket.text and ticket.redactions == ["password"]
    core = world.client.server.app[CORE]
    async with core.sessionmaker() as session:
        rows = (await session.execute(select(OutboxRow))).scalars().all()
    assert rows and not any(secret in json.dumps(r.payload) for r in rows)
    assert caplog.records and secret not in caplog.text


async def test_msp_500_then_429_then_delivered_once(world: World) -> None:
    world.msp.fail_next(1, status=500)
    world.msp.fail_next(1, status=429, headers={"Retry-After": "1"})
    await world.post_event(event_body("need excel installed on my laptop", event_id="EvRetryMsp"))
    requests = await world.msp.wait_for_requests(3, timeout=10)
    assert [r.json["id"] for r in requests] == [requests[0].json["id"]] * 3
    assert len({r.header("Idempotency-Key") for r in requests}) == 1
    assert requests[2].received_at - requests[1].received_at >= 0.9  # Retry-After honoured
    assert world.msp.unique_tickets == 1
    core = world.client.server.app[CORE]

    async def delivered() -> Any:
        async with core.sessionmaker() as session:
            row = (await session.execute(select(OutboxRow).where(OutboxRow.kind == "msp"))).scalar_one()
            return row if row.status == "delivered" else None

    row = None
    deadline = time.monotonic() + 5
    while row is None and time.monotonic() < deadline:
        row = await delivered()
    assert row is not None and row.attempts >= 2


async def test_an_msp_outage_shows_as_a_backlog_that_ages_while_the_service_stays_ready(world: World) -> None:
    """A row waiting to retry is never due for long, yet it is undelivered: it counts as retrying (not
    as scheduled, which is the SLA check written for later) and ages from its first due time."""
    world.msp.fail_next(5, status=503, headers={"Retry-After": "60"})
    await world.post_event(event_body("need excel installed on my laptop", event_id="EvOutage"))
    await world.msp.wait_for_requests(1, timeout=5)
    core = world.client.server.app[CORE]

    async def attempts() -> int:
        async with core.sessionmaker() as session:
            return int(await session.scalar(select(OutboxRow.attempts).where(OutboxRow.kind == "msp")) or 0)

    deadline = time.monotonic() + 5
    while not await attempts() and time.monotonic() < deadline:  # the worker records the 503
        await asyncio.sleep(0.02)
    text = await (await world.client.get("/metrics")).text()
    figures = {name: float(value) for name, value in (line.split() for line in text.splitlines()
                                                     if line.startswith("handoff_outbox_"))}
    assert figures["handoff_outbox_retrying"] == 1.0 and figures["handoff_outbox_scheduled"] == 1.0
    assert figures["handoff_outbox_oldest_pending_seconds"] > 0.0
    ready = await world.client.get("/readyz")  # the service still takes requests: ready
    assert ready.status == 200 and (await ready.json())["outbox"]["retrying"] == 1


async def test_msp_4xx_is_dead_lettered_and_reported(world: World) -> None:
    world.msp.fail_next(1, status=422, body={"error": "queue unknown"})
    await world.post_event(event_body("how do I add a shared mailbox", event_id="EvDead"))
    await world.msp.wait_for_requests(1, timeout=5)
    core = world.client.server.app[CORE]

    async def kinds() -> dict[str, str]:
        async with core.sessionmaker() as session:
            rows = (await session.execute(select(OutboxRow))).scalars().all()
            return {r.kind: r.status for r in rows}

    deadline = time.monotonic() + 5
    seen: dict[str, str] = {}
    while time.monotonic() < deadline:
        seen = await kinds()
        if seen.get("msp") == "dead" and "admin.alert" in seen:
            break
    assert seen.get("msp") == "dead" and "admin.alert" in seen
    assert len(world.msp.requests) == 1  # a 4xx is not retried


async def test_slash_command_answers_immediately_with_ticket(world: World) -> None:
    body = command_body("my laptop will not boot")
    resp = await world.client.post("/slack/events", data=body, headers=signed_headers(body, content_type=FORM))
    assert resp.status == 200
    answer = await resp.json()
    assert answer["response_type"] == "ephemeral" and "IT-" in answer["text"]
    await world.msp.wait_for_requests(1, timeout=5)

    help_body = command_body("help", trigger_id="t2")
    resp = await world.client.post("/slack/events", data=help_body, headers=signed_headers(help_body, content_type=FORM))
    assert "handoff" in (await resp.json())["text"]
    assert await world.count(Ticket) == 1


@pytest.mark.parametrize("where", ["text", "channel_name"])
async def test_slash_command_with_the_word_payload_is_a_request(world: World, where: str) -> None:
    # bolt reads a form body containing "payload" anywhere as an interactivity payload (and finds
    # none): the edge hands bolt the form it checked instead.
    body = command_body("the payload upload to sharepoint fails" if where == "text" else "my laptop will not boot")
    body = body.replace("channel_name=general", "channel_name=payments-payload-team")
    resp = await world.client.post("/slack/events", data=body, headers=signed_headers(body, content_type=FORM))
    assert resp.status == 200
    assert "IT-" in (await resp.json())["text"]
    assert await world.count(Ticket) == 1


async def test_app_mention_in_channel_replies_in_thread(world: World) -> None:
    body = event_body("<@UBOT> the wifi in meeting room 2 keeps dropping", event_id="EvMention",
                      event_type="app_mention", channel="C0GENERAL", channel_type="channel", ts="1700000000.000100")
    assert (await world.post_event(body)).status == 200
    post = (await eventually(lambda: world.slack.posts_to("C0GENERAL")))[0]
    assert post["thread_ts"] == "1700000000.000100"
    [ticket] = await world.tickets()
    assert "<@UBOT>" not in ticket.text


async def test_channel_message_without_mention_and_bot_messages_are_ignored(world: World) -> None:
    chatter = event_body("lunch anyone?", event_id="EvChan", channel="C0GENERAL", channel_type="channel")
    own = event_body("Ticket IT-1 is with ...", event_id="EvBot", bot_id="B111")
    edit = event_body("edited", event_id="EvEdit", subtype="message_changed")
    for body in (chatter, own, edit):
        assert (await world.post_event(body)).status == 200
    assert await world.count(Ticket) == 0


async def test_dm_with_files_is_a_request_that_names_them(world: World) -> None:
    files = [{"id": f"F0{i}", "name": f"error-{i}.png", "mimetype": "image/png",
              "url_private": f"https://files.slack.com/files-pri/T111-F0{i}/error-{i}.png"} for i in range(7)]
    shared = event_body("outlook keeps crashing on startup, screenshot attached", event_id="EvFile",
                        subtype="file_share", files=files[:1], upload=False)
    alone = event_body("", event_id="EvFileOnly", ts="1726133800.000100", subtype="file_share", files=files, upload=False)
    for body in (shared, alone):
        assert (await world.post_event(body)).status == 200
    first, second = await world.tickets()
    assert first.text == "outlook keeps crashing on startup, screenshot attached\n[attached in Slack: error-0.png]"
    assert first.route == "msp" and "files.slack.com" not in first.text
    assert second.text == "[attached in Slack: error-0.png, error-1.png, error-2.png, error-3.png, error-4.png, +2 more]"
    await eventually(lambda: len(world.slack.posts_to("D0DM")) == 2)  # each employee is answered


@pytest.mark.parametrize(
    ("label", "status"),
    [("unsigned", 401), ("wrong-secret", 401), ("stale", 401), ("bad-json", 400), ("not-object", 400),
     ("no-event-id", 400), ("oversized", 413), ("wrong-type", 400), ("bad-timestamp", 401)],
)
async def test_bad_requests_get_4xx_and_change_nothing(world: World, label: str, status: int) -> None:
    good = event_body("hello", event_id="EvBad")
    headers = signed_headers(good, content_type=JSON)
    body = good
    if label == "unsigned":
        headers = {"Content-Type": JSON}
    elif label == "wrong-secret":
        headers = signed_headers(good, content_type=JSON, secret="not-the-secret")
    elif label == "stale":
        headers = signed_headers(good, content_type=JSON, timestamp=int(time.time()) - 3600)
    elif label == "bad-timestamp":
        headers = {**headers, "X-Slack-Request-Timestamp": "yesterday"}
    elif label == "bad-json":
        body = '{"type": "event_callback", "event": '
        headers = signed_headers(body, content_type=JSON)
    elif label == "not-object":
        body = "[1, 2, 3]"
        headers = signed_headers(body, content_type=JSON)
    elif label == "no-event-id":
        body = json.dumps({"type": "event_callback", "event": {"type": "message", "text": "x"}})
        headers = signed_headers(body, content_type=JSON)
    elif label == "oversized":
        body = event_body("x" * 300_000, event_id="EvHuge")
        headers = signed_headers(body, content_type=JSON)
    elif label == "wrong-type":
        headers = signed_headers(good, content_type="text/plain")
    resp = await world.client.post("/slack/events", data=body, headers=headers)
    assert resp.status == status, await resp.text()
    assert await world.count(Ticket) == 0


async def test_url_verification_and_unknown_events_are_acknowledged(world: World) -> None:
    body = json.dumps({"token": "t", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
                       "type": "url_verification"})
    resp = await world.post_event(body)
    assert resp.status == 200 and "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P" in await resp.text()
    unknown = event_body("x", event_id="EvUnknown", event_type="reaction_added")
    assert (await world.post_event(unknown)).status == 200
    assert await world.count(Ticket) == 0


async def test_health_and_metrics(world: World) -> None:
    assert (await world.client.get("/healthz")).status == 200
    ready = await world.client.get("/readyz")
    assert ready.status == 200 and (await ready.json())["checks"]["database"] == "ok"
    await world.post_event(event_body("teams keeps logging me out", event_id="EvM"))
    await world.msp.wait_for_requests(1, timeout=5)
    await world.post_event(event_body("ransomware note on my screen, files renamed .locked", event_id="EvP"))
    await world.post_event(event_body("ransomware note on my screen, files renamed .locked", event_id="EvP"))

    async def metrics() -> str:
        return await (await world.client.get("/metrics")).text()

    # The MSP has the request before the worker has recorded its outcome (and the delivery histogram).
    deadline = time.monotonic() + 5
    while "handoff_delivery_seconds_bucket" not in (text := await metrics()) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert 'handoff_requests_total{platform="slack",route="msp"} 1.0' in text
    assert 'handoff_requests_total{platform="slack",route="page"} 1.0' in text
    assert 'handoff_duplicate_events_total{platform="slack"} 1.0' in text
    assert 'handoff_pages_total{outcome="paged"} 1.0' in text  # PagerDuty is the pager here
    assert "handoff_classify_seconds_count 2.0" in text
    for name in ("handoff_deliveries_total", "handoff_outbox_pending", "handoff_outbox_oldest_pending_seconds",
                 "handoff_outbox_scheduled 1.0",  # the MSP ticket's first-response watchdog
                 "handoff_outbox_dead", "handoff_intake_seconds_bucket", "handoff_delivery_seconds_bucket"):
        assert name in text, name
    ready = await (await world.client.get("/readyz")).json()
    assert ready["checks"] == {"database": "ok", "worker": "ok"} and "pending" in ready["outbox"]
