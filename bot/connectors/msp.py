"""Generic signed webhook to the MSP's ticketing system (PSA).

The outbox row payload is POSTed as JSON, unchanged. Each request carries an ``Idempotency-Key``
(the MSP dedupes on it: same key, same ticket) and, when a secret is configured, an HMAC signature
over the timestamp and the exact body bytes::

    X-Handoff-Timestamp: 1700000000
    X-Handoff-Signature: v1=<hex HMAC-SHA256(secret, "v1:1700000000:" + raw_body)>

The scheme mirrors Slack's ``v0`` request signing. :func:`sign` and :func:`verify` are pure so the
MSP side (and a later callback endpoint of ours) can use the same code. See ``docs/msp-webhook.md``.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from pydantic import SecretStr

from bot.connectors.http import (
    DEFAULT_TIMEOUT,
    Clock,
    HttpAnswer,
    classify_status,
    guarded,
    json_body,
    perform,
    user_agent,
)
from handlers.ports import DeliveryResult

SIGNATURE_VERSION = "v1"
TIMESTAMP_HEADER = "X-Handoff-Timestamp"
SIGNATURE_HEADER = "X-Handoff-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
#: Default accepted clock skew / replay window of :func:`verify`, in seconds.
DEFAULT_TOLERANCE = 300


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """Signature header value for a request body.

    Args:
        secret: Shared signing secret.
        timestamp: Unix seconds sent in ``X-Handoff-Timestamp``.
        body: The exact raw request body.

    Returns:
        ``"v1=" + hex(HMAC-SHA256(secret, b"v1:<timestamp>:" + body))``.
    """
    base = f"{SIGNATURE_VERSION}:{int(timestamp)}:".encode() + body
    digest = hmac.new(secret.encode("utf-8"), base, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


def verify(
    secret: str,
    timestamp: int | str,
    body: bytes,
    signature: str,
    *,
    now: float,
    tolerance: int = DEFAULT_TOLERANCE,
) -> bool:
    """Check a signature made by :func:`sign`, rejecting stale or future timestamps.

    Args:
        secret: Shared signing secret.
        timestamp: Value of ``X-Handoff-Timestamp`` (int or the raw header string).
        body: The exact raw request body as received.
        signature: Value of ``X-Handoff-Signature``.
        now: Current Unix seconds.
        tolerance: Maximum ``|now - timestamp|`` in seconds.

    Returns:
        True only if the timestamp is fresh and the signature matches (constant-time compare).
    """
    try:
        ts = int(str(timestamp).strip())
    except ValueError:
        return False
    if abs(now - ts) > tolerance:
        return False
    expected = sign(secret, ts, body).encode("ascii")
    try:
        given = signature.strip().encode("ascii")
    except (UnicodeEncodeError, AttributeError):
        return False
    return hmac.compare_digest(expected, given)


def _remote_id(answer: HttpAnswer) -> str | None:
    data = answer.json()
    if not isinstance(data, dict):
        return None
    for key in ("id", "ticket_id"):
        value = data.get(key)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value):
            return str(value)
    return None


def _interpret(answer: HttpAnswer) -> DeliveryResult:
    if 200 <= answer.status < 300:
        return classify_status(answer, remote_id=_remote_id(answer))
    return classify_status(answer)


class MspWebhookConnector:
    """Delivers ``msp`` outbox rows to the MSP's webhook.

    Args:
        session: Shared aiohttp client session.
        url: The MSP endpoint (for example ``https://psa.example.com/hooks/handoff``).
        secret: Signing secret; without one the signature headers are omitted.
        timeout: Total seconds per request.
        clock: Unix-seconds clock (injectable for tests).
        names: A Slack user id's display name, or None (``SlackGroupDirectory.display_name``): fills
            ``requester.name`` for requests from Slack messages, which carry no name.
    """

    kind = "msp"

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession,
        url: str,
        secret: SecretStr | str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Clock = time.time,
        names: Callable[[str], Awaitable[str | None]] | None = None,
    ) -> None:
        self._session = session
        self._names = names
        self._url = url
        if isinstance(secret, str):
            secret = SecretStr(secret) if secret else None
        self._secret: SecretStr | None = secret
        self._timeout = timeout
        self._clock = clock

    def __repr__(self) -> str:
        host = urlsplit(self._url).hostname or "?"
        return f"MspWebhookConnector(kind={self.kind!r}, host={host!r}, signed={self._secret is not None})"

    async def _with_name(self, payload: dict[str, Any]) -> dict[str, Any]:
        """``payload`` with the requester's name filled in when the chat platform did not send one
        (Slack sends names with slash commands, not with messages); unchanged when it cannot be learnt."""
        requester = payload.get("requester")
        if self._names is None or not isinstance(requester, dict) or requester.get("name") \
                or requester.get("platform") != "slack" or not requester.get("user_id"):
            return payload
        name = await self._names(str(requester["user_id"]))
        return {**payload, "requester": {**requester, "name": name}} if name else payload

    def headers(self, *, body: bytes, idempotency_key: str, timestamp: int) -> dict[str, str]:
        """Request headers for ``body`` (signature headers only when a secret is configured)."""
        headers = {
            "Content-Type": "application/json",
            "User-Agent": user_agent(),
            IDEMPOTENCY_HEADER: idempotency_key,
        }
        if self._secret is not None:
            headers[TIMESTAMP_HEADER] = str(timestamp)
            headers[SIGNATURE_HEADER] = sign(self._secret.get_secret_value(), timestamp, body)
        return headers

    async def deliver(self, *, payload: dict[str, Any], idempotency_key: str) -> DeliveryResult:
        """POST the payload as-is; ``remote_id`` is the answer's ``id`` or ``ticket_id``."""
        secret = self._secret.get_secret_value() if self._secret else None
        return await guarded(
            lambda: self._deliver(payload, idempotency_key), label=self.kind, secrets=[secret]
        )

    async def _deliver(self, payload: dict[str, Any], idempotency_key: str) -> DeliveryResult:
        body = json_body(await self._with_name(payload))
        headers = self.headers(body=body, idempotency_key=idempotency_key, timestamp=int(self._clock()))
        return await perform(
            self._session, "POST", self._url, body=body, headers=headers,
            timeout=self._timeout, interpret=_interpret, clock=self._clock, label=self.kind,
        )
