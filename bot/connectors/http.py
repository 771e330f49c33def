"""Shared HTTP plumbing of the outbound connectors.

One function, :func:`perform`, sends a request and turns whatever happens (an answer, a timeout, a
refused connection) into a :class:`~handlers.ports.DeliveryResult`, so each connector only says how
to build its request and how to read a successful answer. The default classification follows the
contract of :class:`~handlers.ports.Connector`: 2xx ok; 429, 5xx and network errors retryable
(with ``Retry-After`` honoured), and 408 Request Timeout too; any other status dead.

``detail`` strings built here never contain the URL (a Slack ``response_url`` or a webhook URL may
embed a credential), the request body or the raw answer body; :func:`scrub` removes configured
secrets from anything a connector adds.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import importlib.metadata
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy

from handlers.ports import DeliveryResult

log = logging.getLogger(__name__)

#: Total per-request timeout (seconds) connectors use unless told otherwise.
DEFAULT_TIMEOUT = 10.0
#: Answers larger than this are cut; connectors only need small JSON answers.
MAX_ANSWER_BYTES = 256 * 1024

Clock = Callable[[], float]

#: 4xx statuses worth retrying: 408 Request Timeout (the server timed out reading us) and 429.
RETRYABLE_STATUSES = frozenset({408, 429})


@functools.cache
def user_agent() -> str:
    """``handoff/<version>`` for the ``User-Agent`` header (read once from package metadata)."""
    try:
        version = importlib.metadata.version("handoff")
    except importlib.metadata.PackageNotFoundError:
        version = "0"
    return f"handoff/{version}"


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Read a ``Retry-After`` header value (RFC 9110 section 10.2.3).

    Args:
        value: The header value: delay-seconds (``"120"``; a decimal such as ``"1.5"`` is tolerated)
            or an HTTP-date (``"Wed, 21 Oct 2015 07:28:00 GMT"``). ``None`` when absent.
        now: The current time as Unix seconds, to turn an HTTP-date into a delay.

    Returns:
        Seconds to wait (never negative: a date in the past gives ``0.0``), or ``None`` when the
        header is absent or unreadable.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text[0].isdigit():
        try:
            seconds = float(text)
        except ValueError:
            seconds = math.nan
        if math.isfinite(seconds):
            return seconds
        # fall through: may still be a date that happens to start with a digit ("21 Oct 2015 ...")
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000" style dates parse naive; HTTP-dates are always GMT
        return None
    return max(0.0, when.timestamp() - now)


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """Replace every non-empty secret occurring in ``text`` with ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """An HTTP answer, read in full (up to :data:`MAX_ANSWER_BYTES`).

    Attributes:
        status: HTTP status code.
        headers: Answer headers (case-insensitive).
        body: Raw answer body.
        received_at: Unix seconds when the answer was read (clock of the connector).
    """

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    received_at: float

    @property
    def reason(self) -> str:
        """Standard reason phrase of the status (never the server's own text)."""
        try:
            return HTTPStatus(self.status).phrase
        except ValueError:
            return ""

    def json(self) -> Any | None:
        """The body parsed as JSON, or ``None`` when it is empty or not JSON."""
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            return None

    def retry_after(self) -> float | None:
        """Seconds asked for by ``Retry-After``, if the header is present and readable."""
        return parse_retry_after(self.headers.get("Retry-After"), self.received_at)

    def status_text(self) -> str:
        """``HTTP 503 Service Unavailable`` style label for details."""
        return f"HTTP {self.status} {self.reason}".rstrip()


def retry_later(answer: HttpAnswer, why: str = "") -> DeliveryResult:
    """A retryable result for ``answer``, carrying its ``Retry-After`` if any."""
    retry_after = answer.retry_after()
    detail = answer.status_text() + (f": {why}" if why else "")
    if retry_after is not None:
        detail += f", retry after {retry_after:g}s"
    return DeliveryResult(ok=False, retryable=True, retry_after=retry_after, detail=detail)


def classify_status(answer: HttpAnswer, *, remote_id: str | None = None, why: str = "") -> DeliveryResult:
    """Default mapping of an HTTP status to a delivery outcome.

    Args:
        answer: The answer to classify.
        remote_id: Id to report when the answer is a success.
        why: Short, secret-free explanation appended to the detail (e.g. a service error code).
    """
    if 200 <= answer.status < 300:
        detail = answer.status_text() + (f", id {remote_id}" if remote_id else "")
        return DeliveryResult(ok=True, detail=detail, remote_id=remote_id)
    if answer.status in RETRYABLE_STATUSES or answer.status >= 500:
        return retry_later(answer, why)
    detail = answer.status_text() + (f": {why}" if why else "")
    return DeliveryResult(ok=False, retryable=False, detail=detail)


Interpreter = Callable[[HttpAnswer], DeliveryResult]


#: What a request outside :func:`perform` may raise for a network failure or a timeout.
NETWORK_ERRORS: tuple[type[BaseException], ...] = (aiohttp.ClientError, TimeoutError, OSError)


async def _read_limited(response: aiohttp.ClientResponse, limit: int | None) -> bytes:
    if limit is None:
        return await response.read()
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await response.content.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


async def fetch(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    timeout: float,
    clock: Clock = time.time,
    headers: Mapping[str, str] | None = None,
    data: Any = None,
    allow_redirects: bool = False,
    limit: int | None = MAX_ANSWER_BYTES,
) -> HttpAnswer:
    """Send one request and read the answer (up to ``limit`` bytes; ``None``: all of it).

    The one place requests outside the outbox (look-ups, token fetches, checks) are made; the
    caller decides what a status means. Raises one of :data:`NETWORK_ERRORS` when the request
    fails or times out.
    """
    async with session.request(
        method, url, data=data, headers=dict(headers or {}), timeout=aiohttp.ClientTimeout(total=timeout),
        allow_redirects=allow_redirects,
    ) as response:
        raw = await _read_limited(response, limit)
        return HttpAnswer(
            status=response.status, headers=CIMultiDictProxy(CIMultiDict(response.headers)), body=raw,
            received_at=clock(),
        )


async def perform(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    body: bytes | None,
    headers: Mapping[str, str],
    timeout: float,
    interpret: Interpreter = classify_status,
    clock: Clock,
    label: str,
) -> DeliveryResult:
    """Send one request and classify the outcome; never raises for network or HTTP failures.

    Args:
        session: Shared client session.
        method: HTTP method.
        url: Full URL (never copied into the result or the log).
        body: Raw request body, already encoded.
        headers: Request headers (values are never logged).
        timeout: Total seconds for connect, send and read.
        interpret: Turns an answer into a result; defaults to :func:`classify_status`.
        clock: Unix-seconds clock, for ``Retry-After`` dates.
        label: Connector kind, for the log.

    Returns:
        The delivery outcome. Timeouts and connection failures are retryable; an invalid URL is not.
    """
    try:
        answer = await fetch(session, method, url, timeout=timeout, clock=clock, headers=headers, data=body)
    except aiohttp.InvalidURL:
        result = DeliveryResult(ok=False, retryable=False, detail="invalid URL configured")
    except (asyncio.TimeoutError, TimeoutError):
        result = DeliveryResult(ok=False, retryable=True, detail=f"timeout after {timeout:g}s")
    except aiohttp.ClientConnectorError as exc:
        reason = exc.os_error.strerror or type(exc.os_error).__name__
        result = DeliveryResult(ok=False, retryable=True, detail=f"connection failed: {reason}")
    except (aiohttp.ClientError, OSError) as exc:
        result = DeliveryResult(ok=False, retryable=True, detail=f"network error: {type(exc).__name__}")
    else:
        result = interpret(answer)
        log.debug("%s delivery answered %s", label, answer.status)
        return result
    log.debug("%s delivery failed: %s", label, result.detail)
    return result


def json_body(data: Any) -> bytes:
    """Compact UTF-8 JSON, the exact bytes sent (and signed)."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


async def guarded(
    call: Callable[[], Awaitable[DeliveryResult]], *, label: str, secrets: Iterable[str | None]
) -> DeliveryResult:
    """Run a delivery, turning any unexpected exception into a retryable result.

    A bug in a connector must not crash the outbox worker; the row is retried (and eventually
    dead-lettered) instead, and the exception is logged with its traceback. The detail only names
    the exception type, and configured secrets are scrubbed from the result's detail.
    """
    secret_list = list(secrets)
    try:
        result = await call()
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - the worker must survive connector bugs
        log.exception("%s delivery raised unexpectedly", label)
        return DeliveryResult(ok=False, retryable=True, detail=f"connector error: {type(exc).__name__}")
    clean = scrub(result.detail, secret_list)
    if clean == result.detail:
        return result
    return DeliveryResult(
        ok=result.ok, retryable=result.retryable, retry_after=result.retry_after,
        detail=clean, remote_id=result.remote_id,
    )
