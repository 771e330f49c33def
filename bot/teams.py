"""The Teams edge: ``POST /api/messages`` on botbuilder, the same path as Slack.

Before botbuilder sees a request this module checks, in order: size (413), the Bot Framework token
(401; 503 if no signing key can be fetched), content type (415), JSON and activity shape (400),
and that the token belongs to this activity (``serviceurl`` claim, key endorsement: 401). Bad input
never reaches a handler and never produces a 500. Then botbuilder's ``CloudAdapter`` runs
:class:`~bot.teams_bot.HandoffTeamsBot` (an ``ActivityHandler``: messages, commands, page cards; see
there). The request is acknowledged only after the commit; a database failure answers 503, Teams
retries, and the retry is deduplicated by its event id.

Why ``CloudAdapter`` (and not ``BotFrameworkAdapter``): it is the adapter botbuilder maintains
(``BotFrameworkAdapter`` is deprecated) and it takes a pluggable ``BotFrameworkAuthentication``,
so our own token check (:mod:`bot.teams_auth`, aiohttp, no blocking ``requests`` or global class
state) plugs in without patching. Its one problem is cost: with the stock authentication every
activity builds a new ``ConnectorClient`` and ``TokenApiClient``, and each runs msrest's
``ClientRetryPolicy.__init__`` (999 status codes scanned against a 500-item list, ~7 ms): ~50-90
activities/s. Our :class:`~bot.teams_botframework.ValidatedAuthentication` keeps one connector client per
service URL (as ``BotFrameworkAdapter``'s ``_connector_client_cache`` does) and needs no token API
client; ``bench/teams_intake.py`` shows before and after. The connector clients botbuilder gets
refuse to send (:class:`~bot.teams_botframework.OutboxOnlyCredentials`): replies go through the outbox and
:class:`bot.connectors.teams.TeamsConnector`, never inline.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from aiohttp import web
from botbuilder.integration.aiohttp import CloudAdapter
from botbuilder.schema import Activity, ChannelAccount, ConversationAccount
from sqlalchemy.exc import DBAPIError, OperationalError

from bot.metrics import Metrics
from bot.teams_auth import AuthUnavailable, TeamsAuthError, TokenValidator
from bot.teams_bot import ACTIVITY, BODY, HandoffTeamsBot
from bot.teams_botframework import ValidatedAuthentication
from bot.teams_cards import BadActivity, TeamsActivity, parse_activity
from handlers.text_input import BadJson, load_json

log = logging.getLogger(__name__)

__all__ = ["TeamsEdge", "bot_activity"]


def bot_activity(act: TeamsActivity, body: dict[str, Any]) -> Activity:
    """The botbuilder ``Activity`` of a turn, built from the checked body.

    msrest's ``Activity().deserialize`` costs 0.3-0.6 ms per activity, more than the rest of the edge
    together; botbuilder only needs these fields, and handlers read the parsed :class:`TeamsActivity`
    (``turn_state[ACTIVITY]``) and, for anything else, the raw JSON (``turn_state[BODY]``).
    """
    def text(key: str) -> str | None:
        value = body.get(key)
        return value if isinstance(value, str) else None

    return Activity(
        type=act.type, id=act.id or None, name=act.name or None, channel_id=act.channel_id,
        service_url=act.service_url, text=text("text"), reply_to_id=text("replyToId"), locale=text("locale"),
        value=body.get("value"), channel_data=body.get("channelData"),
        from_property=ChannelAccount(id=act.from_id, name=act.user_name or None, aad_object_id=act.aad_object_id),
        recipient=ChannelAccount(id=act.bot_id, name=act.bot_name or None),
        conversation=ConversationAccount(id=act.conversation_id, tenant_id=act.tenant_id,
                                         conversation_type=act.conversation_type or None),
    )


class TeamsEdge:
    """Owns the adapter, the bot and the checks in front of them."""

    def __init__(self, *, bot: HandoffTeamsBot, validator: TokenValidator | None, metrics: Metrics) -> None:
        self.bot = bot
        self.validator = validator
        self.metrics = metrics
        self.auth = ValidatedAuthentication(validator)
        self.adapter = CloudAdapter(self.auth)

    async def close(self) -> None:
        await self.bot.close()
        await self.auth.close()

    async def handle(self, request: web.Request) -> web.Response:
        """aiohttp handler for ``POST /api/messages``."""
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._reject(request, 413, "body too large")
        token = None
        if self.validator is not None:
            try:
                token = await self.validator.verify(request.headers.get("Authorization"))
            except TeamsAuthError as exc:
                return self._reject(request, 401, str(exc))
            except AuthUnavailable as exc:
                self.metrics.rejected.labels(platform="teams", status="503").inc()
                log.error("teams request not checked: %s; answering 503", exc)
                return web.json_response({"error": "temporarily unavailable"}, status=503,
                                         headers={"Retry-After": "5"})
        if request.content_type != "application/json":
            return self._reject(request, 415, f"unsupported content type {request.content_type or '(none)'!r}")
        try:
            body = load_json(raw)
            activity = parse_activity(body)
        except (BadJson, BadActivity) as exc:
            return self._reject(request, 400, str(exc))
        if token is not None:
            try:
                TokenValidator.check_activity(token, service_url=activity.service_url, channel_id=activity.channel_id)
            except TeamsAuthError as exc:
                return self._reject(request, 401, str(exc))
        result = self.auth.result_for(token)
        try:
            invoke = await self.adapter.process_activity(result, bot_activity(activity, body),
                                                         functools.partial(self._turn, activity, body))
        except (TimeoutError, OperationalError, DBAPIError, OSError):
            raise  # the application's error middleware answers 503; Teams retries
        except Exception:
            log.exception("teams turn failed (%s); answering 503 so Teams retries", activity.type)
            self.metrics.rejected.labels(platform="teams", status="503").inc()
            return web.json_response({"error": "temporarily unavailable"}, status=503, headers={"Retry-After": "1"})
        if invoke is None:
            return web.Response(status=200)
        if invoke.body is None:
            return web.Response(status=int(invoke.status))
        return web.json_response(invoke.body, status=int(invoke.status))

    async def _turn(self, activity: TeamsActivity, body: dict[str, Any], turn_context: Any) -> None:
        turn_context.turn_state[ACTIVITY] = activity
        turn_context.turn_state[BODY] = body
        await self.bot.on_turn(turn_context)

    def _reject(self, request: web.Request, status: int, reason: str) -> web.Response:
        self.metrics.rejected.labels(platform="teams", status=str(status)).inc()
        log.warning("teams request refused: %d %s (from %s)", status, reason, request.remote)
        return web.json_response({"error": reason}, status=status)
