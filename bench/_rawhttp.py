"""A lean HTTP/1.1 client for load generators: keep-alive connections on raw asyncio protocols.

A load generator shares this 2-core machine with the system it measures, so its own CPU is taken
from the server: aiohttp's client spent about 0.27 ms per request in ``bench/load.py``, a quarter of
a core at 1,000 requests/s. This client does what a generator needs and nothing else (the way
``wrk`` or ``h2load`` do it in C): each request is written as one prebuilt byte string on a free
keep-alive connection (a new one when none is free, up to ``max_connections``; no pipelining), and
the answer is read up to its status code and its body (``Content-Length``, or chunked). A connection
the server closes (``Connection: close``, HTTP/1.0, or a reset) is not used again. Anything else (a
reset mid-answer, a malformed answer, a timeout, connecting included) is reported as status -1,
like a client error in aiohttp.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from urllib.parse import urlsplit


class _Conn(asyncio.Protocol):
    def __init__(self, pool: list[_Conn]) -> None:
        self._pool = pool
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._waiter: asyncio.Future[int] | None = None
        self.closed = False
        self.reusable = True  # False once an answer says the server closes the connection
        self.on_lost: Callable[[], None] = lambda: None  # frees the client's connection slot

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.on_lost()
        if self in self._pool:
            self._pool.remove(self)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(-1)

    def send(self, raw: bytes, timeout: float) -> asyncio.Future[int]:
        """Write ``raw``; the future gets the answer's status, or -1 (connection lost, timeout, malformed)."""
        assert self.transport is not None
        self._buf.clear()
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(timeout, self._expire, waiter)
        waiter.add_done_callback(lambda _: timer.cancel())
        self.transport.write(raw)
        return waiter

    @staticmethod
    def _expire(waiter: asyncio.Future[int]) -> None:
        if not waiter.done():
            waiter.set_result(-1)

    def data_received(self, data: bytes) -> None:
        self._buf += data
        status = self._complete()
        if status is not None and self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(status)

    def _complete(self) -> int | None:
        """The status once the whole answer is in the buffer; None while more is to come; -1 if malformed."""
        buf = self._buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = bytes(buf[:end]).decode("latin-1").split("\r\n")
        try:
            status = int(head[0].split(" ", 2)[1])
        except (IndexError, ValueError):
            return -1
        fields = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:])}
        connection = fields.get("connection", "").lower()
        self.reusable = connection != "close" and (head[0].startswith("HTTP/1.1") or connection == "keep-alive")
        body = buf[end + 4:]
        if "content-length" in fields:
            return status if len(body) >= int(fields["content-length"]) else None
        if fields.get("transfer-encoding", "").lower() == "chunked":  # ends with the empty last chunk
            return status if body.endswith(b"0\r\n\r\n") else None  # (no trailers: a server we drive)
        return -1


class RawHttpClient:
    """POSTs prebuilt requests to one URL over keep-alive connections."""

    def __init__(self, url: str, *, timeout: float = 30.0, max_connections: int = 2000) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self._target = f"{parts.path or '/'}{'?' + parts.query if parts.query else ''}"
        self._netloc = parts.netloc
        self._timeout = timeout
        self._max = max_connections
        self._open = 0  # connections open or being opened
        self._idle: list[_Conn] = []
        self._freed = asyncio.Event()  # a connection went idle or closed: a waiting request may go

    def request(self, body: bytes, headers: dict[str, str]) -> bytes:
        """The bytes of a POST to this client's URL with ``body`` and ``headers`` (built once, sent as they are)."""
        lines = [f"POST {self._target} HTTP/1.1",
                 f"Host: {self._netloc}", f"Content-Length: {len(body)}", "Connection: keep-alive"]
        lines += [f"{k}: {v}" for k, v in headers.items() if k.lower() not in ("host", "content-length", "connection")]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body

    async def send(self, raw: bytes) -> int:
        """Send one prebuilt request; its status code, or -1 for a transport error or timeout."""
        try:
            conn = await self._checkout()
        except (OSError, TimeoutError):
            return -1
        status = await conn.send(raw, self._timeout)
        if status > 0 and conn.reusable and not conn.closed:
            self._idle.append(conn)
            self._freed.set()
        elif conn.transport is not None:
            conn.transport.close()  # connection_lost frees its slot
        return status

    async def _checkout(self) -> _Conn:
        """An idle connection, else a new one while fewer than ``max_connections`` are open, else wait."""
        while True:
            while self._idle:
                conn = self._idle.pop()
                if not conn.closed:
                    return conn
            if self._open < self._max:
                self._open += 1
                try:
                    _, conn = await asyncio.wait_for(asyncio.get_running_loop().create_connection(
                        lambda: _Conn(self._idle), self.host, self.port), self._timeout)
                except BaseException:
                    self._release()
                    raise
                conn.on_lost = self._release
                return conn
            self._freed.clear()
            await self._freed.wait()

    def _release(self) -> None:
        self._open -= 1
        self._freed.set()

    def close(self) -> None:
        for conn in self._idle:
            if conn.transport is not None:
                conn.transport.close()
        self._idle.clear()
