"""Shared machinery of the loopback fakes: a real aiohttp server that records and can be scripted.

A fake is an ``aiohttp.web.Application`` served by :class:`aiohttp.test_utils.TestServer` on
``127.0.0.1`` with a free port, so the code under test talks real HTTP::

    async with FakeMsp() as fake:
        connector = MspWebhookConnector(session=session, url=fake.url_for("/tickets"))
        fake.fail_next(1, status=503, headers={"Retry-After": "5"})
        ...
        assert fake.requests[0].header("Idempotency-Key") == "k1"

Every request is recorded (even those answered by a script) before anything else happens. The
script is a FIFO queue consumed one entry per request: an entry may delay the answer, replace it
(status, headers, body), or both; when the queue is empty the fake answers like the real service.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Self
from urllib.parse import parse_qsl

from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict, CIMultiDictProxy

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the fake received it.

    Attributes:
        method: HTTP method.
        path: URL path (no query string).
        query: Query parameters (last value wins).
        headers: Request headers (case-insensitive).
        body: Raw body bytes.
        json: Body parsed as JSON when it is JSON, else ``None``.
        form: Body parsed as ``application/x-www-form-urlencoded`` when it is a form, else ``None``.
        received_at: Unix seconds when it arrived.
    """

    method: str
    path: str
    query: dict[str, str]
    headers: CIMultiDictProxy[str]
    body: bytes
    json: Any | None
    form: dict[str, str] | None
    received_at: float

    def header(self, name: str) -> str | None:
        """Value of a header, case-insensitively, or ``None``."""
        return self.headers.get(name)


_RECORD: web.RequestKey[RecordedRequest] = web.RequestKey("fake.record", RecordedRequest)


@dataclass(frozen=True, slots=True)
class Scripted:
    """One scripted answer.

    Attributes:
        status: Status to answer with; ``None`` answers normally (after ``delay``).
        headers: Extra answer headers.
        body: ``dict``/``list`` (sent as JSON), ``str`` (text), ``bytes`` (raw) or ``None`` for the
            fake's usual error body for ``status``.
        delay: Seconds to wait before answering.
    """

    status: int | None = None
    headers: Mapping[str, str] | None = None
    body: Any = None
    delay: float = 0.0


def parse_body(content_type: str, body: bytes) -> tuple[Any | None, dict[str, str] | None]:
    """Parse a body as JSON or as a urlencoded form, the way the fakes' real services do."""
    if not body:
        return None, None
    if content_type == "application/x-www-form-urlencoded":
        try:
            return None, dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError:
            return None, None
    try:
        return json.loads(body), None
    except (ValueError, UnicodeDecodeError):
        return None, None


@dataclass
class _State:
    requests: list[RecordedRequest] = field(default_factory=list)
    script: deque[Scripted] = field(default_factory=deque)


class FakeService:
    """Base of every fake: serving, recording, scripting. Subclasses add routes in :meth:`setup`."""

    def __init__(self) -> None:
        self._state = _State()
        self._server: TestServer | None = None
        self._closing = asyncio.Event()
        self._arrived = asyncio.Condition()

    # --- to override -------------------------------------------------------------------------
    def setup(self, app: web.Application) -> None:
        """Add the fake's routes to ``app``."""
        raise NotImplementedError

    def failure_body(self, status: int) -> Any:
        """Body the real service sends with ``status`` when a script gives none."""
        try:
            return {"error": HTTPStatus(status).phrase}
        except ValueError:
            return {"error": str(status)}

    def extra_headers(self) -> dict[str, str]:
        """Headers the real service puts on every answer (added unless already set)."""
        return {}

    # --- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        app = web.Application(middlewares=[self._middleware])
        self.setup(app)
        self._server = TestServer(app, host="127.0.0.1", port=0)
        await self._server.start_server()

    async def close(self) -> None:
        self._closing.set()  # ends pending delays at once
        if self._server is not None:
            await self._server.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def url(self) -> str:
        """Base URL, ``http://127.0.0.1:<port>`` (no trailing slash)."""
        if self._server is None or self._server.port is None:
            raise RuntimeError("fake is not running; use 'async with'")
        return f"http://127.0.0.1:{self._server.port}"

    def url_for(self, path: str) -> str:
        """Absolute URL of ``path`` on this fake."""
        return self.url + "/" + path.lstrip("/")

    # --- recording -----------------------------------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, oldest first."""
        return list(self._state.requests)

    def requests_to(self, path: str, method: str | None = None) -> list[RecordedRequest]:
        """Requests received on ``path`` (and ``method`` if given)."""
        return [r for r in self._state.requests if r.path == path and (method is None or r.method == method)]

    async def wait_for_requests(self, count: int, timeout: float = 2.0) -> list[RecordedRequest]:
        """Wait until at least ``count`` requests arrived (for flows that deliver in background)."""
        async with self._arrived:
            await asyncio.wait_for(
                self._arrived.wait_for(lambda: len(self._state.requests) >= count), timeout
            )
        return self.requests

    @staticmethod
    def record_of(request: web.Request) -> RecordedRequest:
        """The :class:`RecordedRequest` made of ``request`` (for handlers: parsed body and all)."""
        record: RecordedRequest = request[_RECORD]
        return record

    # --- scripting -----------------------------------------------------------------------------
    def script(self, *answers: Scripted) -> None:
        """Append scripted answers for the next requests, in order."""
        self._state.script.extend(answers)

    def fail_next(
        self, n: int = 1, *, status: int = 500, headers: Mapping[str, str] | None = None, body: Any = None
    ) -> None:
        """Answer the next ``n`` requests with ``status`` (and ``headers``/``body``)."""
        self.script(*(Scripted(status=status, headers=headers, body=body) for _ in range(n)))

    def delay_next(self, n: int, seconds: float) -> None:
        """Hold the next ``n`` answers for ``seconds`` each, then answer normally."""
        self.script(*(Scripted(delay=seconds) for _ in range(n)))

    def reset(self) -> None:
        """Forget recorded requests and pending scripts (subclasses also reset their state)."""
        self._state = _State()

    # --- internals -----------------------------------------------------------------------------
    def respond(self, status: int, headers: Mapping[str, str] | None, body: Any) -> web.Response:
        """Build an answer from a status, headers and a body as :class:`Scripted` describes it."""
        if body is None:
            body = self.failure_body(status)
        if isinstance(body, (dict, list)):
            response = web.json_response(body, status=status)
        elif isinstance(body, str):
            response = web.Response(status=status, text=body)
        elif isinstance(body, bytes):
            response = web.Response(status=status, body=body)
        else:
            response = web.Response(status=status)
        for name, value in (headers or {}).items():
            response.headers[name] = value
        return response

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        raw = await request.read()
        parsed_json, form = parse_body(request.content_type, raw)
        record = RecordedRequest(
            method=request.method, path=request.path, query=dict(request.query),
            headers=CIMultiDictProxy(CIMultiDict(request.headers)), body=raw,
            json=parsed_json, form=form, received_at=time.time(),
        )
        request[_RECORD] = record
        async with self._arrived:
            self._state.requests.append(record)
            self._arrived.notify_all()
        step = self._state.script.popleft() if self._state.script else None
        if step is not None and step.delay > 0:
            try:
                await asyncio.wait_for(self._closing.wait(), step.delay)
                return web.Response(status=503, text="shutting down")
            except TimeoutError:
                pass
        if step is not None and step.status is not None:
            response: web.StreamResponse = self.respond(step.status, step.headers, step.body)
        else:
            response = await handler(request)
        for name, value in self.extra_headers().items():
            response.headers.setdefault(name, value)
        return response


def client_credentials_answer(
    form: Mapping[str, str], *, app_id: str, app_password: str, scope: str, prefix: str,
    issued: list[str], expires_in: int,
) -> web.Response:
    """The Microsoft identity platform's answer to a client-credentials token request.

    Shared by the fakes that need one (Bot Framework connector, Microsoft Graph): the same error
    shapes (``unsupported_grant_type``, ``invalid_client``, ``invalid_scope``) and token body.
    """
    if form.get("grant_type") != "client_credentials":
        return web.json_response({"error": "unsupported_grant_type",
                                  "error_description": "AADSTS70003: grant type not supported"}, status=400)
    if form.get("client_id") != app_id or form.get("client_secret") != app_password:
        return web.json_response({"error": "invalid_client",
                                  "error_description": "AADSTS7000215: Invalid client secret provided."},
                                 status=401)
    if form.get("scope") != scope:
        return web.json_response({"error": "invalid_scope", "error_description": "AADSTS70011: bad scope"},
                                 status=400)
    token = prefix + secrets.token_urlsafe(24)
    issued.append(token)
    return web.json_response({"token_type": "Bearer", "expires_in": expires_in,
                              "ext_expires_in": expires_in, "access_token": token})

