"""Structured logs: JSON lines, request ids across a request, secrets scrubbed from every line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.logs import REQUEST_ID_HEADER, request_id_middleware, setup_logging

AWS_KEY = "AKIAIOSFODNN7EXAMPLE"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    setup_logging("INFO", fmt="json", stream=stream)
    try:
        yield stream
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_json_lines_carry_level_logger_message_and_extras(captured: io.StringIO) -> None:
    logging.getLogger("handoff.test").warning("outbox row %s failed", 7, extra={"kind": "msp", "attempt": 2})
    [entry] = lines(captured)
    assert entry["level"] == "warning" and entry["logger"] == "handoff.test"
    assert entry["msg"] == "outbox row 7 failed"
    assert entry["kind"] == "msp" and entry["attempt"] == 2
    assert entry["request_id"] == "-"
    assert str(entry["ts"]).endswith("+00:00")


def test_secrets_are_scrubbed_from_messages_and_tracebacks(captured: io.StringIO) -> None:
    log = logging.getLogger("handoff.test")
    log.error("upstream said: bad key %s", AWS_KEY)
    try:
        raise RuntimeError(f"token rejected: {AWS_KEY}")
    except RuntimeError:
        log.exception("call failed")
    text = captured.getvalue()
    assert AWS_KEY not in text
    entries = lines(captured)
    assert "[redacted:aws-key]" in str(entries[0]["msg"])
    assert "RuntimeError" in str(entries[1]["exc"]) and "[redacted:aws-key]" in str(entries[1]["exc"])


async def test_every_line_of_a_request_carries_its_id_and_the_response_returns_it(captured: io.StringIO) -> None:
    async def handler(request: web.Request) -> web.Response:
        logging.getLogger("handoff.handler").info("handling")
        return web.json_response({"ok": True})

    async def refused(request: web.Request) -> web.Response:
        raise web.HTTPForbidden()

    app = web.Application(middlewares=[request_id_middleware])
    app.router.add_get("/x", handler)
    app.router.add_get("/no", refused)
    async with TestClient(TestServer(app)) as client:
        kept = await client.get("/x", headers={REQUEST_ID_HEADER: "lb-1234.abc"})
        made = await client.get("/x", headers={REQUEST_ID_HEADER: "bad id with spaces\u2028"})
        denied = await client.get("/no")
    assert kept.headers[REQUEST_ID_HEADER] == "lb-1234.abc"
    made_id = made.headers[REQUEST_ID_HEADER]
    assert made_id != "bad id with spaces\u2028" and len(made_id) == 16
    assert denied.status == 403 and denied.headers.get(REQUEST_ID_HEADER)
    handled = [e for e in lines(captured) if e["msg"] == "handling"]
    assert [e["request_id"] for e in handled] == ["lb-1234.abc", made_id]
