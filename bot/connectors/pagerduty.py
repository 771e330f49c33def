"""PagerDuty Events API v2: trigger, acknowledge and resolve pages.

The outbox row gives ``event_action``, ``dedup_key``, ``summary``, ``source``, ``severity``,
``custom_details`` and optionally ``links``/``images``/``timestamp``/``component``/``group``/``class``.
This module adds the ``routing_key`` (integration key, a secret sent in the body: the Events API has
no auth header) and shapes the body as the published spec wants it. PagerDuty deduplicates on
``dedup_key``, which is therefore the idempotency mechanism: a trigger row without one uses the
outbox idempotency key, so a retry after an unknown outcome never opens a second incident.

Answers: 202 ``{"status": "success", "dedup_key": ...}`` is delivered (``remote_id`` = dedup key);
400 is dead (invalid event); 429 and 5xx are retried.
"""

from __future__ import annotations

import time
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

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
EVENT_ACTIONS = ("trigger", "acknowledge", "resolve")
PD_SEVERITIES = ("critical", "error", "warning", "info")
#: handoff's own severities (``routing.model.SEVERITIES``) mapped onto PagerDuty's.
SEVERITY_MAP = {"critical": "critical", "high": "error", "normal": "warning", "low": "info"}
SUMMARY_MAX = 1024
DEDUP_KEY_MAX = 255
_OPTIONAL_PAYLOAD_FIELDS = ("timestamp", "component", "group", "class")


class PagerDutyEventError(ValueError):
    """The outbox row cannot be turned into a valid Events API v2 event."""


def truncate_summary(summary: str, limit: int = SUMMARY_MAX) -> str:
    """Cut ``summary`` to at most ``limit`` characters, marking the cut with an ellipsis."""
    if len(summary) <= limit:
        return summary
    return summary[: limit - 1] + "\u2026"


def _severity(value: Any) -> str:
    sev = str(value or "").strip().lower()
    sev = SEVERITY_MAP.get(sev, sev)
    if sev not in PD_SEVERITIES:
        raise PagerDutyEventError(f"severity {value!r} is not one of {', '.join(PD_SEVERITIES)}")
    return sev


def _links(value: Any, key: str) -> list[dict[str, str]]:
    if not isinstance(value, list):
        return []
    return [
        {k: str(v) for k, v in item.items() if v is not None}
        for item in value
        if isinstance(item, dict) and item.get(key)
    ]


def build_event(
    row: dict[str, Any],
    *,
    routing_key: str,
    idempotency_key: str,
    client: str | None = None,
    client_url: str | None = None,
) -> dict[str, Any]:
    """Shape one outbox row into an Events API v2 body.

    Args:
        row: The outbox payload (see the module docstring).
        routing_key: The integration key.
        idempotency_key: The outbox key, used as ``dedup_key`` for a trigger that has none.
        client: Name of the monitoring client shown in PagerDuty (trigger only).
        client_url: Link back to the client (trigger only).

    Returns:
        The request body. Acknowledge and resolve carry only ``routing_key``, ``dedup_key`` and
        ``event_action``; a trigger carries ``payload`` with a summary of at most 1,024 characters.

    Raises:
        PagerDutyEventError: Unknown action, missing dedup key for acknowledge/resolve, missing
            summary, invalid severity, or a dedup key longer than 255 characters.
    """
    action = str(row.get("event_action") or "trigger").strip().lower()
    if action not in EVENT_ACTIONS:
        raise PagerDutyEventError(f"event_action {action!r} is not one of {', '.join(EVENT_ACTIONS)}")
    dedup_key = str(row.get("dedup_key") or "").strip()
    if not dedup_key:
        if action != "trigger":
            raise PagerDutyEventError(f"{action} needs a dedup_key")
        dedup_key = idempotency_key
    if len(dedup_key) > DEDUP_KEY_MAX:
        raise PagerDutyEventError(f"dedup_key is longer than {DEDUP_KEY_MAX} characters")
    event: dict[str, Any] = {"routing_key": routing_key, "event_action": action, "dedup_key": dedup_key}
    if action != "trigger":
        return event

    summary = str(row.get("summary") or "").strip()
    if not summary:
        raise PagerDutyEventError("trigger needs a summary")
    payload: dict[str, Any] = {
        "summary": truncate_summary(summary),
        "source": str(row.get("source") or "").strip() or "handoff",
        "severity": _severity(row.get("severity")),
    }
    for name in _OPTIONAL_PAYLOAD_FIELDS:
        if row.get(name):
            payload[name] = str(row[name])
    details = row.get("custom_details")
    if isinstance(details, dict) and details:
        payload["custom_details"] = details
    event["payload"] = payload
    if client:
        event["client"] = client
    if client_url:
        event["client_url"] = client_url
    if links := _links(row.get("links"), "href"):
        event["links"] = links
    if images := _links(row.get("images"), "src"):
        event["images"] = images
    return event


def _error_summary(answer: HttpAnswer) -> str:
    data = answer.json()
    if not isinstance(data, dict):
        return ""
    parts = [str(data.get("message") or data.get("status") or "")]
    errors = data.get("errors")
    if isinstance(errors, list) and errors:
        parts.append("; ".join(str(e) for e in errors[:5]))
    return ": ".join(p for p in parts if p)[:300]


class PagerDutyConnector:
    """Delivers ``pagerduty`` outbox rows to the Events API v2.

    Args:
        session: Shared aiohttp client session.
        routing_key: Integration key of the Events API v2 integration (a secret).
        url: Events endpoint; defaults to :data:`EVENTS_URL`.
        client: Client name shown on the alert.
        client_url: Optional link shown with the client name.
        timeout: Total seconds per request.
        clock: Unix-seconds clock (injectable for tests).
    """

    kind = "pagerduty"

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession,
        routing_key: SecretStr | str,
        url: str = EVENTS_URL,
        client: str | None = "handoff",
        client_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Clock = time.time,
    ) -> None:
        self._session = session
        self._routing_key = routing_key if isinstance(routing_key, SecretStr) else SecretStr(routing_key)
        self._url = url
        self._client = client
        self._client_url = client_url
        self._timeout = timeout
        self._clock = clock

    def __repr__(self) -> str:
        host = urlsplit(self._url).hostname or "?"
        return f"PagerDutyConnector(kind={self.kind!r}, host={host!r})"

    async def deliver(self, *, payload: dict[str, Any], idempotency_key: str) -> DeliveryResult:
        """Send one event; ``remote_id`` is the dedup key PagerDuty answered with."""
        key = self._routing_key.get_secret_value()
        return await guarded(lambda: self._deliver(payload, idempotency_key), label=self.kind, secrets=[key])

    async def _deliver(self, row: dict[str, Any], idempotency_key: str) -> DeliveryResult:
        try:
            event = build_event(
                row, routing_key=self._routing_key.get_secret_value(), idempotency_key=idempotency_key,
                client=self._client, client_url=self._client_url,
            )
        except PagerDutyEventError as exc:
            return DeliveryResult(ok=False, retryable=False, detail=f"invalid event: {exc}")
        sent_key = event["dedup_key"]

        def interpret(answer: HttpAnswer) -> DeliveryResult:
            if 200 <= answer.status < 300:
                data = answer.json()
                answered = data.get("dedup_key") if isinstance(data, dict) else None
                remote = str(answered) if answered else sent_key
                result = classify_status(answer, remote_id=remote)
                return DeliveryResult(
                    ok=True, detail=f"{event['event_action']} {result.detail}", remote_id=remote
                )
            return classify_status(answer, why=_error_summary(answer))

        headers = {"Content-Type": "application/json", "User-Agent": user_agent()}
        return await perform(
            self._session, "POST", self._url, body=json_body(event), headers=headers,
            timeout=self._timeout, interpret=interpret, clock=self._clock, label=self.kind,
        )
