"""A fake MSP ticketing endpoint (PSA webhook) on loopback.

Behaves like a PSA that honours idempotency keys the way Stripe-style APIs do: the first POST with a
key creates a ticket and answers ``201 {"id": "MSP-<n>"}``; a replay with the same key answers
``200`` with the same id (and ``Idempotent-Replayed: true``) without creating another ticket. A POST
without a key always creates a ticket. A body that is not JSON gets ``400``.

The fake does not reject unsigned or badly signed requests itself; tests check signatures with
:meth:`FakeMsp.verify_signature`, which is an independent implementation of the scheme documented
in ``docs/msp-webhook.md`` (it does not import the connector's code).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

from aiohttp import web

from tests.fakes.base import FakeService, RecordedRequest

DEFAULT_PATH = "/tickets"


class FakeMsp(FakeService):
    """Fake PSA: ``POST`` on any path creates (or replays) a ticket.

    Args:
        id_prefix: Prefix of ticket ids (``MSP-1``, ``MSP-2``, ...).
    """

    def __init__(self, *, id_prefix: str = "MSP-") -> None:
        super().__init__()
        self.id_prefix = id_prefix
        self.tickets: dict[str, dict[str, Any]] = {}
        self._by_key: dict[str, str] = {}

    def setup(self, app: web.Application) -> None:
        app.router.add_route("POST", "/{tail:.*}", self._create)

    def reset(self) -> None:
        super().reset()
        self.tickets.clear()
        self._by_key.clear()

    @property
    def tickets_url(self) -> str:
        """URL of the default ticket endpoint, ``/tickets``."""
        return self.url_for(DEFAULT_PATH)

    @property
    def received(self) -> list[RecordedRequest]:
        """Every request received (alias of :attr:`requests`)."""
        return self.requests

    @property
    def unique_tickets(self) -> int:
        """How many distinct tickets were created (replays do not count)."""
        return len(self.tickets)

    def ticket_for(self, idempotency_key: str) -> str | None:
        """Ticket id created for an idempotency key, if any."""
        return self._by_key.get(idempotency_key)

    @staticmethod
    def verify_signature(
        request: RecordedRequest, secret: str, *, now: float | None = None, tolerance: int = 300
    ) -> bool:
        """Check ``X-Handoff-Signature`` of a recorded request the way an MSP would.

        ``v1=hex(HMAC-SHA256(secret, "v1:" + X-Handoff-Timestamp + ":" + raw body))``, constant-time
        compare, timestamp within ``tolerance`` seconds of ``now`` (default: the current time).
        """
        timestamp = request.header("X-Handoff-Timestamp")
        signature = request.header("X-Handoff-Signature")
        if not timestamp or not signature or not timestamp.isdigit():
            return False
        if abs((time.time() if now is None else now) - int(timestamp)) > tolerance:
            return False
        base = b"v1:" + timestamp.encode() + b":" + request.body
        expected = "v1=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace"))

    async def _create(self, request: web.Request) -> web.Response:
        record = self.record_of(request)
        if not isinstance(record.json, dict):
            return web.json_response({"error": "invalid_json", "message": "Body must be a JSON object"}, status=400)
        key = request.headers.get("Idempotency-Key")
        if key and key in self._by_key:
            ticket_id = self._by_key[key]
            return web.json_response(
                {"id": ticket_id, "status": "open"}, status=200,
                headers={"Idempotent-Replayed": "true", "Location": f"{DEFAULT_PATH}/{ticket_id}"},
            )
        ticket_id = f"{self.id_prefix}{len(self.tickets) + 1}"
        self.tickets[ticket_id] = record.json
        if key:
            self._by_key[key] = ticket_id
        return web.json_response(
            {"id": ticket_id, "status": "open"}, status=201,
            headers={"Location": f"{DEFAULT_PATH}/{ticket_id}"},
        )
