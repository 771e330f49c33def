"""Ports: the small interfaces through which use cases reach the outside world.

``bot/`` provides the implementations (connectors); tests provide real fakes on loopback. Handlers
never import ``bot``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """What one delivery attempt of an outbox row came to.

    Attributes:
        ok: The third party accepted it; the row is delivered.
        retryable: Not ok, but worth trying again (network error, timeout, 5xx, 429).
            Not ok and not retryable means dead-letter (4xx other than 429).
        retry_after: Seconds the third party asked us to wait (``Retry-After``), if any.
        detail: Short human summary for the outbox listing (status code, remote id, error).
            Never contains secrets.
        remote_id: Id the third party gave the delivered item (MSP ticket id, PagerDuty dedup key,
            Slack message ts), if any.
    """

    ok: bool
    retryable: bool = False
    retry_after: float | None = None
    detail: str = ""
    remote_id: str | None = None


class Connector(Protocol):
    """Delivers one kind of outbox row (``msp``, ``pagerduty``, ``slack.post``, ...).

    ``deliver`` must never raise for an expected failure (HTTP error, timeout, refused connection):
    it returns a :class:`DeliveryResult` instead. It must send ``idempotency_key`` to the third
    party where the third party supports one, so a retry after an unknown outcome is harmless.
    """

    kind: str

    async def deliver(self, *, payload: dict[str, Any], idempotency_key: str) -> DeliveryResult: ...


class GroupLookupError(Exception):
    """A group directory could not say who is in a group (unreachable, no permission, no such group)."""


class GroupDirectory(Protocol):
    """Who belongs to a chat platform's user group (a Slack user group, a Teams / Entra ID group).

    ``group`` is what ``app.yaml`` names (a Slack user group id ``S0123`` or handle ``it-admins``).
    Implementations cache; they raise :class:`GroupLookupError` rather than guess.
    """

    async def members(self, *, platform: str, group: str) -> frozenset[str]: ...
