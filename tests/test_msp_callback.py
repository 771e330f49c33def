"""``POST /msp/callback`` through the real application: signed like the docs say, refusals change nothing."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select, text

from bot.app import CORE, create_app
from handlers.msp_updates import BadUpdate, answer_hint, parse_update
from storage.models import InboundEvent, OutboxRow, TicketEvent
from tests.helpers import make_settings
from tests.ticket_env import (
    EMPLOYEE,
    INTERNAL_TEXT,
    MSP_TEXT,
    Clock,
    ask,
    events,
    inbound,
    rows,
    ticket,
)

SECRET = "msp-callback-secret-for-tests"


def signed(body: bytes, *, ts: int, secret: str = SECRET) -> dict[str, str]:
    """Headers as the MSP computes them from docs/msp-webhook.md (independent of bot.connectors.msp)."""
    digest = hmac.new(secret.encode(), b"v1:" + str(ts).encode() + b":" + body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-Handoff-Timestamp": str(ts), "X-Handoff-Signature": f"v1={digest}"}


@dataclass
class World:
    client: TestClient
    clock: Clock

    @property
    def sm(self) -> Any:
        return self.client.server.app[CORE].sessionmaker

    async def post(self, update: dict[str, Any] | bytes, *, ts: int | None = None, **kw: Any) -> tuple[int, Any]:
        body = update if isinstance(update, bytes) else json.dumps(update).encode()
        headers = kw.pop("headers", None) or signed(body, ts=int(self.clock.now.timestamp()) if ts is None else ts, **kw)
        resp = await self.client.post("/msp/callback", data=body, headers=headers)
        return resp.status, await resp.json()

    async def counts(self) -> tuple[int, int, int]:
        async with self.sm() as session:
            return tuple([int(await session.scalar(select(func.count()).select_from(m)) or 0)  # type: ignore[return-value]
                          for m in (TicketEvent, OutboxRow, InboundEvent)])

    async def rejected(self, status: int) -> float:
        text = await (await self.client.get("/metrics")).text()
        prefix = f'handoff_http_rejected_total{{platform="msp",status="{status}"}} '
        return next((float(line[len(prefix):]) for line in text.splitlines() if line.startswith(prefix)), 0.0)


@pytest.fixture
async def world(db_url: str) -> AsyncIterator[World]:
    clock = Clock()
    settings = make_settings(db_url, HANDOFF_MSP_SECRET=SECRET)
    async with TestClient(TestServer(create_app(settings, clock=clock))) as client:
        yield World(client, clock)


async def open_ticket(world: World, text: str = MSP_TEXT, event_id: str = "Ev1") -> str:
    return await ask(world.client.server.app[CORE].intake, text, event_id=event_id)


async def test_status_and_comment_update_the_ticket_and_reach_the_employee(world: World) -> None:
    key = await open_ticket(world)
    world.clock.advance(minutes=30)
    status, body = await world.post({"event_id": "e-1", "ticket": key, "type": "status", "status": "in_progress",
                                     "author": "Sam", "remote_id": "T20260302.0042", "at": "2026-03-02T09:29:00Z"})
    assert (status, body) == (200, {"ok": True, "ticket": key, "status": "in_progress"})
    t = await ticket(world.sm, key)
    assert (t.status, t.msp_status, t.remote_id, t.first_response_at) == (
        "in_progress", "in_progress", "T20260302.0042", world.clock.now)
    world.clock.advance(minutes=10)
    status, _ = await world.post({"event_id": "e-2", "ticket": key.lower(), "type": "comment", "author": "Sam",
                                  "comment": "Please try again, your new password is Winter2026!x"})
    assert status == 200
    assert (await ticket(world.sm, key)).first_response_at == world.clock.now.replace(minute=30), "set once"
    [first, second] = [e for e in await events(world.sm, key) if e.kind == "msp_update"]
    assert (first.actor, first.detail["status"], first.detail["msp_at"]) == ("msp", "in_progress", "2026-03-02T09:29:00+00:00")
    assert second.text == "Please try again, your new password is [redacted:password]"
    told = [r.payload for r in await rows(world.sm, key, "slack.post")][-2:]
    assert told[0]["text"] == f"*{key}*: the service desk (Sam) set the status to *in progress*."
    assert told[1]["text"].startswith(f"*{key}*: the service desk (Sam) wrote: Please try again, your new password "
                                      "is [redacted:password]")
    assert all(p["channel"] == EMPLOYEE.channel_id and p["thread_ts"] for p in told), "in the employee's thread"


async def test_resolved_then_reopened_by_the_msp_and_an_employee_close_wins(world: World) -> None:
    key = await open_ticket(world)
    assert (await world.post({"event_id": "r-1", "ticket": key, "type": "status", "status": "resolved"}))[0] == 200
    t = await ticket(world.sm, key)
    assert (t.status, t.resolved_at) == ("resolved", world.clock.now)
    world.clock.advance(minutes=1)
    await world.post({"event_id": "r-2", "ticket": key, "type": "status", "status": "waiting"})
    assert ((t := await ticket(world.sm, key)).status, t.resolved_at) == ("waiting", None)
    commands = world.client.server.app[CORE].commands
    await commands.dispatch(EMPLOYEE, f"close {key}", event_id="c")
    before = len(await rows(world.sm, key, "slack.post"))
    await world.post({"event_id": "r-3", "ticket": key, "type": "status", "status": "in_progress"})
    t = await ticket(world.sm, key)
    assert (t.status, t.msp_status) == ("closed", "in_progress"), "the employee closed it; the MSP status is kept"
    assert len(await rows(world.sm, key, "slack.post")) == before, "nothing to tell the employee"


async def test_a_ticket_the_msp_closed_the_msp_may_open_again(world: World) -> None:
    key = await open_ticket(world)
    assert (await world.post({"event_id": "k-1", "ticket": key, "type": "status", "status": "closed"}))[0] == 200
    world.clock.advance(minutes=5)
    status, body = await world.post({"event_id": "k-2", "ticket": key, "type": "status", "status": "in_progress"})
    assert (status, body["status"]) == (200, "in_progress")  # it stayed closed: only the employee's close is final
    t = await ticket(world.sm, key)
    assert (t.status, t.closed_at) == ("in_progress", None)
    assert (await rows(world.sm, key, "slack.post"))[-1].payload["text"].endswith("set the status to *in progress*.")


async def test_a_comment_that_also_resolves_tells_the_employee_both(world: World) -> None:
    key = await open_ticket(world)
    status, body = await world.post({"event_id": "m-1", "ticket": key, "type": "comment", "comment": "All fixed now",
                                     "status": "resolved", "author": "Sam"})
    assert (status, body["status"]) == (200, "resolved")
    told = (await rows(world.sm, key, "slack.post"))[-1].payload["text"]
    assert told == (f"*{key}*: the service desk (Sam) wrote: All fixed now\nThe service desk (Sam) set the status to "
                    f"*resolved*. Not fixed? `/handoff reopen {key} <why>`.")


@pytest.mark.parametrize(("conversation", "hint"), [
    ({"reply_kind": "slack.post", "channel": "D0DM", "thread_ts": "1.2"}, "reply in this thread"),
    ({"reply_kind": "slack.post", "channel": "C0GENERAL", "thread_ts": "1.2"}, "reply in this thread and mention me"),
    ({"reply_kind": "teams.post", "conversation_type": "channel"}, "reply in this thread and mention me"),
    ({"reply_kind": "teams.post", "conversation_type": "personal"}, "`/handoff comment IT-1001 <text>`"),
    ({"reply_kind": "teams.post", "conversation_type": "groupChat"}, "`/handoff comment IT-1001 <text>`"),
    (None, "`/handoff comment IT-1001 <text>`"),
])
def test_the_employee_is_told_a_way_to_answer_that_works_where_they_are(conversation: Any, hint: str) -> None:
    # A reply in a Teams 1:1 chat is a new request (no threads there), and in a channel the bot hears
    # only messages that mention it.
    assert answer_hint("IT-1001", conversation) == hint


async def test_replay_of_an_event_id_changes_nothing(world: World) -> None:
    key = await open_ticket(world)
    update = {"event_id": "dup-1", "ticket": key, "type": "comment", "comment": "first"}
    assert (await world.post(update))[0] == 200
    counts = await world.counts()
    world.clock.advance(seconds=5)
    status, body = await world.post({**update, "comment": "changed"})
    assert (status, body) == (200, {"ok": True, "duplicate": True, "ticket": key})
    assert await world.counts() == counts
    assert "dup-1" in await inbound(world.sm, "msp")


@pytest.mark.parametrize(("case", "expected"), [
    ("bad signature", 401), ("other secret", 401), ("missing headers", 401), ("stale", 401), ("future", 401),
    ("not a number", 401), ("oversized", 413), ("not json", 400),
])
async def test_refused_requests_change_nothing_and_are_logged(world: World, case: str, expected: int,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    key = await open_ticket(world)
    counts, before = await world.counts(), await ticket(world.sm, key)
    body = json.dumps({"event_id": "x", "ticket": key, "type": "comment", "comment": "Hunter2Hunter2 hello"}).encode()
    now = int(world.clock.now.timestamp())
    headers = signed(body, ts=now)
    if case == "bad signature":
        headers["X-Handoff-Signature"] = "v1=" + "0" * 64
    elif case == "other secret":
        headers = signed(body, ts=now, secret="not-the-secret")
    elif case == "missing headers":
        headers = {"Content-Type": "application/json"}
    elif case in ("stale", "future"):
        headers = signed(body, ts=now - 301 if case == "stale" else now + 301)
    elif case == "not a number":
        headers["X-Handoff-Timestamp"] = "yesterday"
    elif case == "oversized":
        body = json.dumps({"event_id": "x", "ticket": key, "type": "comment", "comment": "a" * 70_000}).encode()
        headers = signed(body, ts=now)
    elif case == "not json":
        body = b"status=resolved"
        headers = signed(body, ts=now)
    caplog.set_level(logging.INFO)
    status, answer = await world.post(body, headers=headers)
    assert status == expected and answer["ok"] is False and answer["error"]
    assert await world.counts() == counts
    after = await ticket(world.sm, key)
    assert (after.status, after.first_response_at, after.msp_status) == (before.status, None, None)
    assert await world.rejected(expected) == 1
    [line] = [r.getMessage() for r in caplog.records if "msp callback refused" in r.getMessage()]
    assert line.startswith(f"msp callback refused: {expected} ")
    assert SECRET not in caplog.text and "Hunter2" not in caplog.text


async def test_a_database_outage_answers_503_and_is_counted(world: World) -> None:
    """The application's error middleware answers the 503 (the MSP retries); it counts it as the
    edge counts its own refusals, so an MSP that cannot reach us shows on the dashboard."""
    key = await open_ticket(world)
    engine = world.client.server.app[CORE].engine
    async with engine.begin() as conn:
        await conn.execute(text("ALTER TABLE inbound_events RENAME TO inbound_away"))
    try:
        status, _ = await world.post({"event_id": "db-1", "ticket": key, "type": "comment", "comment": "hi"})
    finally:
        async with engine.begin() as conn:
            await conn.execute(text("ALTER TABLE inbound_away RENAME TO inbound_events"))
    assert status == 503 and await world.rejected(503) == 1


async def test_stale_and_fresh_edges_of_the_replay_window(world: World) -> None:
    key = await open_ticket(world)
    now = int(world.clock.now.timestamp())
    ok = {"event_id": "w-1", "ticket": key, "type": "status", "status": "waiting"}
    assert (await world.post(ok, ts=now - 300))[0] == 200, "300 s old is within msp.callback_max_age_seconds"
    assert (await world.post({**ok, "event_id": "w-2"}, ts=now + 300))[0] == 200


@pytest.mark.parametrize(("update", "field"), [
    ({"type": "status"}, "a status update needs `status`"),
    ({"type": "status", "status": "done"}, "status: Input should be"),
    ({"type": "comment"}, "a comment update needs a non-empty `comment`"),
    ({"type": "comment", "comment": "x" * 8001}, "comment: String should have at most 8000 characters"),
    ({"type": "note", "comment": "x"}, "type: Input should be 'status' or 'comment'"),
    ({"type": "comment", "comment": "x", "ticket": "T-1"}, "ticket: Value error, not a handoff ticket id"),
    ({"type": "comment", "comment": "x", "event_id": 7}, "event_id: Input should be a valid string"),
    ({"type": "comment", "comment": "x", "at": "2026-03-02T09:00:00"}, "at: Input should have timezone info"),
])
async def test_wrong_shape_is_400_with_the_field_path(world: World, update: dict[str, Any], field: str) -> None:
    key = await open_ticket(world)
    counts = await world.counts()
    status, answer = await world.post({"event_id": "s-1", "ticket": key, **update})
    assert status == 400 and field in answer["error"], answer
    assert await world.counts() == counts


async def test_unknown_and_in_house_tickets_do_not_exist_for_the_msp(world: World) -> None:
    internal = await open_ticket(world, INTERNAL_TEXT, "EvI")
    assert (await ticket(world.sm, internal)).route == "internal"
    counts = await world.counts()
    for key in ("IT-9999", internal):
        status, answer = await world.post({"event_id": f"u-{key}", "ticket": key, "type": "comment", "comment": "hi"})
        assert (status, answer["error"]) == (404, f"no ticket {key} was sent to the MSP")
    assert await world.counts() == counts, "not even the event id is remembered"
    assert await world.rejected(404) == 2


async def test_without_a_secret_the_endpoint_is_not_configured(db_url: str) -> None:
    async with TestClient(TestServer(create_app(make_settings(db_url), clock=Clock()))) as client:
        resp = await client.post("/msp/callback", data=b"{}")
        assert resp.status == 404
        assert "set HANDOFF_MSP_SECRET" in (await resp.json())["error"]


def test_parse_update_names_the_problem_without_echoing_values() -> None:
    with pytest.raises(BadUpdate, match="body is not UTF-8 JSON"):
        parse_update(b"\xff")
    with pytest.raises(BadUpdate, match="body must be a JSON object"):
        parse_update(b"[1]")
    with pytest.raises(BadUpdate) as err:
        parse_update(json.dumps({"event_id": "e", "ticket": "IT-1001", "type": "status", "status": "sekrit-value"}).encode())
    assert "status:" in str(err.value) and "sekrit-value" not in str(err.value)
    update = parse_update(b'{"event_id": " e ", "ticket": "it-1001", "type": "comment", "comment": "hi", "extra": 1}')
    assert (update.event_id, update.ticket, update.comment) == ("e", "IT-1001", "hi")
