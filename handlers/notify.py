"""Telling people things later, outside the request: the outbox rows that reach them.

Every message after the immediate answer is an outbox row (acknowledge fast, act later). Two shapes:

* a requester's thread: the ticket remembers how its reply was delivered (``Ticket.conversation``:
  the ``slack.post`` / ``teams.post`` target of the thread), so updates land in the same thread;
* ``chat.notify``: a platform-neutral message to a person or a channel, rendered by the edge
  (Block Kit for Slack, an Adaptive Card for Teams), optionally with page buttons.

``chat.notify`` payload (the contract between handlers and :mod:`bot`)::

    {
      "to": {"platform": "slack" | "teams" | "console", "user": "<id>"}      # a DM
          | {"platform": "slack" | "teams", "channel": "<id>"},               # a channel
      "text": "what to say (Slack mrkdwn subset: *bold*, `code`, links)",
      "title": "optional heading",
      "ticket": "IT-1042",                    # optional, shown as context
      "incident_id": 12,                      # with "actions": the buttons act on this incident
      "actions": ["acknowledge", "resolve", "escalate"],   # optional, see handlers.ports.PAGE_ACTIONS
      "mention_here": false                   # true: notify everyone in the channel (@here)
    }

Pure functions: they build rows, the caller enqueues them in its own transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

#: Outbox kind of platform-neutral notifications (see the module docstring).
NOTIFY_KIND = "chat.notify"


def notify_row(
    *,
    platform: str,
    text: str,
    user: str | None = None,
    channel: str | None = None,
    title: str | None = None,
    ticket: str | None = None,
    incident_id: int | None = None,
    actions: Sequence[str] = (),
    mention_here: bool = False,
) -> tuple[str, dict[str, Any]]:
    """A ``chat.notify`` row ``(kind, payload)`` to ``user`` (a DM) or ``channel``."""
    if (user is None) == (channel is None):
        raise ValueError("give exactly one of user and channel")
    to: dict[str, str] = {"platform": platform, **({"user": user} if user is not None else {"channel": channel or ""})}
    payload: dict[str, Any] = {"to": to, "text": text}
    if title:
        payload["title"] = title
    if ticket:
        payload["ticket"] = ticket
    if incident_id is not None:
        payload["incident_id"] = incident_id
    if actions:
        payload["actions"] = list(actions)
    if mention_here:
        payload["mention_here"] = True
    return NOTIFY_KIND, payload


def requester_row(
    *, platform: str, user_id: str, conversation: dict[str, Any] | None, text: str, ticket: str
) -> tuple[str, dict[str, Any]]:
    """The row that tells a ticket's requester ``text``: in the ticket's thread when it has one, else a DM.

    ``conversation`` is ``Ticket.conversation`` (``{"reply_kind": ..., **target}``) or None for
    requests answered in the command response (slash commands, console): those get a DM, since a
    Slack ``response_url`` expires after 30 minutes.
    """
    if conversation and conversation.get("reply_kind"):
        target = {k: v for k, v in conversation.items() if k != "reply_kind"}
        target.pop("response_url", None)
        if target:
            return str(conversation["reply_kind"]), {**target, "text": text, "ticket": ticket}
    return notify_row(platform=platform, user=user_id, text=text, ticket=ticket)
