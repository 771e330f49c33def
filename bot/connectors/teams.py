"""Teams replies and proactive messages through the Bot Connector REST API, with aiohttp.

A ``teams.post`` outbox row carries a conversation reference (``service_url``, ``conversation_id``,
``tenant_id``, bot and user accounts) and the text; with ``reply_to_id`` it is a reply
(``POST {serviceUrl}/v3/conversations/{id}/activities/{replyToId}``: a thread reply in a channel),
without it a proactive message (``POST {serviceUrl}/v3/conversations/{id}/activities``).

The bearer token comes from the Microsoft identity platform's client-credentials grant and is cached
until five minutes before it expires (:class:`BotTokenProvider`). Everything here is aiohttp on the
event loop: botbuilder's ``requests``/MSAL calls are never used for sending. Tokens are only sent to
``service_url`` prefixes we were configured with (``https://smba.trafficmanager.net/``). Outcomes
follow the connector contract: 2xx ok (``remote_id`` = the new activity id); 429, 5xx and network
errors retryable with ``Retry-After``; a 401 drops the cached token and retries; other 4xx dead.

:class:`TeamsChannelPoster` posts ``internal`` and ``admin.alert`` rows to a configured channel, with the
service URL of the channel's stored conversation reference; :class:`FanOut` sends one row to several
places (a Slack and a Teams channel).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import quote

import aiohttp
from pydantic import SecretStr
from yarl import URL

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
from bot.teams_cards import reply_activity
from handlers.ports import Connector, DeliveryResult

SCOPE = "https://api.botframework.com/.default"


class TokenError(Exception):
    """No token could be obtained; ``retryable`` says whether trying later may help."""

    def __init__(self, detail: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retryable = retryable
        self.retry_after = retry_after


class BotTokenProvider:
    """The bot's own access token (client-credentials grant), cached until shortly before expiry.

    Args:
        session: Shared client session.
        app_id: Microsoft app id (client id).
        app_password: Client secret.
        token_url: ``https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token``.
        margin: Refresh this many seconds before expiry (at most half the token's lifetime).
    """

    def __init__(self, *, session: aiohttp.ClientSession, app_id: str, app_password: SecretStr,
                 token_url: str, scope: str = SCOPE, timeout: float = DEFAULT_TIMEOUT, margin: float = 300,
                 clock: Clock = time.time) -> None:
        self._session = session
        self._app_id = app_id
        self._password = app_password
        self._url = token_url
        self._scope = scope
        self._timeout = timeout
        self._margin = margin
        self._clock = clock
        self._token: str | None = None
        self._refresh_at = 0.0
        self._lock = asyncio.Lock()
        self.fetches = 0

    def __repr__(self) -> str:
        return f"BotTokenProvider(app_id={self._app_id!r}, token_url={self._url!r})"

    @property
    def secrets(self) -> list[str | None]:
        """Values to scrub from anything shown (the password and the current token)."""
        return [self._password.get_secret_value(), self._token]

    def invalidate(self, token: str) -> None:
        """Forget ``token`` (the connector refused it) so the next call fetches a new one."""
        if self._token == token:
            self._token = None

    async def token(self) -> str:
        """A valid token, fetched when none is cached or it is about to expire.

        Raises:
            TokenError: the token endpoint could not be reached or refused us.
        """
        if self._token is not None and self._clock() < self._refresh_at:
            return self._token
        async with self._lock:  # concurrent deliveries share one fetch
            if self._token is not None and self._clock() < self._refresh_at:
                return self._token
            token, lifetime = await self._fetch()
            self._token = token
            self._refresh_at = self._clock() + lifetime - min(self._margin, lifetime / 2)
            return token

    async def _fetch(self) -> tuple[str, float]:
        form = {"grant_type": "client_credentials", "client_id": self._app_id,
                "client_secret": self._password.get_secret_value(), "scope": self._scope}
        self.fetches += 1
        try:
            answer = await fetch(self._session, "POST", self._url, data=form, headers={"User-Agent": user_agent()},
                                 timeout=self._timeout, clock=self._clock, limit=None)
        except NETWORK_ERRORS as exc:
            raise TokenError(f"token endpoint unreachable ({type(exc).__name__})", retryable=True) from None
        status, retry_after, data = answer.status, answer.retry_after(), answer.json()
        error = str(data.get("error") or "") if isinstance(data, dict) else ""
        if status == 429 or status >= 500:
            raise TokenError(f"token endpoint HTTP {status}", retryable=True, retry_after=retry_after)
        if status != 200:
            raise TokenError(f"token endpoint refused: HTTP {status} {error}".rstrip(), retryable=False)
        token = data.get("access_token") if isinstance(data, dict) else None
        lifetime = data.get("expires_in") if isinstance(data, dict) else None
        try:
            seconds = float(lifetime)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            seconds = 0.0
        if not isinstance(token, str) or not token or seconds <= 0:
            raise TokenError("token endpoint answered without a token", retryable=True)
        return token, seconds


def activities_url(service_url: str, conversation_id: str, reply_to_id: str | None) -> URL:
    """``{serviceUrl}/v3/conversations/{id}/activities[/{replyToId}]``, ids percent-encoded on the wire.

    Channel thread ids look like ``19:…@thread.skype;messageid=…``: sent as-is the ``;`` would read
    as a path parameter, so the URL is marked pre-encoded (yarl would otherwise decode ``%3B``).
    """
    url = f"{service_url.rstrip('/')}/v3/conversations/{quote(conversation_id, safe='')}/activities"
    return URL(url + (f"/{quote(reply_to_id, safe='')}" if reply_to_id else ""), encoded=True)


def classify_connector_answer(answer: HttpAnswer) -> DeliveryResult:
    """2xx: delivered (``remote_id`` = the id the connector gave the activity); else the default rules."""
    data = answer.json()
    if 200 <= answer.status < 300:
        remote = data.get("id") if isinstance(data, dict) else None
        return classify_status(answer, remote_id=str(remote) if remote else None)
    if answer.status == 401:
        return retry_later(answer, "token refused, a new one is fetched")
    error = data.get("error") if isinstance(data, dict) else None
    code = str(error.get("code") or "") if isinstance(error, dict) else ""
    return classify_status(answer, why=code if code.replace("_", "").isalnum() else "")


class TeamsConnector:
    """Delivers ``teams.post`` rows (replies and proactive messages).

    Args:
        session: Shared aiohttp client session.
        tokens: Where bearer tokens come from; None only when Teams auth is off (local testing).
        service_url_prefixes: The only service URLs rows may name (our token goes there).
        timeout: Total seconds per request.
    """

    kind = "teams.post"

    def __init__(self, *, session: aiohttp.ClientSession, tokens: BotTokenProvider | None,
                 service_url_prefixes: Iterable[str], timeout: float = DEFAULT_TIMEOUT,
                 clock: Clock = time.time) -> None:
        self._session = session
        self._tokens = tokens
        self._prefixes = tuple(service_url_prefixes)
        self._timeout = timeout
        self._clock = clock

    def __repr__(self) -> str:
        return f"TeamsConnector(kind={self.kind!r}, service_url_prefixes={self._prefixes!r})"

    async def deliver(self, *, payload: dict[str, Any], idempotency_key: str) -> DeliveryResult:
        """Post the activity. The Bot Connector has no idempotency key, so none is sent."""
        secrets = self._tokens.secrets if self._tokens is not None else []
        return await guarded(lambda: self._deliver(payload), label=self.kind, secrets=secrets)

    async def _deliver(self, row: dict[str, Any]) -> DeliveryResult:
        service_url, conversation = row.get("service_url"), row.get("conversation_id")
        if not isinstance(service_url, str) or not isinstance(conversation, str) or not conversation:
            return DeliveryResult(ok=False, retryable=False, detail="row has no service_url or conversation_id")
        if not service_url.startswith(self._prefixes):
            return DeliveryResult(ok=False, retryable=False, detail="service_url outside allowed prefixes")
        reply_to = row.get("reply_to_id")
        url = activities_url(service_url, conversation, str(reply_to) if reply_to else None)
        headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": user_agent()}
        token = None
        if self._tokens is not None:
            try:
                token = await self._tokens.token()
            except TokenError as exc:
                return DeliveryResult(ok=False, retryable=exc.retryable, retry_after=exc.retry_after,
                                      detail=exc.detail)
            headers["Authorization"] = f"Bearer {token}"
        result = await perform(
            self._session, "POST", url, body=json_body(reply_activity(row)), headers=headers,  # type: ignore[arg-type]
            timeout=self._timeout, interpret=classify_connector_answer, clock=self._clock, label=self.kind,
        )
        if token is not None and self._tokens is not None and result.detail.startswith("HTTP 401"):
            self._tokens.invalidate(token)
        return result


#: Looks up a stored Teams conversation reference by its ``conversation_refs`` key (``channel:<id>``):
#: ``{"service_url", "conversation_id", "reference"}`` or None. Injected by the composition root so
#: this module stays free of the database.
ReferenceLookup = Callable[[str], Awaitable[dict[str, Any] | None]]


async def first_reference(lookup: ReferenceLookup, keys: Iterable[str]) -> dict[str, Any] | DeliveryResult | None:
    """The first stored reference among ``keys``; None when none is stored; a retryable
    :class:`DeliveryResult` when the lookup itself failed (a database hiccup: try again later)."""
    try:
        for key in keys:
            if (stored := await lookup(key)) is not None:
                return stored
    except Exception as exc:  # noqa: BLE001 - reported as a retryable delivery failure
        return DeliveryResult(ok=False, retryable=True,
                              detail=f"conversation reference lookup failed ({type(exc).__name__})")
    return None


def reference_keys(conversation: str) -> list[str]:
    """Keys under which :class:`bot.teams.ConversationBook` stores a channel (or group chat) reference."""
    keys = [f"{kind}:{conversation}" for kind in ("channel", "chat")]
    return [k if len(k) <= 255 else f"{k.split(':', 1)[0]}:sha256:{hashlib.sha256(k.encode()).hexdigest()}"
            for k in keys]


class TeamsChannelPoster:
    """Posts a row's ``text`` (markdown) proactively to a fixed Teams channel: a new post, not a reply.

    The service URL and tenant come from the channel's stored conversation reference, which the bot
    learns when it is @mentioned in the channel or installed in the team. Until then a delivery is
    retryable, never dead: the row goes out once someone has mentioned the bot there.

    Args:
        inner: The ``teams.post`` connector (token, allowed service URLs, HTTP outcome rules).
        channel: Teams channel conversation id (``19:…@thread.tacv2``).
        kind: Outbox kind served (``internal`` or ``admin.alert``).
        lookup: Reads a stored reference by key (see :data:`ReferenceLookup`).
    """

    def __init__(self, *, inner: TeamsConnector, channel: str, kind: str, lookup: ReferenceLookup) -> None:
        self._inner = inner
        self._channel = channel
        self._lookup = lookup
        self.kind = kind

    def __repr__(self) -> str:
        return f"TeamsChannelPoster(kind={self.kind!r}, channel={self._channel!r})"

    async def deliver(self, *, payload: dict[str, Any], idempotency_key: str) -> DeliveryResult:
        stored = await first_reference(self._lookup, reference_keys(self._channel))
        if isinstance(stored, DeliveryResult):
            return stored
        if stored is None:
            return DeliveryResult(ok=False, retryable=True, detail=(
                f"no conversation reference yet for Teams channel {self._channel} "
                "— @mention the bot in that channel once"))
        reference = stored.get("reference")
        row = {k: v for k, v in (reference if isinstance(reference, dict) else {}).items()
               if k in ("tenant_id", "channel_id", "bot")}
        row.update(service_url=stored.get("service_url"), conversation_id=stored.get("conversation_id") or self._channel,
                   text=str(payload.get("text", "")))
        return await self._inner.deliver(payload=row, idempotency_key=idempotency_key)


class FanOut:
    """Delivers one row through several connectors: ok when all are, retryable when any failure is.

    Targets that already delivered a key are not sent it again when the row is retried (remembered
    in this process for the last ``remembered`` keys; after a restart a retry may repeat them).
    """

    def __init__(self, *, kind: str, targets: dict[str, Connector], remembered: int = 10_000) -> None:
        self.kind = kind
        self._targets = dict(targets)
        self._done: OrderedDict[str, dict[str, str | None]] = OrderedDict()
        self._max = remembered

    def __repr__(self) -> str:
        return f"FanOut(kind={self.kind!r}, targets={list(self._targets)!r})"

    async def deliver(self, *, payload: dict[str, Any], idempotency_key: str) -> DeliveryResult:
        done = self._done.setdefault(idempotency_key, {})
        self._done.move_to_end(idempotency_key)
        pending = {name: c for name, c in self._targets.items() if name not in done}
        results = await asyncio.gather(*(c.deliver(payload=payload, idempotency_key=idempotency_key)
                                         for c in pending.values()))
        failed = {}
        for name, result in zip(pending, results, strict=True):
            if result.ok:
                done[name] = result.remote_id
            else:
                failed[name] = result
        while len(self._done) > self._max:
            self._done.popitem(last=False)
        detail = "; ".join(f"{n}: {r.detail or ('ok' if r.ok else 'failed')}" for n, r in zip(pending, results,
                                                                                              strict=True))
        if not failed:
            self._done.pop(idempotency_key, None)
            remote = ",".join(f"{n}:{rid}" for n, rid in done.items() if rid)
            return DeliveryResult(ok=True, detail=detail, remote_id=remote[:255] or None)
        retryable = any(r.retryable for r in failed.values())
        after = [r.retry_after for r in failed.values() if r.retryable and r.retry_after is not None]
        return DeliveryResult(ok=False, retryable=retryable, retry_after=max(after) if after else None, detail=detail)
