"""Page messages with buttons, for both platforms: pure functions, no I/O.

A ``chat.notify`` payload (see :mod:`handlers.notify`) or an :class:`~handlers.ports.ActionOutcome`
``card`` (the same shape) becomes:

* **Slack** (:func:`slack_message`): ``{"text": <notification fallback>, "blocks": [...]}`` with a
  ``section`` (``<!here>`` first when ``mention_here``, the title in bold, the text), a ``context``
  with the ticket, and an ``actions`` block (``block_id`` ``handoff.page.<incident id>``) of buttons
  with ``action_id`` ``handoff.page.<action>`` and ``value`` ``str(incident_id)``: *Acknowledge*
  (``primary``), *Resolve*, *Escalate*, *Not critical* (``danger``);
* **Teams** (:func:`page_card`): an Adaptive Card 1.4 with the same content and one
  ``Action.Execute`` per button, verb ``handoff.page.<action>`` and data ``{"incident_id": id}``,
  each with an ``Action.Submit`` fallback whose data is ``{"verb", "incident_id"}`` (hosts without
  Universal Actions send that back as a message ``value``).

Coming back, :func:`slack_action` reads a Slack ``block_actions`` action and :func:`card_action` a
Teams invoke or submit value; both refuse a ``handoff.page.`` button that is malformed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.teams_cards import CARD_SCHEMA, teams_markdown
from storage.models import MAX_ROW_ID

#: Prefix of page-button ids: Slack ``action_id`` and Teams ``verb`` are ``handoff.page.<action>``.
PAGE_PREFIX = "handoff.page."
#: Button titles of the page actions (``handlers.ports.PAGE_ACTIONS``), in the order they are shown.
PAGE_LABELS = {"acknowledge": "Acknowledge", "resolve": "Resolve", "escalate": "Escalate",
               "not_critical": "Not critical"}
_SLACK_STYLE = {"acknowledge": "primary", "not_critical": "danger"}
_TEAMS_STYLE = {"acknowledge": "positive", "not_critical": "destructive"}
#: Block Kit limits: section text, fallback text.
SECTION_MAX = 3000
TEXT_MAX = 3000


class BadButton(ValueError):
    """A ``handoff.page.`` button whose action or incident id cannot be used."""


@dataclass(frozen=True, slots=True)
class PagePress:
    """A page button pressed: which action, on which incident."""

    action: str
    incident_id: int


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _buttons(payload: dict[str, Any]) -> tuple[int | None, list[str]]:
    incident = payload.get("incident_id")
    if not isinstance(incident, int) or isinstance(incident, bool):
        return None, []
    return incident, [a for a in payload.get("actions") or () if a in PAGE_LABELS]


# --- Slack -----------------------------------------------------------------------------------------


def slack_message(payload: dict[str, Any]) -> dict[str, Any]:
    """``{"text", "blocks"}`` of a ``chat.notify`` payload (text is Slack mrkdwn already, not escaped)."""
    here = "<!here> " if payload.get("mention_here") else ""
    title = str(payload.get("title") or "").strip()
    text = str(payload.get("text") or "").strip()
    section = here + (f"*{title}*\n" if title else "") + text
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": _cut(section, SECTION_MAX)}}]
    if payload.get("ticket"):
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"Ticket *{payload['ticket']}*"}]})
    incident, actions = _buttons(payload)
    if incident is not None and actions:
        elements = []
        for name in actions:
            button: dict[str, Any] = {"type": "button", "action_id": PAGE_PREFIX + name,
                                      "text": {"type": "plain_text", "text": PAGE_LABELS[name]},
                                      "value": str(incident)}
            if name in _SLACK_STYLE:
                button["style"] = _SLACK_STYLE[name]
            elements.append(button)
        blocks.append({"type": "actions", "block_id": f"{PAGE_PREFIX}{incident}", "elements": elements})
    fallback = here + (f"{title}: " if title else "") + text
    return {"text": _cut(fallback or "(no text)", TEXT_MAX), "blocks": blocks}


def slack_action(action: dict[str, Any]) -> PagePress | None:
    """The page action of one ``block_actions`` action, or None when it is not a page button.

    Raises:
        BadButton: ``handoff.page.<unknown>`` or a value that is not an incident id.
    """
    action_id = action.get("action_id")
    if not isinstance(action_id, str) or not action_id.startswith(PAGE_PREFIX):
        return None
    name = action_id[len(PAGE_PREFIX):]
    if name not in PAGE_LABELS:
        raise BadButton(f"unknown page action {name[:40]!r}")
    return PagePress(action=name, incident_id=incident_id_of(action.get("value")))


# --- Teams -----------------------------------------------------------------------------------------


def _card_text(text: str) -> str:
    """Stored text follows Slack's escaping (``&amp;``, ``&lt;``, ``&gt;``); a card shows it plain."""
    return teams_markdown(text).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def page_card(payload: dict[str, Any]) -> dict[str, Any]:
    """An Adaptive Card 1.4 of a ``chat.notify`` payload.

    Body: an attention line when ``mention_here`` (Teams has no @here for bots: the line says who
    should look), the title, the text, a ``Ticket`` fact. Actions: one ``Action.Execute`` per known
    entry of ``actions`` when the payload has an ``incident_id``.
    """
    body: list[dict[str, Any]] = []
    if payload.get("mention_here"):
        body.append({"type": "TextBlock", "text": "\U0001f514 Everyone in this channel: please look at this now.",
                     "wrap": True, "weight": "Bolder", "color": "Attention"})
    if payload.get("title"):
        body.append({"type": "TextBlock", "text": _card_text(str(payload["title"])), "wrap": True,
                     "weight": "Bolder", "size": "Medium"})
    body.append({"type": "TextBlock", "text": _card_text(str(payload.get("text") or "")), "wrap": True})
    if payload.get("ticket"):
        body.append({"type": "FactSet", "facts": [{"title": "Ticket", "value": str(payload["ticket"])}]})
    card: dict[str, Any] = {"type": "AdaptiveCard", "$schema": CARD_SCHEMA, "version": "1.4", "body": body}
    incident, actions = _buttons(payload)
    if incident is not None and actions:
        card["actions"] = []
        for name in actions:
            verb, title = PAGE_PREFIX + name, PAGE_LABELS[name]
            execute: dict[str, Any] = {
                "type": "Action.Execute", "title": title, "verb": verb, "data": {"incident_id": incident},
                "fallback": {"type": "Action.Submit", "title": title, "data": {"verb": verb, "incident_id": incident}},
            }
            if name in _TEAMS_STYLE:
                execute["style"] = _TEAMS_STYLE[name]
            card["actions"].append(execute)
    return card


def card_action(value: Any) -> PagePress | None:
    """The page action in an inbound Teams ``value``, or None when it is not one of our buttons.

    Reads an ``adaptiveCard/action`` invoke value (``{"action": {"type": "Action.Execute", "verb":
    "handoff.page.resolve", "data": {"incident_id": 12}}, "trigger": "manual"}``) and an
    ``Action.Submit`` message value (``{"verb": "handoff.page.resolve", "incident_id": 12}``).

    Raises:
        BadButton: a ``handoff.page.`` verb with an unknown action or an unusable incident id.
    """
    if not isinstance(value, dict):
        return None
    inner = value.get("action")
    verb, data = (inner.get("verb"), inner.get("data")) if isinstance(inner, dict) else (value.get("verb"), value)
    if not isinstance(verb, str) or not verb.startswith(PAGE_PREFIX):
        return None
    name = verb[len(PAGE_PREFIX):]
    if name not in PAGE_LABELS:
        raise BadButton(f"unknown page action {name[:40]!r}")
    return PagePress(action=name, incident_id=incident_id_of(data.get("incident_id") if isinstance(data, dict) else None))


def incident_id_of(value: Any) -> int:
    """A positive incident id from a button (an int, or a string of ASCII digits).

    Raises:
        BadButton: anything else.
    """
    if isinstance(value, str) and len(value) <= 24 and value.strip().isascii() and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= MAX_ROW_ID:
        raise BadButton("the button carries no valid incident id")
    return value
