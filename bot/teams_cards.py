"""Teams message shapes, in and out: pure functions, no I/O.

In: :func:`parse_activity` checks the JSON body of ``POST /api/messages`` (what botbuilder would
choke on becomes :class:`BadActivity`, answered 400) and extracts what the edge needs, with the
bot's own ``<at>…</at>`` mention removed using the activity's mention entities.

Out: :func:`reply_activity` turns a ``teams.post`` outbox row into the Bot Framework message activity
the connector posts: an Adaptive Card for a ticket reply (ticket id, where it went, why, the
rotate-your-secret warning), the row's own ``card`` when it has one (a ``chat.notify`` page, see
:mod:`bot.page_cards`), Teams markdown for everything else (command answers).
"""

from __future__ import annotations

import hashlib
import html
import re
from dataclasses import dataclass
from typing import Any

from handlers.text_input import MAX_ID_CHARS, clean_name, clean_text, valid_id

_AT_TAG = re.compile(r"<at\b[^>]*>(.*?)</at>", re.IGNORECASE | re.DOTALL)
_SPACES = re.compile(r"[ \t\u00a0]+")
_SLACK_BOLD = re.compile(r"(?<![*\w])\*(?!\s)([^*\n]+?)(?<!\s)\*(?![*\w])")
_MAX_ID = 1024
CARD_TYPE = "application/vnd.microsoft.card.adaptive"
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"


class BadActivity(ValueError):
    """A body that is not a usable Bot Framework activity (answered 400)."""


@dataclass(frozen=True, slots=True)
class TeamsActivity:
    """What the edge uses of an inbound activity (``text`` already has the bot mention removed)."""

    type: str
    id: str
    name: str
    channel_id: str
    service_url: str
    conversation_id: str
    conversation_type: str
    tenant_id: str | None
    from_id: str
    aad_object_id: str | None
    user_name: str
    bot_id: str
    bot_name: str
    text: str
    bot_mentioned: bool
    has_value: bool
    team_channel_id: str | None
    members_added: tuple[str, ...]
    action: str

    @property
    def user_id(self) -> str:
        """The stable id of the person: the AAD object id, else the Teams user id."""
        return self.aad_object_id or self.from_id

    @property
    def event_id(self) -> str:
        """Dedup id: the activity id scoped to its conversation (ids are only unique per conversation)."""
        return f"{self.id}@{hashlib.sha256(self.conversation_id.encode()).hexdigest()[:16]}"

    @property
    def base_conversation_id(self) -> str:
        """The conversation id without a channel thread suffix (``;messageid=…``)."""
        return self.conversation_id.split(";", 1)[0]

    def reply_target(self) -> dict[str, Any]:
        """What the ``teams.post`` connector needs to answer this activity in its thread."""
        return {
            "service_url": self.service_url, "conversation_id": self.conversation_id, "reply_to_id": self.id,
            "tenant_id": self.tenant_id, "channel_id": self.channel_id, "conversation_type": self.conversation_type,
            "bot": {"id": self.bot_id, "name": self.bot_name},
            "user": {"id": self.from_id, "name": self.user_name, "aad_object_id": self.aad_object_id},
        }

    def reference(self) -> dict[str, Any]:
        """A conversation reference for proactive messages (no activity id: it is not a reply)."""
        target = self.reply_target()
        target.pop("reply_to_id")
        target["conversation_id"] = self.base_conversation_id if self.conversation_type == "channel" \
            else self.conversation_id
        return target


def _str(data: dict[str, Any], key: str, *, required: bool, where: str = "", max_chars: int = _MAX_ID) -> str:
    """A string field; ids we store get ``max_chars=MAX_ID_CHARS`` (their columns hold 255 characters)."""
    value = data.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise BadActivity(f"{where}{key} must be a non-empty string" if required else f"{where}{key} must be a string")
    if not valid_id(value, max_chars=max_chars):
        raise BadActivity(f"{where}{key} must be at most {max_chars} characters, without control characters")
    return value


def _obj(data: dict[str, Any], key: str, *, required: bool) -> dict[str, Any]:
    value = data.get(key)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise BadActivity(f"{key} must be an object")
    return value


def strip_mentions(text: str, entities: Any, bot_id: str) -> tuple[str, bool]:
    """Remove the bot's ``<at>…</at>`` mention (others keep their name); True if the bot was mentioned.

    The result follows Slack's text convention (``&``, ``<``, ``>`` as ``&amp;``, ``&lt;``, ``&gt;``;
    other HTML entities decoded), so everything downstream that handles Slack text handles this too
    and a ``<!channel>`` typed in Teams stays inert when the ticket is posted to a Slack channel.
    """
    mentioned = False
    for entity in entities if isinstance(entities, list) else ():
        if not isinstance(entity, dict) or str(entity.get("type", "")).lower() != "mention":
            continue
        who = entity.get("mentioned")
        marked = entity.get("text")
        if isinstance(who, dict) and who.get("id") == bot_id:
            mentioned = True
            if isinstance(marked, str) and marked:
                text = text.replace(marked, " ")
    text = html.unescape(_AT_TAG.sub(lambda m: m.group(1), text))
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    lines = [_SPACES.sub(" ", line).strip() for line in text.replace("\r\n", "\n").split("\n")]
    return "\n".join(line for line in lines if line).strip(), mentioned


def parse_activity(body: Any) -> TeamsActivity:
    """Check the shape of an inbound activity and extract what the edge needs.

    Raises:
        BadActivity: naming the first problem found.
    """
    if not isinstance(body, dict):
        raise BadActivity("activity must be a JSON object")
    kind = _str(body, "type", required=True)
    service_url = _str(body, "serviceUrl", required=True)
    if not service_url.startswith(("https://", "http://")):
        raise BadActivity("serviceUrl must be an http(s) URL")
    channel_id = _str(body, "channelId", required=True)
    conversation = _obj(body, "conversation", required=True)
    sender = _obj(body, "from", required=True)
    recipient = _obj(body, "recipient", required=True)
    channel_data = _obj(body, "channelData", required=False)
    conversation_id = _str(conversation, "id", required=True, where="conversation.")
    base, _, root = conversation_id.partition(";messageid=")
    if len(base.split(";", 1)[0]) > MAX_ID_CHARS or len(root) > MAX_ID_CHARS:
        raise BadActivity(f"conversation.id must name a conversation and message of at most {MAX_ID_CHARS} characters")
    from_id = _str(sender, "id", required=True, where="from.", max_chars=MAX_ID_CHARS)
    bot_id = _str(recipient, "id", required=True, where="recipient.")
    activity_id = _str(body, "id", required=kind in ("message", "invoke"), max_chars=MAX_ID_CHARS)
    raw_text = clean_text(body["text"]) if isinstance(body.get("text"), str) else _str(body, "text", required=False)
    entities = body.get("entities")
    if entities is not None and not isinstance(entities, list):
        raise BadActivity("entities must be a list")
    text, mentioned = strip_mentions(raw_text, entities, bot_id)
    tenant = _obj(channel_data, "tenant", required=False).get("id") or conversation.get("tenantId")
    channel = channel_data.get("teamsChannelId") or _obj(channel_data, "channel", required=False).get("id")
    for what, value in (("the tenant id", tenant), ("the channel id", channel),
                        ("conversation.conversationType", conversation.get("conversationType"))):
        if value and not valid_id(value):
            raise BadActivity(f"{what} must be a string of at most {MAX_ID_CHARS} characters")
    added = body.get("membersAdded")
    if added is not None and (not isinstance(added, list) or not all(isinstance(m, dict) for m in added)):
        raise BadActivity("membersAdded must be a list of objects")
    aad = sender.get("aadObjectId")
    if aad and not valid_id(aad):
        raise BadActivity(f"from.aadObjectId must be a string of at most {MAX_ID_CHARS} characters")
    return TeamsActivity(
        type=kind, id=activity_id, name=str(body.get("name") or ""), channel_id=channel_id,
        service_url=service_url, conversation_id=conversation_id,
        conversation_type=str(conversation.get("conversationType") or ""),
        tenant_id=str(tenant) if tenant else None, from_id=from_id,
        aad_object_id=aad or None, user_name=clean_name(str(sender.get("name") or "")),
        bot_id=bot_id, bot_name=clean_name(str(recipient.get("name") or "")), text=text, bot_mentioned=mentioned,
        has_value=body.get("value") is not None, team_channel_id=str(channel) if channel else None,
        members_added=tuple(str(m.get("id")) for m in added or () if m.get("id")),
        action=str(body.get("action") or ""),
    )


# --- out -----------------------------------------------------------------------------------------


def teams_markdown(text: str) -> str:
    """Our replies are written in Slack mrkdwn: ``*bold*`` becomes ``**bold**``, one line per paragraph."""
    text = text.replace(":warning:", "\u26a0\ufe0f")
    return "\n\n".join(_SLACK_BOLD.sub(r"**\1**", line) for line in text.split("\n"))


def ticket_card(payload: dict[str, Any]) -> dict[str, Any]:
    """An Adaptive Card for a ticket reply: the lead line, the ticket id, why, and any warning."""
    lines = str(payload.get("text") or "").split("\n")
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": lines[0], "wrap": True, "weight": "Bolder", "size": "Medium"},
        {"type": "FactSet", "facts": [{"title": "Ticket", "value": str(payload["ticket"])}]},
    ]
    for line in lines[1:]:
        if line.startswith(":warning:"):
            body.append({"type": "TextBlock", "text": "\u26a0\ufe0f " + line.removeprefix(":warning:").strip(),
                         "wrap": True, "color": "Attention"})
        elif line.strip():
            body.append({"type": "TextBlock", "text": line, "wrap": True, "isSubtle": True})
    return {"type": "AdaptiveCard", "$schema": CARD_SCHEMA, "version": "1.4", "body": body}


def reply_activity(payload: dict[str, Any]) -> dict[str, Any]:
    """The message activity for a ``teams.post`` row (a reply when it names ``reply_to_id``)."""
    text = str(payload.get("text") or "")
    activity: dict[str, Any] = {
        "type": "message", "channelId": payload.get("channel_id") or "msteams",
        "conversation": {"id": payload["conversation_id"],
                         **({"tenantId": payload["tenant_id"]} if payload.get("tenant_id") else {})},
    }
    if isinstance(payload.get("bot"), dict) and payload["bot"].get("id"):
        activity["from"] = {"id": payload["bot"]["id"], "name": payload["bot"].get("name") or ""}
    user = payload.get("user")
    if isinstance(user, dict) and user.get("id"):
        activity["recipient"] = {"id": user["id"], "name": user.get("name") or ""}
    if payload.get("reply_to_id"):
        activity["replyToId"] = payload["reply_to_id"]
    if payload.get("alert"):  # a 1:1 message that should notify (activity feed and toast)
        activity["channelData"] = {"notification": {"alert": True}}
    if isinstance(payload.get("card"), dict):
        activity["summary"] = text.split("\n", 1)[0][:200]
        activity["attachments"] = [{"contentType": CARD_TYPE, "content": payload["card"]}]
    elif payload.get("ticket"):
        activity["summary"] = text.split("\n", 1)[0]
        activity["attachments"] = [{"contentType": CARD_TYPE, "content": ticket_card(payload)}]
    else:
        activity["textFormat"] = "markdown"
        activity["text"] = teams_markdown(text)
    return activity
