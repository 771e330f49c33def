"""Fake Slack Socket Mode: ``apps.connections.open`` plus the WebSocket Slack pushes envelopes on.

Protocol as Slack documents it (and as slack_sdk's own mock server plays it): the app calls
``apps.connections.open`` with its app-level token (``xapp-…``) and gets a ``wss://`` URL; on connect
Slack sends ``{"type": "hello", …}``; each request then arrives as an envelope
``{"envelope_id", "type": "events_api" | "slash_commands" | "interactive", "payload", "accepts_response_payload"}``
which the app acknowledges by sending back ``{"envelope_id"[, "payload"]}``.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.slack_api import FakeSlackApi


class FakeSlackSocketMode(FakeSlackApi):
    """The Web API fake plus Socket Mode."""

    def __init__(self, *, app_token: str = "xapp-1-A111-1111-fake", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.app_token = app_token
        self.acks: list[dict[str, Any]] = []
        self._sockets: list[web.WebSocketResponse] = []
        self._changed = asyncio.Condition()

    def setup(self, app: web.Application) -> None:
        app.router.add_post("/api/apps.connections.open", self._open)  # before the catch-all /api/{method}
        app.router.add_get("/link/", self._link)
        super().setup(app)

    async def _open(self, request: web.Request) -> web.Response:
        self.record_of(request)
        auth = request.headers.get("Authorization", "")
        token = auth[len("Bearer "):] if auth.startswith("Bearer ") else ""
        if not token:
            return web.json_response({"ok": False, "error": "not_authed"})
        if token.startswith("xoxb-") or token.startswith("xoxp-"):
            return web.json_response({"ok": False, "error": "not_allowed_token_type"})
        if token != self.app_token:
            return web.json_response({"ok": False, "error": "invalid_auth"})
        ws_url = self.url.replace("http://", "ws://") + f"/link/?ticket={uuid.uuid4()}&app_id=A111"
        return web.json_response({"ok": True, "url": ws_url})

    async def _link(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_json({"type": "hello", "num_connections": 1,
                            "debug_info": {"host": "fake", "approximate_connection_time": 18060},
                            "connection_info": {"app_id": "A111"}})
        async with self._changed:
            self._sockets.append(ws)
            self._changed.notify_all()
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                try:
                    data = json.loads(msg.data)
                except ValueError:
                    continue
                async with self._changed:
                    self.acks.append(data)
                    self._changed.notify_all()
        return ws

    async def wait_connected(self, timeout: float = 5.0) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: bool(self._sockets)), timeout)

    async def send_envelope(self, kind: str, payload: dict[str, Any], *, retry_attempt: int = 0) -> str:
        """Push one envelope to the connected app; returns its ``envelope_id``."""
        envelope_id = str(uuid.uuid4())
        envelope = {"envelope_id": envelope_id, "type": kind, "payload": payload,
                    "accepts_response_payload": kind != "events_api"}
        if kind == "events_api":
            envelope.update(retry_attempt=retry_attempt, retry_reason="timeout" if retry_attempt else "")
        await self._sockets[-1].send_json(envelope)
        return envelope_id

    async def wait_ack(self, envelope_id: str, timeout: float = 5.0) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            return next((a for a in self.acks if a.get("envelope_id") == envelope_id), None)

        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: found() is not None), timeout)
        ack = found()
        assert ack is not None
        return ack
