"""``chat.notify``: platform-neutral notifications (pages with buttons, DMs, channel posts) delivered.

The row (contract in :mod:`handlers.notify`) names its audience in ``to``; this connector renders it
for that platform (:mod:`bot.page_cards`) and hands it to the platform's own connector, so sending,
retries and secret handling stay in one place per platform:

* ``slack``: ``chat.postMessage`` with ``{"text", "blocks"}``; a DM is posted with ``channel`` = the
  user id (Slack delivers it in the app's DM with that user);
* ``teams``: a proactive message through :class:`~bot.connectors.teams.TeamsConnector`, with the
  stored conversation reference of ``user:<id>`` (a DM: the person must have talked to the bot, or
  have it installed, once) or of the channel (``channel:<id>``/``chat:<id>``, the keys
  :class:`~bot.connectors.teams.TeamsChannelPoster` reads). A DM is sent with a notification alert;
* ``console``: recorded locally (the outbox row is the record; ``handoff chat`` shows it).

A row for a platform that is not configured, or a Teams audience without a stored reference, is
dead at once with a detail that says what to do (the worker then tells the admins): retrying
would not help, and a page must not wait silently.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from bot.connectors.teams import (
    ReferenceLookup,
    TeamsConnector,
    first_reference,
    reference_keys,
)
from bot.page_cards import page_card, slack_message
from handlers.ports import Connector, DeliveryResult

log = logging.getLogger(__name__)

PLATFORMS = ("slack", "teams", "console")


def user_reference_key(user_id: str) -> str:
    """Key under which :class:`bot.teams.ConversationBook` stores a person's 1:1 chat reference."""
    key = f"user:{user_id}"
    return key if len(key) <= 255 else f"user:sha256:{hashlib.sha256(key.encode()).hexdigest()}"


def _dead(detail: str) -> DeliveryResult:
    return DeliveryResult(ok=False, retryable=False, detail=detail)


def _audience(payload: dict[str, Any]) -> tuple[str, str, str] | str:
    """``(platform, "user" | "channel", id)``, or why the row cannot be delivered."""
    to = payload.get("to")
    if not isinstance(to, dict):
        return "row has no `to` object"
    platform = to.get("platform")
    if platform not in PLATFORMS:
        return f"unknown platform {str(platform)[:20]!r} (expected slack, teams or console)"
    user, channel = to.get("user"), to.get("channel")
    if isinstance(user, str) and user and not channel:
        return platform, "user", user
    if isinstance(channel, str) and channel and not user:
        return platform, "channel", channel
    return "`to` needs exactly one of user and channel"


class ChatNotifyConnector:
    """Delivers ``chat.notify`` rows to Slack, Teams or the console.

    Args:
        slack: The ``slack.post`` connector (Web API with the bot token), or None without Slack.
        teams: The ``teams.post`` connector, or None without Teams.
        lookup: Reads stored Teams conversation references (needs the database); None without Teams.
    """

    kind = "chat.notify"

    def __init__(self, *, slack: Connector | None, teams: TeamsConnector | None,
                 lookup: ReferenceLookup | None) -> None:
        self._slack = slack
        self._teams = teams
        self._lookup = lookup

    def __repr__(self) -> str:
        served = [name for name, c in (("slack", self._slack), ("teams", self._teams)) if c is not None]
        return f"ChatNotifyConnector(kind={self.kind!r}, platforms={[*served, 'console']!r})"

    async def deliver(self, *, payload: dict[str, Any], idempotency_key: str) -> DeliveryResult:
        audience = _audience(payload)
        if isinstance(audience, str):
            return _dead(f"invalid row: {audience}")
        platform, kind, target = audience
        if platform == "console":
            log.debug("chat.notify row %s for console %s %s recorded locally", idempotency_key, kind, target)
            return DeliveryResult(ok=True, detail=f"recorded locally (console {kind} {target})")
        if platform == "slack":
            if self._slack is None:
                return _dead("Slack is not configured (set SLACK_BOT_TOKEN); nobody was notified")
            row = {"channel": target, **slack_message(payload)}
            return await self._slack.deliver(payload=row, idempotency_key=idempotency_key)
        return await self._to_teams(payload, kind, target, idempotency_key)

    async def _to_teams(self, payload: dict[str, Any], kind: str, target: str, idempotency_key: str) -> DeliveryResult:
        if self._teams is None or self._lookup is None:
            return _dead("Teams is not configured (set TEAMS_APP_ID and TEAMS_APP_PASSWORD); nobody was notified")
        keys = [user_reference_key(target)] if kind == "user" else reference_keys(target)
        stored = await first_reference(self._lookup, keys)
        if isinstance(stored, DeliveryResult):
            return stored
        if stored is None:
            how = ("they must message the bot once (or have the app installed) before it can DM them"
                   if kind == "user" else "@mention the bot in that channel once")
            return _dead(f"no Teams conversation reference for {kind} {target}: {how}")
        reference = stored.get("reference")
        wanted = ("tenant_id", "channel_id", "bot", "user") if kind == "user" else ("tenant_id", "channel_id", "bot")
        row: dict[str, Any] = {k: v for k, v in (reference if isinstance(reference, dict) else {}).items() if k in wanted}
        summary = str(payload.get("title") or payload.get("text") or "")
        row.update(service_url=stored.get("service_url"), conversation_id=stored.get("conversation_id") or target,
                   text=summary, card=page_card(payload), alert=kind == "user")
        return await self._teams.deliver(payload=row, idempotency_key=idempotency_key)
