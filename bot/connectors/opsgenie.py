"""Opsgenie Alert API v2: create, acknowledge and close alerts (the optional pager).

An ``opsgenie`` outbox row is ``{"action": "create" | "acknowledge" | "close", "alias": <dedup key>}``,
with ``message``, ``description``, ``priority``, ``details``, ``source`` for ``create`` and optional
``user`` and ``note`` for the other two. Requests (``Authorization: GenieKey <key>``)::

    POST {api_url}/v2/alerts                                              create (alias = dedup key)
    POST {api_url}/v2/alerts/{alias}/acknowledge?identifierType=alias     acknowledge
    POST {api_url}/v2/alerts/{alias}/close?identifierType=alias           close

Opsgenie deduplicates creates on ``alias`` (an open alert with the same alias only counts up), so a
retry after an unknown outcome never opens a second alert; acknowledge and close are idempotent.
Alert requests are processed asynchronously: **202** ``{"result", "took", "requestId"}`` means
accepted (``remote_id`` = ``requestId``; an acknowledge of an alias Opsgenie does not know is also
202, and fails later in ``GET /v2/alerts/requests/{requestId}``). 429 (``Retry-After``, else
``X-RateLimit-Period-In-Sec``), 5xx and network errors are retried; any other 4xx is dead.

Field limits of the Alert API documentation are applied before sending: ``message`` is cut to 130
characters, ``description`` to 15,000, ``source`` and ``user`` to 100, ``note`` to 25,000, and
``details`` (values turned into strings) to 8,000 characters in all. The key never appears in
``repr``, logs or ``detail``.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
from pydantic import SecretStr
from yarl import URL

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

API_URL = "https://api.opsgenie.com"
ACTIONS = ("create", "acknowledge", "close")
PRIORITIES = ("P1", "P2", "P3", "P4", "P5")
#: handoff's own severities mapped onto Opsgenie priorities (a row may give either).
SEVERITY_PRIORITY = {"critical": "P1", "high": "P2", "normal": "P3", "low": "P4"}
MESSAGE_MAX = 130
ALIAS_MAX = 512
DESCRIPTION_MAX = 15_000
SOURCE_MAX = 100
USER_MAX = 100
NOTE_MAX = 25_000
DETAILS_MAX = 8_000


class OpsgenieRequestError(ValueError):
    """The outbox row cannot be turned into a valid Alert API request."""


def cut(text: str, limit: int) -> str:
    """``text`` of at most ``limit`` characters, an ellipsis marking a cut."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _details(value: Any) -> dict[str, str]:
    """String-to-string details within :data:`DETAILS_MAX` characters (keys and values counted)."""
    if not isinstance(value, dict):
        return {}
    out: dict[str, str] = {}
    room = DETAILS_MAX
    for key, item in value.items():
        if item is None:
            continue
        name, text = str(key)[:100], item if isinstance(item, str) else str(item)
        if len(name) + 1 > room:
            break
        text = cut(text, room - len(name)) if len(name) + len(text) > room else text
        out[name] = text
        room -= len(name) + len(text)
    return out


def _priority(value: Any, default: str) -> str:
    if value is None or value == "":
        return default
    text = str(value).strip()
    priority = SEVERITY_PRIORITY.get(text.lower(), text.upper())
    if priority not in PRIORITIES:
        raise OpsgenieRequestError(f"priority {value!r} is not one of {', '.join(PRIORITIES)}")
    return priority


def _actor_fields(row: dict[str, Any], source: str) -> dict[str, str]:
    fields = {"source": cut(str(row.get("source") or source), SOURCE_MAX)}
    if row.get("user"):
        fields["user"] = cut(str(row["user"]), USER_MAX)
    if row.get("note"):
        fields["note"] = cut(str(row["note"]), NOTE_MAX)
    return fields


def build_request(row: dict[str, Any], *, default_priority: str = "P1",
                  source: str = "handoff") -> tuple[str, dict[str, Any]]:
    """Shape one outbox row into ``(path and query, JSON body)`` of an Alert API request.

    Raises:
        OpsgenieRequestError: unknown action, missing or too long alias, missing message, bad priority.
    """
    action = str(row.get("action") or "").strip().lower()
    if action not in ACTIONS:
        raise OpsgenieRequestError(f"action {row.get('action')!r} is not one of {', '.join(ACTIONS)}")
    alias = str(row.get("alias") or "").strip()
    if not alias:
        raise OpsgenieRequestError(f"{action} needs an alias (the incident's dedup key)")
    if len(alias) > ALIAS_MAX:
        raise OpsgenieRequestError(f"alias is longer than {ALIAS_MAX} characters")
    if action != "create":
        return f"/v2/alerts/{quote(alias, safe='')}/{action}?identifierType=alias", _actor_fields(row, source)
    message = " ".join(str(row.get("message") or "").split())
    if not message:
        raise OpsgenieRequestError("create needs a message")
    body: dict[str, Any] = {"message": cut(message, MESSAGE_MAX), "alias": alias,
                            "priority": _priority(row.get("priority"), default_priority)}
    if row.get("description"):
        body["description"] = cut(str(row["description"]), DESCRIPTION_MAX)
    if details := _details(row.get("details")):
        body["details"] = details
    body.update(_actor_fields(row, source))
    return "/v2/alerts", body


def _error_summary(answer: HttpAnswer) -> str:
    data = answer.json()
    if not isinstance(data, dict):
        return ""
    parts = [str(data.get("message") or "")]
    errors = data.get("errors")
    if isinstance(errors, dict) and errors:
        parts.append("; ".join(f"{k}: {v}" for k, v in list(errors.items())[:5]))
    return ": ".join(p for p in parts if p)[:300]


def _interpret(action: str, answer: HttpAnswer) -> DeliveryResult:
    if 200 <= answer.status < 300:
        data = answer.json()
        request_id = data.get("requestId") if isinstance(data, dict) else None
        remote = str(request_id) if request_id else answer.headers.get("X-Request-ID")
        return DeliveryResult(ok=True, remote_id=remote or None,
                              detail=f"{action} accepted ({answer.status_text()})" + (f", request {remote}" if remote else ""))
    result = classify_status(answer, why=_error_summary(answer))
    if answer.status == 429 and result.retry_after is None:
        try:  # Opsgenie says how long the throttle lasts in its own header
            period = float(answer.headers.get("X-RateLimit-Period-In-Sec", ""))
        except ValueError:
            period = -1.0
        if period >= 0:
            return DeliveryResult(ok=False, retryable=True, retry_after=period,
                                  detail=f"{result.detail}, retry after {period:g}s")
    return result


class OpsgenieConnector:
    """Delivers ``opsgenie`` outbox rows to the Alert API v2.

    Args:
        session: Shared aiohttp client session.
        api_key: API integration key (a secret), sent as ``Authorization: GenieKey <key>``.
        api_url: ``https://api.opsgenie.com`` (EU accounts: ``https://api.eu.opsgenie.com``).
        priority: Priority of created alerts when a row gives none.
        timeout: Total seconds per request.
        clock: Unix-seconds clock (injectable for tests).
    """

    kind = "opsgenie"

    def __init__(self, *, session: aiohttp.ClientSession, api_key: SecretStr | str, api_url: str = API_URL,
                 priority: str = "P1", timeout: float = DEFAULT_TIMEOUT, clock: Clock = time.time) -> None:
        self._session = session
        self._key = api_key if isinstance(api_key, SecretStr) else SecretStr(api_key)
        self._api_url = api_url.rstrip("/")
        self._priority = priority
        self._timeout = timeout
        self._clock = clock

    def __repr__(self) -> str:
        return f"OpsgenieConnector(kind={self.kind!r}, host={urlsplit(self._api_url).hostname or '?'!r})"

    async def deliver(self, *, payload: dict[str, Any], idempotency_key: str) -> DeliveryResult:
        """Send one request; ``remote_id`` is Opsgenie's ``requestId``."""
        key = self._key.get_secret_value()
        return await guarded(lambda: self._deliver(payload), label=self.kind, secrets=[key])

    async def _deliver(self, row: dict[str, Any]) -> DeliveryResult:
        try:
            path, body = build_request(row, default_priority=self._priority)
        except OpsgenieRequestError as exc:
            return DeliveryResult(ok=False, retryable=False, detail=f"invalid request: {exc}")
        action = str(row["action"]).strip().lower()
        headers = {"Authorization": f"GenieKey {self._key.get_secret_value()}",
                   "Content-Type": "application/json; charset=utf-8", "User-Agent": user_agent()}
        url = URL(self._api_url + path, encoded=True)  # the alias is percent-encoded already
        return await perform(
            self._session, "POST", url, body=json_body(body), headers=headers,  # type: ignore[arg-type]
            timeout=self._timeout, interpret=lambda answer: _interpret(action, answer), clock=self._clock,
            label=self.kind,
        )
