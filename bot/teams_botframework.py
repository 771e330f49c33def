"""The authentication object botbuilder's ``CloudAdapter`` runs on, built on :class:`~bot.teams_auth.TokenValidator`.

``CloudAdapter`` asks a ``BotFrameworkAuthentication`` to authenticate each activity and to make the
connector clients a turn may send with. Ours authenticates with the validator (or not at all, when
token validation is off for local testing), keeps one connector client per service URL (botbuilder
builds a new one, with its own HTTP session, per activity), and hands out credentials that refuse to
send: replies go through the outbox (``teams.post``), never from inside a turn.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

from botbuilder.schema import Activity, CallerIdConstants
from botframework.connector.aio import ConnectorClient
from botframework.connector.auth import (
    AuthenticateRequestResult,
    AuthenticationConstants,
    BotFrameworkAuthentication,
    ClaimsIdentity,
    ConnectorFactory,
    UserTokenClient,
)
from msrest.authentication import Authentication

from bot.teams_auth import TeamsAuthError, TokenValidator, VerifiedToken

log = logging.getLogger(__name__)

#: Connector clients kept, one per service URL (least recently used dropped first).
_MAX_CLIENTS = 64


class InlineSendRefused(RuntimeError):
    """Something tried to send through botbuilder's connector instead of the outbox."""


class OutboxOnlyCredentials(Authentication):
    """Credentials of the connector clients botbuilder gets: using them is a bug, so it fails fast."""

    def signed_session(self, session: Any = None) -> Any:
        raise InlineSendRefused("handoff replies go through the outbox (teams.post), never inline")


class _NoUserTokens(UserTokenClient):
    """handoff uses no user OAuth sign-in; botbuilder only needs an object to put in turn state."""

    async def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("user token operations are not used by handoff")

    get_user_token = get_sign_in_resource = sign_out_user = _refuse  # type: ignore[assignment]
    get_token_status = get_aad_tokens = exchange_token = _refuse  # type: ignore[assignment]


class OutboxOnlyConnectors(ConnectorFactory):
    """Connector clients for botbuilder's turn state, one per service URL (LRU of ``size``).

    Building a ``ConnectorClient`` runs msrest's ``ClientRetryPolicy.__init__`` (~7 ms of list
    scanning); ``CloudAdapter``'s stock factory does it for every activity. ``size=0`` turns the
    cache off (the benchmark's "before").
    """

    def __init__(self, size: int = _MAX_CLIENTS) -> None:
        self._size = size
        self._clients: OrderedDict[str, ConnectorClient] = OrderedDict()

    async def create(self, service_url: str, audience: str | None = None) -> ConnectorClient:
        client = self._clients.get(service_url)
        if client is not None:
            self._clients.move_to_end(service_url)
            return client
        client = ConnectorClient(OutboxOnlyCredentials(), base_url=service_url)
        if self._size > 0:
            self._clients[service_url] = client
            while len(self._clients) > self._size:
                self._clients.popitem(last=False)
        return client

    async def close(self) -> None:
        """Close the cached clients (their msrest pipelines hold HTTP sessions)."""
        clients, self._clients = list(self._clients.values()), OrderedDict()
        for client in clients:
            try:
                await client.__aexit__(None, None, None)
            except Exception:  # closing is best effort
                log.debug("teams: closing a connector client failed", exc_info=True)


class ValidatedAuthentication(BotFrameworkAuthentication):
    """Our token check for botbuilder, with connectors that refuse inline sends.

    Args:
        validator: Checks tokens; None when auth is off (loopback testing only).
        cache_clients: Connector clients kept (see :class:`OutboxOnlyConnectors`); 0 disables.
    """

    def __init__(self, validator: TokenValidator | None, *, cache_clients: int = _MAX_CLIENTS) -> None:
        self.validator = validator
        self.connectors = OutboxOnlyConnectors(cache_clients)
        self._user_tokens = _NoUserTokens()

    async def close(self) -> None:
        await self.connectors.close()

    def result_for(self, token: VerifiedToken | None) -> AuthenticateRequestResult:
        """The result botbuilder expects for a token the edge has already checked."""
        result = AuthenticateRequestResult()
        if token is None:
            result.claims_identity = ClaimsIdentity({}, True, AuthenticationConstants.ANONYMOUS_AUTH_TYPE)
        else:
            result.claims_identity = ClaimsIdentity(dict(token.claims), True)
            result.caller_id = CallerIdConstants.public_azure_channel
        result.audience = AuthenticationConstants.TO_CHANNEL_FROM_BOT_OAUTH_SCOPE
        result.connector_factory = self.create_connector_factory(result.claims_identity)
        return result

    async def authenticate_request(self, activity: Activity, auth_header: str) -> AuthenticateRequestResult:
        if self.validator is None:
            return self.result_for(None)
        try:
            token = await self.validator.verify(auth_header)
            self.validator.check_activity(token, service_url=activity.service_url or "",
                                          channel_id=activity.channel_id or "")
        except TeamsAuthError as exc:
            raise PermissionError(str(exc)) from None
        return self.result_for(token)

    async def authenticate_streaming_request(self, auth_header: str, channel_id_header: str
                                             ) -> AuthenticateRequestResult:
        raise PermissionError("streaming connections are not supported")

    def create_connector_factory(self, claims_identity: ClaimsIdentity) -> ConnectorFactory:
        return self.connectors

    async def create_user_token_client(self, claims_identity: ClaimsIdentity) -> UserTokenClient:
        return self._user_tokens

    def get_originating_audience(self) -> str:
        return AuthenticationConstants.TO_CHANNEL_FROM_BOT_OAUTH_SCOPE
