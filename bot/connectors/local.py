"""Local sink: the embedded default when no MSP or pager is configured.

Every row is accepted as delivered. Nothing is kept in memory or written anywhere else: the outbox
row itself (payload, status, ``detail``) is the record an admin can list.
"""

from __future__ import annotations

import logging
from typing import Any

from handlers.ports import DeliveryResult

log = logging.getLogger(__name__)


class LocalSink:
    """Accepts every payload of one kind and reports it as recorded locally.

    Args:
        kind: The outbox kind this sink stands in for (``msp``, ``pagerduty``, ...).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __repr__(self) -> str:
        return f"LocalSink(kind={self.kind!r})"

    async def deliver(self, *, payload: dict[str, Any], idempotency_key: str) -> DeliveryResult:
        """Return ok without sending anything (the payload is neither logged nor stored)."""
        log.debug("%s row %s recorded locally", self.kind, idempotency_key)
        return DeliveryResult(ok=True, detail=f"recorded locally (no {self.kind} configured)")
