"""A lean HTTP/1.1 client for load generators: keep-alive connections on raw asyncio protocols.

A load generator shares this 2-core machine with the system it measures, so its own CPU is taken
from the server: aiohttp's client spent about 0.27 ms per request in ``bench/load.py``, a quarter of
a core at 1,000 requests/s. This client does what a generator needs and nothing else (the way
``wrk`` or ``h2load`` do it in C): each request is written as one prebuilt byte string on a free
keep-alive connection (a new one when none is free; no pipelining), and the answer is read up to
its status code and its body (``Content-Length`` or chunked). Anything else (a connection reset,
a malformed answer, a timeout) is reported as status -1, like a client error in aiohttp.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit


class _Conn(asyncio.Protocol):
    def __init__(self, pool: list[_Conn]) -> None:
        self._pool = pool
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._waiter: asyncio.Future[int] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
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
        timer = loop.call_later(timeout, lambda: waiter.done() or waiter.set_result(-1))
        waiter.add_done_callback(lambda _: timer.cancel())
        self.transport.write(raw)
        return waiter

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
        body = buf[end + 4:]
        if "content-length" in fields:
            return status if len(body) >= int(fields["content-length"]) else None
        if fields.get("transfer-encoding", "").lower() == "chunked":
            return status if body.endswith(b"0\r\n\r\n") else None
        return -1


class RawHttpClient:
    """POSTs prebuilt requests to one URL's host over keep-alive connections."""

    def __init__(self, url: str, *, timeout: float = 30.0) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self._timeout = timeout
        self._idle: list[_Conn] = []
        self._all: list[_Conn] = []

    def request(self, url: str, body: bytes, headers: dict[str, str]) -> bytes:
        """The bytes of ``POST url`` with ``body`` and ``headers`` (built once, sent as they are)."""
        parts = urlsplit(url)
        lines = [f"POST {parts.path or '/'}{'?' + parts.query if parts.query else ''} HTTP/1.1",
                 f"Host: {parts.netloc}", f"Content-Length: {len(body)}", "Connection: keep-alive"]
        lines += [f"{k}: {v}" for k, v in headers.items() if k.lower() not in ("host", "content-length", "connection")]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body

    async def send(self, raw: bytes) -> int:
        """Send one prebuilt request; its status code, or -1 for a transport error or timeout."""
        conn = None
        while self._idle and conn is None:
            candidate = self._idle.pop()
            conn = None if candidate.closed else candidate
        try:
            if conn is None:
                _, conn = await asyncio.get_running_loop().create_connection(
                    lambda: _Conn(self._idle), self.host, self.port)
                self._all.append(conn)
            status = await conn.send(raw, self._timeout)
        except OSError:
            if conn is not None and conn.transport is not None:
                conn.transport.close()
            return -1
        if status > 0 and not conn.closed:
            self._idle.append(conn)
        elif conn.transport is not None:
            conn.transport.close()
        return status

    def close(self) -> None:
        for conn in self._all:
            if conn.transport is not None:
                conn.transport.close()
