"""Slack Web API ``chat.postMessage`` (and slash-command ``response_url`` replies).

Slack answers HTTP 200 with ``{"ok": false, "error": "<code>"}`` for most failures, so the HTTP status
alone does not say whether a message was posted: :func:`classify_slack_answer` reads the body.
Rate limiting comes as HTTP 429 with ``Retry-After`` (seconds) and ``"error": "ratelimited"``.

A row with ``response_url`` (a slash command's reply address) is POSTed there instead, without the bot
token: a ``response_url`` is its own credential, answers plain ``ok`` and must not receive our token.
Only URLs under the configured prefixes (``https://hooks.slack.com/`` by default) are followed.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import aiohttp
from pydantic import SecretStr

from bot.connectors.http import (
    DEFAULT_TIMEOUT,
    NETWORK_ERRORS,
    Clock,
    HttpAnswer,
    classify_status,
    fetch,
    guarded,
    json_body,
    perform,
    retry_later,
    user_agent,
)
from handlers.ports import DeliveryResult

SLACK_API_BASE = "https://slack.com/api/"
RESPONSE_URL_PREFIXES: tuple[str, ...] = ("https://hooks.slack.com/",)
#: Slack error codes worth retrying; every other ``ok: false`` is dead.
RETRYABLE_ERRORS = frozenset(
    {"ratelimited", "rate_limited", "internal_error", "fatal_error", "service_unavailable",
     "request_timeout", "team_added_to_org"}
)
#: Row keys passed on to ``chat.postMessage``.
POST_FIELDS = (
    "channel", "text", "thread_ts", "blocks", "attachments", "reply_broadcast", "mrkdwn",
    "unfurl_links", "unfurl_media", "metadata", "icon_emoji", "username",
)
#: Row keys passed on to a ``response_url``.
RESPONSE_FIELDS = (
    "text", "blocks", "attachments", "response_type", "replace_original", "delete_original",
    "thread_ts", "mrkdwn",
)


class SlackApiError(Exception):
    """Slack could not be reached or did not answer like the Web API does."""


def _api_url(base_url: str, method: str) -> str:
    return base_url.rstrip("/") + "/" + method


def _api_headers(token: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": user_agent(),
    }


def classify_slack_answer(answer: HttpAnswer) -> DeliveryResult:
    """Map a Web API answer to a delivery outcome (``remote_id`` = the message ``ts``)."""
    data = answer.json()
    error = str(data.get("error") or "") if isinstance(data, dict) else ""
    if answer.status == 429:
        return retry_later(answer, error or "ratelimited")
    if answer.status != 200:
        return classify_status(answer, why=error)
    if not isinstance(data, dict) or "ok" not in data:
        # Slack always answers JSON; anything else came from a proxy, the post most likely did not happen.
        return DeliveryResult(ok=False, retryable=True, detail="HTTP 200 but not a Slack answer")
    if data["ok"] is True:
        ts = str(data.get("ts") or data.get("message_ts") or "") or None
        channel = data.get("channel")
        where = f" in {channel}" if isinstance(channel, str) and channel else ""
        return DeliveryResult(ok=True, detail=f"posted{where} ts={ts}", remote_id=ts)
    error = error or "unknown_error"
    if error in RETRYABLE_ERRORS:
        return retry_later(answer, error)
    return DeliveryResult(ok=False, retryable=False, detail=f"slack error: {error}")


def _response_url_answer(answer: HttpAnswer) -> DeliveryResult:
    text = answer.body[:64].decode("utf-8", "replace").strip()
    # Error bodies of response_url are short codes such as "expired_url"; keep only code-like text.
    why = text if text.replace("_", "").isalnum() else ""
    if 200 <= answer.status < 300:
        return DeliveryResult(ok=True, detail=f"replied via response_url ({answer.status_text()})")
    return classify_status(answer, why=why)


async def auth_test(
    session: aiohttp.ClientSession, base_url: str, token: SecretStr | str, *, timeout: float = DEFAULT_TIMEOUT
) -> dict[str, Any]:
    """Call ``auth.test`` and return Slack's answer (``ok`` may be false, e.g. ``invalid_auth``).

    Raises:
        SlackApiError: Slack was unreachable, timed out, or answered something that is not a Web
            API JSON object (the message never contains the token).
    """
    secret = token.get_secret_value() if isinstance(token, SecretStr) else token
    try:
        answer = await fetch(session, "POST", _api_url(base_url, "auth.test"), data=b"{}",
                             headers=_api_headers(secret), timeout=timeout, allow_redirects=True, limit=None)
    except NETWORK_ERRORS as exc:
        raise SlackApiError(f"auth.test failed: {type(exc).__name__}") from None
    status, data = answer.status, answer.json()
    if not isinstance(data, dict) or "ok" not in data:
        raise SlackApiError(f"auth.test answered HTTP {status} without a Slack JSON body")
    return data


class SlackWebConnector:
    """Delivers ``slack.post`` outbox rows with ``chat.postMessage`` (or a ``response_url``).

    Args:
        session: Shared aiohttp client session.
        token: Bot token (``xoxb-...``), a secret.
        base_url: Web API base, ``https://slack.com/api/`` by default.
        response_url_prefixes: The only URL prefixes a row's ``response_url`` may start with.
        timeout: Total seconds per request.
        clock: Unix-seconds clock (injectable for tests).
    """

    kind = "slack.post"

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession,
        token: SecretStr | str,
        base_url: str = SLACK_API_BASE,
        response_url_prefixes: Iterable[str] = RESPONSE_URL_PREFIXES,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Clock = time.time,
    ) -> None:
        self._session = session
        self._token = token if isinstance(token, SecretStr) else SecretStr(token)
        self._base_url = base_url
        self._prefixes = tuple(response_url_prefixes)
        self._timeout = timeout
        self._clock = clock

    def __repr__(self) -> str:
        return f"SlackWebConnector(kind={self.kind!r}, base_url={self._base_url!r})"

    async def deliver(self, *, payload: dict[str, Any], idempotency_key: str) -> DeliveryResult:
        """Post the message. Slack has no idempotency key, so ``idempotency_key`` is not sent."""
        token = self._token.get_secret_value()
        response_url = payload.get("response_url")
        return await guarded(
            lambda: self._deliver(payload), label=self.kind,
            secrets=[token, response_url if isinstance(response_url, str) else None],
        )

    async def _deliver(self, row: dict[str, Any]) -> DeliveryResult:
        response_url = row.get("response_url")
        if response_url:
            return await self._reply(str(response_url), row)
        if not row.get("channel"):
            return DeliveryResult(ok=False, retryable=False, detail="row has no channel")
        body = {k: row[k] for k in POST_FIELDS if row.get(k) is not None}
        return await perform(
            self._session, "POST", _api_url(self._base_url, "chat.postMessage"), body=json_body(body),
            headers=_api_headers(self._token.get_secret_value()), timeout=self._timeout,
            interpret=classify_slack_answer, clock=self._clock, label=self.kind,
        )

    async def _reply(self, response_url: str, row: dict[str, Any]) -> DeliveryResult:
        if not response_url.startswith(self._prefixes):
            return DeliveryResult(ok=False, retryable=False, detail="response_url outside allowed prefixes")
        body = {k: row[k] for k in RESPONSE_FIELDS if row.get(k) is not None}
        headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": user_agent()}
        return await perform(
            self._session, "POST", response_url, body=json_body(body), headers=headers,
            timeout=self._timeout, interpret=_response_url_answer, clock=self._clock, label=self.kind,
        )
