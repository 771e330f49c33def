"""Pagers: PagerDuty Events v2 trigger / acknowledge / resolve, and Opsgenie create / acknowledge / close.

Real HTTP against the loopback fakes (which validate like the services do); the outbox worker path is
covered at the end through the application.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import CORE, create_app
from bot.connectors import LocalSink, OpsgenieConnector, PagerDutyConnector
from bot.connectors.notify import ChatNotifyConnector
from bot.connectors.opsgenie import build_request
from bot.connectors_setup import build_connectors
from storage import service
from storage.models import OutboxRow
from tests.fakes import FakeOpsgenie, FakePagerDuty
from tests.fakes.opsgenie import validate_create
from tests.helpers import eventually, make_settings

ROUTING_KEY = "R0UT1NGKEY0123456789abcdefABCDEF"
GENIE_KEY = "eb243592-faa2-4ba2-a551-1afdf565c889"
ALIAS = "handoff-incident-12"
NOW = 1_700_000_000.0
TRIGGER = {"event_action": "trigger", "dedup_key": ALIAS, "summary": "E-mail is down for everyone",
           "source": "handoff", "severity": "critical", "custom_details": {"ticket": "IT-1042", "reporters": "40"}}
CREATE = {"action": "create", "alias": ALIAS, "message": "E-mail is down for everyone",
          "description": "40 reports in 2 minutes.\nFirst: Outlook cannot connect", "priority": "P1",
          "details": {"ticket": "IT-1042", "reporters": 40, "rule": "outage-email", "none": None},
          "source": "handoff"}


@pytest.fixture
async def session() -> Any:
    async with aiohttp.ClientSession() as s:
        yield s


def clock() -> float:
    return NOW


def opsgenie(session: aiohttp.ClientSession, fake: FakeOpsgenie, **kw: Any) -> OpsgenieConnector:
    return OpsgenieConnector(session=session, api_key=kw.pop("api_key", GENIE_KEY), api_url=fake.api_url,
                             clock=clock, **kw)


# --- PagerDuty: the same dedup_key for the three actions --------------------------------------------

async def test_pagerduty_one_trigger_then_acknowledged_then_resolved(session: aiohttp.ClientSession) -> None:
    async with FakePagerDuty(routing_keys=[ROUTING_KEY]) as fake:
        pd = PagerDutyConnector(session=session, routing_key=ROUTING_KEY, url=fake.enqueue_url)
        assert (await pd.deliver(payload=TRIGGER, idempotency_key="page:12")).ok
        # an ack row may carry the trigger's fields too: only routing_key, event_action, dedup_key are sent
        for n, action in enumerate(("acknowledge", "acknowledge", "resolve")):
            result = await pd.deliver(payload={**TRIGGER, "event_action": action}, idempotency_key=f"pd:{n}")
            assert result.ok and result.remote_id == ALIAS and result.detail.startswith(action)
            assert fake.requests[-1].json == {"routing_key": ROUTING_KEY, "event_action": action, "dedup_key": ALIAS}
        assert fake.actions_for(ALIAS) == ["trigger", "acknowledge", "acknowledge", "resolve"]
        incident = fake.incident(ALIAS)
        assert incident is not None and incident.history == ["triggered", "acknowledged", "resolved"]
        assert (fake.trigger_count, fake.incidents_opened) == (1, 1)


async def test_pagerduty_acknowledge_of_unknown_key_is_accepted_and_changes_nothing(
        session: aiohttp.ClientSession) -> None:
    # The Events API is asynchronous: PagerDuty answers 202 and drops an event for an alert it does not know.
    async with FakePagerDuty() as fake:
        pd = PagerDutyConnector(session=session, routing_key=ROUTING_KEY, url=fake.enqueue_url)
        result = await pd.deliver(payload={"event_action": "acknowledge", "dedup_key": "never-triggered"},
                                  idempotency_key="k")
        assert result.ok and fake.requests[0].json["dedup_key"] == "never-triggered"
        assert fake.incident("never-triggered") is None and fake.actions_for("never-triggered") == ["acknowledge"]


async def test_pagerduty_resolve_after_resolve_and_retrigger(session: aiohttp.ClientSession) -> None:
    async with FakePagerDuty() as fake:
        pd = PagerDutyConnector(session=session, routing_key=ROUTING_KEY, url=fake.enqueue_url)
        for action in ("trigger", "resolve", "resolve", "acknowledge"):
            assert (await pd.deliver(payload={**TRIGGER, "event_action": action}, idempotency_key=action)).ok
        assert fake.incident(ALIAS).history == ["triggered", "resolved"]  # type: ignore[union-attr]
        assert (await pd.deliver(payload=TRIGGER, idempotency_key="again")).ok
        assert fake.incidents_opened == 2 and fake.incident(ALIAS).history == ["triggered"]  # type: ignore[union-attr]


# --- Opsgenie: requests as the Alert API wants them -------------------------------------------------

async def test_opsgenie_create_body_headers_and_remote_id(session: aiohttp.ClientSession) -> None:
    async with FakeOpsgenie(api_keys=(GENIE_KEY,)) as fake:
        result = await opsgenie(session, fake).deliver(payload=CREATE, idempotency_key="og:12")
        [request] = fake.requests
        assert (request.method, request.path, request.query) == ("POST", "/v2/alerts", {})
        assert request.header("Authorization") == f"GenieKey {GENIE_KEY}"
        assert request.header("Content-Type") == "application/json; charset=utf-8"
        assert request.json == {
            "message": "E-mail is down for everyone", "alias": ALIAS, "priority": "P1",
            "description": CREATE["description"], "source": "handoff",
            "details": {"ticket": "IT-1042", "reporters": "40", "rule": "outage-email"},
        }
        assert result.ok and result.remote_id and result.remote_id in fake.statuses
        assert fake.statuses[result.remote_id].status == "Created alert"
        assert f"request {result.remote_id}" in result.detail and "202" in result.detail
        alert = fake.alert(ALIAS)
        assert alert is not None and alert.status == "open" and alert.priority == "P1"


async def test_opsgenie_message_cut_to_130_and_limits_applied(session: aiohttp.ClientSession) -> None:
    row = {**CREATE, "message": "x" * 400, "description": "d" * 20_000, "source": "s" * 300,
           "details": {f"k{i}": "v" * 1000 for i in range(20)}, "priority": "high"}
    async with FakeOpsgenie(api_keys=(GENIE_KEY,)) as fake:
        assert (await opsgenie(session, fake).deliver(payload=row, idempotency_key="k")).ok
        body = fake.requests[0].json
        assert len(body["message"]) == 130 and body["message"].endswith("\u2026")
        assert len(body["description"]) == 15_000 and len(body["source"]) == 100 and body["priority"] == "P2"
        assert sum(len(k) + len(v) for k, v in body["details"].items()) <= 8000
        assert validate_create(body) == {}


async def test_opsgenie_acknowledge_and_close_by_alias(session: aiohttp.ClientSession) -> None:
    alias = "handoff:incident/12 e-mail"  # needs encoding in the path
    async with FakeOpsgenie(api_keys=(GENIE_KEY,)) as fake:
        og = opsgenie(session, fake)
        assert (await og.deliver(payload={**CREATE, "alias": alias}, idempotency_key="c")).ok
        ack = await og.deliver(payload={"action": "acknowledge", "alias": alias, "user": "Olga (slack:U0ONCALL)",
                                        "note": "Acknowledged in Slack"}, idempotency_key="a")
        close = await og.deliver(payload={"action": "close", "alias": alias}, idempotency_key="r")
        assert ack.ok and close.ok and ack.remote_id != close.remote_id
        _, ack_req, close_req = fake.requests
        assert ack_req.path == f"/v2/alerts/{alias}/acknowledge" and ack_req.query == {"identifierType": "alias"}
        assert ack_req.json == {"source": "handoff", "user": "Olga (slack:U0ONCALL)", "note": "Acknowledged in Slack"}
        assert close_req.path == f"/v2/alerts/{alias}/close" and close_req.json == {"source": "handoff"}
        alert = fake.alert(alias)
        assert alert is not None and alert.history == ["open", "acknowledged", "closed"]
        assert alert.notes == ["Acknowledged in Slack"]
        assert fake.actions_for(alias) == ["create", "acknowledge", "close"]


async def test_opsgenie_create_twice_is_one_alert(session: aiohttp.ClientSession) -> None:
    async with FakeOpsgenie(api_keys=(GENIE_KEY,)) as fake:
        og = opsgenie(session, fake)
        first = await og.deliver(payload=CREATE, idempotency_key="k")
        retry = await og.deliver(payload=CREATE, idempotency_key="k")  # a retry after an unknown outcome
        assert first.ok and retry.ok and len(fake.alerts) == 1
        assert fake.alert(ALIAS).count == 2  # type: ignore[union-attr]
        assert fake.statuses[retry.remote_id or ""].status == "Alert count incremented"


async def test_opsgenie_acknowledge_of_unknown_alias_is_accepted_and_fails_later(
        session: aiohttp.ClientSession) -> None:
    async with FakeOpsgenie(api_keys=(GENIE_KEY,)) as fake:
        result = await opsgenie(session, fake).deliver(payload={"action": "acknowledge", "alias": "nope"},
                                                       idempotency_key="k")
        assert result.ok and result.remote_id
        async with session.get(fake.url_for(f"/v2/alerts/requests/{result.remote_id}"),
                               headers={"Authorization": f"GenieKey {GENIE_KEY}"}) as resp:
            data = (await resp.json())["data"]
        assert data["isSuccess"] is False and data["status"] == "Alert does not exist"


def test_opsgenie_identifier_type_matters() -> None:
    path, body = build_request({"action": "close", "alias": "a b/c"})
    assert path == "/v2/alerts/a%20b%2Fc/close?identifierType=alias" and body == {"source": "handoff"}


async def test_fake_opsgenie_without_identifier_type_looks_up_ids(session: aiohttp.ClientSession) -> None:
    # Without identifierType=alias Opsgenie reads the identifier as an alert id: the action fails later.
    async with FakeOpsgenie(api_keys=(GENIE_KEY,)) as fake:
        await opsgenie(session, fake).deliver(payload=CREATE, idempotency_key="k")
        async with session.post(fake.url_for(f"/v2/alerts/{ALIAS}/close"), json={},
                                headers={"Authorization": f"GenieKey {GENIE_KEY}"}) as resp:
            request_id = (await resp.json())["requestId"]
        assert resp.status == 202 and fake.statuses[request_id].status == "Alert does not exist"
        assert fake.alert(ALIAS).status == "open"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("status", "headers", "retry_after"),
    [(429, {"Retry-After": "7"}, 7.0), (429, {"X-RateLimit-Period-In-Sec": "60", "X-RateLimit-State": "THROTTLED"}, 60.0),
     (429, None, None), (500, None, None), (503, {"Retry-After": "2"}, 2.0)],
)
async def test_opsgenie_retryable_answers(session: aiohttp.ClientSession, status: int, headers: Any,
                                          retry_after: float | None) -> None:
    async with FakeOpsgenie(api_keys=(GENIE_KEY,)) as fake:
        fake.fail_next(1, status=status, headers=headers)
        result = await opsgenie(session, fake).deliver(payload=CREATE, idempotency_key="k")
        assert (result.ok, result.retryable, result.retry_after) == (False, True, retry_after)
        assert GENIE_KEY not in result.detail


@pytest.mark.parametrize("status", [400, 402, 403, 404, 422])
async def test_opsgenie_other_4xx_are_dead(session: aiohttp.ClientSession, status: int) -> None:
    async with FakeOpsgenie(api_keys=(GENIE_KEY,)) as fake:
        fake.fail_next(1, status=status)
        result = await opsgenie(session, fake).deliver(payload=CREATE, idempotency_key="k")
        assert (result.ok, result.retryable) == (False, False) and f"HTTP {status}" in result.detail


async def test_opsgenie_wrong_key_is_dead_and_never_shown(session: aiohttp.ClientSession,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "0badc0de-0000-4000-8000-secretsecret"
    async with FakeOpsgenie(api_keys=(GENIE_KEY,)) as fake:
        og = opsgenie(session, fake, api_key=wrong)
        result = await og.deliver(payload=CREATE, idempotency_key="k")
        assert (result.ok, result.retryable) == (False, False)
        assert "HTTP 401" in result.detail and "Could not authenticate" in result.detail
        for text in (result.detail, repr(og), caplog.text):
            assert wrong not in text and GENIE_KEY not in text
        assert fake.alerts == {}


async def test_opsgenie_422_names_the_field(session: aiohttp.ClientSession) -> None:
    async with FakeOpsgenie(api_keys=(GENIE_KEY,)) as fake:
        async with session.post(fake.url_for("/v2/alerts"), json={"alias": "x", "priority": "P9"},
                                headers={"Authorization": f"GenieKey {GENIE_KEY}"}) as resp:
            body = await resp.json()
        assert resp.status == 422 and set(body["errors"]) == {"message", "priority"} and body["requestId"]
        async with session.post(fake.url_for("/v2/alerts"), json=CREATE,
                                headers={"Authorization": f"Bearer {GENIE_KEY}"}) as resp:
            assert resp.status == 401 and (await resp.json())["message"] == "Key format is not valid!"
        async with session.post(fake.url_for("/v2/alerts"), data=b"{not json",
                                headers={"Authorization": f"GenieKey {GENIE_KEY}"}) as resp:
            assert resp.status == 400


@pytest.mark.parametrize("row", [
    {"alias": ALIAS, "message": "m"}, {**CREATE, "action": "snooze"}, {**CREATE, "alias": " "},
    {**CREATE, "message": "  "}, {**CREATE, "priority": "urgent"}, {**CREATE, "alias": "a" * 513},
    {"action": "close"},
])
async def test_opsgenie_invalid_rows_are_dead_without_sending(session: aiohttp.ClientSession,
                                                              row: dict[str, Any]) -> None:
    async with FakeOpsgenie(api_keys=(GENIE_KEY,)) as fake:
        result = await opsgenie(session, fake).deliver(payload=row, idempotency_key="k")
        assert (result.ok, result.retryable) == (False, False) and result.detail.startswith("invalid request:")
        assert fake.requests == []


async def test_opsgenie_timeout_and_refused_are_retryable(session: aiohttp.ClientSession) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{sock.getsockname()[1]}"
    async with FakeOpsgenie(api_keys=(GENIE_KEY,)) as fake:
        fake.delay_next(1, 5.0)
        slow = await opsgenie(session, fake, timeout=0.2).deliver(payload=CREATE, idempotency_key="k")
    gone = await OpsgenieConnector(session=session, api_key=GENIE_KEY, api_url=refused).deliver(
        payload=CREATE, idempotency_key="k")
    for result in (slow, gone):
        assert (result.ok, result.retryable) == (False, True) and GENIE_KEY not in result.detail


# --- wiring ------------------------------------------------------------------------------------------

async def test_build_connectors_registers_opsgenie_and_chat_notify(db_url: str) -> None:
    async with aiohttp.ClientSession() as http:
        plain = build_connectors(make_settings(db_url), http)
        with_key = build_connectors(make_settings(db_url, OPSGENIE_API_KEY=GENIE_KEY,
                                                  OPSGENIE_API_URL="https://api.eu.opsgenie.com"), http)
    assert isinstance(plain["opsgenie"], LocalSink) and isinstance(plain["chat.notify"], ChatNotifyConnector)
    assert isinstance(with_key["opsgenie"], OpsgenieConnector)
    assert "api.eu.opsgenie.com" in repr(with_key["opsgenie"]) and GENIE_KEY not in repr(with_key["opsgenie"])


async def test_outbox_rows_reach_opsgenie_through_the_worker(db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with FakeOpsgenie(api_keys=(GENIE_KEY,)) as fake:
        settings = make_settings(db_url, OPSGENIE_API_KEY=GENIE_KEY, OPSGENIE_API_URL=fake.api_url)
        settings.delivery.poll_interval_seconds = 0.05
        async with TestClient(TestServer(create_app(settings))) as client:
            core = client.server.app[CORE]
            now = datetime.now(UTC)
            for n, row in enumerate((CREATE, {"action": "acknowledge", "alias": ALIAS},
                                     {"action": "close", "alias": ALIAS, "note": "not critical"})):
                async with core.sessionmaker.begin() as session:
                    await service.enqueue(session=session, kind="opsgenie", payload=row, now=now,
                                          idempotency_key=f"opsgenie:12:{n}")
                core.worker.wake()
                await eventually(lambda n=n: len(fake.accepted) == n + 1)
            rows = await delivered(core, "opsgenie", 3)
        assert fake.alert(ALIAS).history == ["open", "acknowledged", "closed"]  # type: ignore[union-attr]
        assert sorted(r.remote_id or "" for r in rows) == sorted(fake.statuses)
        assert GENIE_KEY not in caplog.text


async def delivered(core: Any, kind: str, count: int) -> list[OutboxRow]:
    """The ``kind`` rows once ``count`` of them are delivered (the worker records outcomes after sending)."""
    for _ in range(250):
        async with core.sessionmaker() as session:
            rows = await service.list_outbox(session=session, limit=50, kind=kind)
        if sum(r.status == "delivered" for r in rows) >= count:
            return list(rows)
        await asyncio.sleep(0.02)
    raise AssertionError(f"{kind} rows not delivered: {[(r.status, r.last_error) for r in rows]}")
