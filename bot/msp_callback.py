"""``POST /msp/callback``: status changes and comments from the MSP, signed like our outbound webhook.

The edge checks, in order: configured (404 without ``HANDOFF_MSP_SECRET``), size (413), signature
headers present, timestamp fresh within ``msp.callback_max_age_seconds`` and signature valid (401,
:func:`bot.connectors.msp.verify` over the exact body bytes), then the shape (400, with the field
path). :class:`~handlers.msp_updates.MspUpdates` applies it: unknown ticket 404 (nothing changes),
a replayed ``event_id`` 200 ``{"ok": true, "duplicate": true}`` (nothing changes). Every refusal is
logged (reason and peer, never the body or a secret) and counted in ``handoff_http_rejected_total``
with ``platform="msp"``. See docs/msp-webhook.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from aiohttp import web
from pydantic import SecretStr

from bot.connectors.msp import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from bot.metrics import Metrics
from handlers.msp_updates import BadUpdate, MspUpdates, parse_update

log = logging.getLogger(__name__)

#: Largest callback body accepted (bytes); an MSP update is a few hundred bytes of JSON.
MAX_BODY_BYTES = 64 * 1024


class MspCallback:
    """The checks in front of :class:`MspUpdates`.

    Args:
        secret: ``HANDOFF_MSP_SECRET``, shared with the MSP; None answers 404 (not configured).
        updates: The use case.
        metrics: Where refusals are counted.
        clock: Current time (injectable: replay windows are tested with it).
        max_age_seconds: Accepted ``|now - X-Handoff-Timestamp|``.
        max_body_bytes: Larger bodies are refused with 413.
    """

    def __init__(
        self,
        *,
        secret: SecretStr | None,
        updates: MspUpdates,
        metrics: Metrics,
        clock: Callable[[], datetime],
        max_age_seconds: int = 300,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self._secret = secret
        self._updates = updates
        self._metrics = metrics
        self._clock = clock
        self._max_age = max_age_seconds
        self._max_body = max_body_bytes

    async def handle(self, request: web.Request) -> web.Response:
        if self._secret is None or not self._secret.get_secret_value():
            return self._reject(request, 404, "MSP callbacks are not configured: set HANDOFF_MSP_SECRET")
        if request.content_length is not None and request.content_length > self._max_body:
            return self._reject(request, 413, f"body larger than {self._max_body} bytes")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._reject(request, 413, f"body larger than {self._max_body} bytes")
        if len(body) > self._max_body:
            return self._reject(request, 413, f"body larger than {self._max_body} bytes")
        timestamp = request.headers.get(TIMESTAMP_HEADER, "")
        signature = request.headers.get(SIGNATURE_HEADER, "")
        if not timestamp or not signature:
            return self._reject(request, 401, f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER} header")
        now = self._clock().timestamp()
        try:
            ts = int(timestamp.strip())
        except ValueError:
            return self._reject(request, 401, f"{TIMESTAMP_HEADER} is not Unix seconds")
        if abs(now - ts) > self._max_age:
            return self._reject(request, 401, f"{TIMESTAMP_HEADER} is more than {self._max_age}s away from our clock "
                                              "(stale, replayed or clock skew)")
        if not verify(self._secret.get_secret_value(), ts, body, signature, now=now, tolerance=self._max_age):
            return self._reject(request, 401, "invalid signature")
        try:
            update = parse_update(body)
        except BadUpdate as exc:
            return self._reject(request, 400, str(exc))
        outcome = await self._updates.apply(update)
        if outcome.result == "unknown_ticket":
            return self._reject(request, 404, f"no ticket {outcome.ticket} was sent to the MSP")
        if outcome.result == "duplicate":
            log.info("msp callback %s for %s: duplicate, ignored", _short(update.event_id), outcome.ticket)
            return web.json_response({"ok": True, "duplicate": True, "ticket": outcome.ticket})
        log.info("msp callback %s: %s %s", _short(update.event_id), outcome.ticket, update.type)
        return web.json_response({"ok": True, "ticket": outcome.ticket, "status": outcome.status})

    def _reject(self, request: web.Request, status: int, reason: str) -> web.Response:
        self._metrics.rejected.labels(platform="msp", status=str(status)).inc()
        log.warning("msp callback refused: %d %s (from %s)", status, reason, request.remote)
        return web.json_response({"ok": False, "error": reason}, status=status)


def _short(event_id: str) -> str:
    """The MSP's event id for a log line: quoted (no line breaks get through) and clipped."""
    return repr(event_id if len(event_id) <= 64 else event_id[:61] + "...")
