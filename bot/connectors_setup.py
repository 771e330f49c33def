"""Outbound connectors built from the settings: one per outbox kind, a local sink where nothing is configured."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import Settings, teams_mode
from bot.connectors import (
    LocalSink,
    MspWebhookConnector,
    OpsgenieConnector,
    PagerDutyConnector,
    SlackWebConnector,
)
from bot.connectors.notify import ChatNotifyConnector
from bot.connectors.teams import (
    BotTokenProvider,
    FanOut,
    ReferenceLookup,
    TeamsChannelPoster,
    TeamsConnector,
)
from bot.directory import SlackGroupDirectory
from handlers.ports import Connector, DeliveryResult
from storage import service

log = logging.getLogger(__name__)


class ChannelPoster:
    """Posts a row's ``text`` to a fixed Slack channel (admin alerts, in-house notifications)."""

    def __init__(self, *, inner: SlackWebConnector, channel: str, kind: str) -> None:
        self._inner = inner
        self._channel = channel
        self.kind = kind

    async def deliver(self, *, payload: dict[str, Any], idempotency_key: str) -> DeliveryResult:
        body = {"channel": payload.get("channel") or self._channel, "text": str(payload.get("text", ""))}
        return await self._inner.deliver(payload=body, idempotency_key=idempotency_key)


def slack_response_prefixes(api_url: str) -> list[str]:
    """URL prefixes a Slack ``response_url`` may have: Slack's, and the stand-in ``SLACK_API_URL`` names."""
    prefixes = ["https://hooks.slack.com/"]
    if not api_url.startswith("https://slack.com/"):
        parts = urlsplit(api_url)
        prefixes.append(f"{parts.scheme}://{parts.netloc}/")
    return prefixes


def build_connectors(settings: Settings, http: aiohttp.ClientSession, *,
                     sessionmaker: async_sessionmaker[AsyncSession] | None = None) -> dict[str, Connector]:
    """One connector per outbox kind; a local sink wherever nothing is configured.

    ``internal`` and ``admin.alert`` rows go to the Slack channel, the Teams channel, or both (fan-out)
    as configured. The Teams channel posters read stored conversation references through
    ``sessionmaker``; without one those channels are not served (logged). ``chat.notify`` rows go to
    whichever of Slack and Teams is configured (the console is recorded locally); ``opsgenie`` rows
    to Opsgenie when ``OPSGENIE_API_KEY`` is set.
    """
    connectors: dict[str, Connector] = {}
    if settings.msp.url:
        slack_names = None if settings.slack.bot_token is None else SlackGroupDirectory(
            session=http, token=settings.slack.bot_token, base_url=settings.slack.api_url).display_name
        connectors["msp"] = MspWebhookConnector(
            session=http, url=settings.msp.url, secret=settings.msp.secret, timeout=settings.msp.timeout_seconds,
            names=slack_names,
        )
    else:
        connectors["msp"] = LocalSink("msp")
    pd = settings.pagerduty
    if pd.routing_key is not None:
        connectors["pagerduty"] = PagerDutyConnector(
            session=http, routing_key=pd.routing_key, url=pd.events_url, timeout=pd.timeout_seconds
        )
    else:
        connectors["pagerduty"] = LocalSink("pagerduty")
    og = settings.opsgenie
    connectors["opsgenie"] = LocalSink("opsgenie") if og.api_key is None else OpsgenieConnector(
        session=http, api_key=og.api_key, api_url=og.api_url, priority=og.priority, timeout=og.timeout_seconds)
    slack = settings.slack
    slack_api: SlackWebConnector | None = None
    teams_post: TeamsConnector | None = None
    lookup: ReferenceLookup | None = None
    if slack.bot_token is not None:
        # response_url replies may only go to Slack (or to the Slack stand-in SLACK_API_URL names).
        web_api = slack_api = SlackWebConnector(
            session=http, token=slack.bot_token, base_url=slack.api_url,
            response_url_prefixes=slack_response_prefixes(slack.api_url),
        )
        connectors["slack.post"] = web_api
        if settings.internal.slack_channel:
            connectors["internal"] = ChannelPoster(inner=web_api, channel=settings.internal.slack_channel, kind="internal")
        if settings.admins.alert_slack_channel:
            connectors["admin.alert"] = ChannelPoster(
                inner=web_api, channel=settings.admins.alert_slack_channel, kind="admin.alert"
            )
    teams = settings.teams
    mode = teams_mode(settings)
    if mode != "disabled":
        tokens = None
        if mode == "validate" and teams.app_id and teams.app_password is not None:
            tokens = BotTokenProvider(session=http, app_id=teams.app_id, app_password=teams.app_password,
                                      token_url=teams.token_url, timeout=teams.timeout_seconds)
        teams_post = TeamsConnector(
            session=http, tokens=tokens, service_url_prefixes=teams.connector_urls, timeout=teams.timeout_seconds
        )
        connectors["teams.post"] = teams_post

        async def reference(key: str) -> dict[str, Any] | None:
            if sessionmaker is None:  # not reached: no poster is built without one
                return None
            async with sessionmaker() as session:
                ref = await service.get_conversation_ref(session=session, platform="teams", key=key)
            return None if ref is None else {"service_url": ref.service_url, "conversation_id": ref.conversation_id,
                                             "reference": dict(ref.reference or {})}

        lookup = reference if sessionmaker is not None else None

        for kind, channel in (("internal", settings.internal.teams_channel),
                              ("admin.alert", settings.admins.alert_teams_channel)):
            if not channel:
                continue
            if sessionmaker is None:
                log.warning("%s: Teams channel %s not served (no database for conversation references)", kind, channel)
                continue
            poster = TeamsChannelPoster(inner=teams_post, channel=channel, kind=kind, lookup=reference)
            slack_poster = connectors.get(kind)
            connectors[kind] = poster if slack_poster is None else FanOut(
                kind=kind, targets={"slack": slack_poster, "teams": poster})
    elif settings.internal.teams_channel or settings.admins.alert_teams_channel:
        log.warning("internal.teams_channel / admins.alert_teams_channel are set but Teams is not configured "
                    "(set TEAMS_APP_ID and TEAMS_APP_PASSWORD); they are ignored")
    connectors["chat.notify"] = ChatNotifyConnector(slack=slack_api, teams=teams_post, lookup=lookup)
    for kind in ("slack.post", "internal", "admin.alert", "teams.post"):
        connectors.setdefault(kind, LocalSink(kind))
    return connectors
