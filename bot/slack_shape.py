"""The shape check in front of slack-bolt: what bolt or our listeners would choke on is a 400.

slack-bolt reads a request with small helpers (``slack_bolt/request/internals.py``: ``extract_user_id``,
``extract_team_id``...; ``payload_utils.py``; the listener matchers) that assume Slack's types: a
``user`` that is a number, an ``authorizations`` that is not a list of objects, a ``view`` that is
not an object or an ``action_id`` that is not a string raise ``TypeError`` there (a 500 or, inside
dispatch, a 503 that Slack retries). :func:`check_shape` refuses those bodies first, naming the
field, and refuses identifiers we store or key on (event ids, user, channel, team, trigger and
action ids, ``ts``) that are not short printable strings (:func:`handlers.text_input.valid_id`):
PostgreSQL refuses them (255-character columns, no NUL) and Slack would retry the 503 forever.
Free text is not checked here: it is cleaned where it is used (:func:`handlers.text_input.clean_text`).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs

from handlers.rules_tokens import slack_unescape
from handlers.text_input import MAX_JSON_DEPTH, BadJson, load_json, valid_id

#: Objects bolt's helpers look into, at the top of a payload and inside ``event`` (recursively).
_NESTED = ("event", "message", "previous_message", "item", "assistant_thread")
#: Keys bolt reads that may be a string id or an object with an ``id`` (Slack sends both forms).
_ID_OR_OBJECT = ("user", "channel", "team", "enterprise")
#: Keys that are ids when present (strings; null is tolerated where Slack sends it).
_IDS = ("event_id", "action_id", "team_id", "enterprise_id", "user_id", "channel_id", "api_app_id", "trigger_id", "callback_id",
        "thread_ts", "ts", "user_team", "action_ts", "message_ts", "command_ts")
#: Form fields of a slash command that are ids.
_FORM_IDS = ("team_id", "enterprise_id", "channel_id", "user_id", "trigger_id", "command_ts", "api_app_id")


class BadRequest(Exception):
    """A request that is not a well-formed Slack request; answered 400."""


def check_shape(body: str, content_type: str) -> dict[str, Any]:
    """Refuse what is not shaped like a Slack request, before bolt parses it; return what bolt must read.

    bolt would parse the body again, by other rules: a form body containing the word "payload"
    anywhere (a slash command's text, a channel name) was read as an interactivity payload and found
    empty, a form body starting with ``{`` as JSON, and of a repeated field bolt keeps the last
    value where a check would read the first. The caller hands bolt this dict instead, so both read
    the same request.

    Raises:
        BadRequest: naming the first problem found.
    """
    if content_type == "application/json":
        data = _json(body, "body")
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            raise BadRequest("JSON body must be an object with a string `type`")
        if data["type"] == "event_callback":
            event = data.get("event")
            if not isinstance(event, dict) or not isinstance(event.get("type"), str):
                raise BadRequest("event_callback without an `event` object")
            if not isinstance(data.get("event_id"), str) or not data["event_id"]:
                raise BadRequest("event_callback without an `event_id`")
            text = event.get("text")
            if text is not None and not isinstance(text, str):
                raise BadRequest("event.text must be a string")
            for key in ("user", "channel"):  # ours are strings; other events may carry objects
                if event["type"] in ("message", "app_mention") and event.get(key) is not None \
                        and not isinstance(event[key], str):
                    raise BadRequest(f"event.{key} must be a string")
        _payload(data, "")
        return data
    if content_type == "application/x-www-form-urlencoded":
        try:
            form = parse_qs(body, keep_blank_values=True, strict_parsing=bool(body), max_num_fields=200)
        except ValueError:
            raise BadRequest("body is not valid form data") from None
        repeated = sorted(key for key, values in form.items() if len(values) > 1)
        if repeated:
            raise BadRequest(f"form field `{repeated[0][:40]}` given more than once")
        fields = {key: values[0] for key, values in form.items()}
        if "payload" in fields:
            payload = _json(fields["payload"], "interactivity payload")
            if not isinstance(payload, dict) or not isinstance(payload.get("type"), str):
                raise BadRequest("interactivity payload must be an object with a string `type`")
            if payload["type"] == "block_actions":
                actions = payload.get("actions")
                if not isinstance(actions, list) or not actions or not all(isinstance(a, dict) for a in actions):
                    raise BadRequest("block_actions payload needs a non-empty `actions` list of objects")
            _payload(payload, "payload.")
            return payload
        if "command" in fields:
            for key in _FORM_IDS:
                if key in fields:
                    _id(fields[key], key)
            return fields
        if "ssl_check" not in fields:
            raise BadRequest("form body is neither a slash command nor an interactivity payload")
        return fields
    raise BadRequest(f"unsupported content type {content_type or '(none)'!r}")


def _json(text: str, what: str) -> Any:
    try:
        return load_json(text, max_depth=MAX_JSON_DEPTH)
    except BadJson as exc:
        raise BadRequest(f"{what}: {exc}") from None


def _id(value: Any, where: str) -> None:
    if not valid_id(value):
        raise BadRequest(f"{where} must be a string of at most 200 characters without control characters")


def _payload(data: dict[str, Any], where: str, depth: int = 0) -> None:
    """The keys bolt's helpers and our listeners read, checked in ``data`` and its nested objects."""
    for key in _ID_OR_OBJECT:
        value = data.get(key)
        if value is None:
            continue
        if isinstance(value, dict):
            if value.get("id") is not None:
                _id(value["id"], f"{where}{key}.id")
        elif isinstance(value, str):
            _id(value, f"{where}{key}")
        else:
            raise BadRequest(f"{where}{key} must be a string or an object")
    for key in _IDS:
        if data.get(key) is not None:
            _id(data[key], f"{where}{key}")
    if data.get("response_url") is not None and not isinstance(data["response_url"], str):
        raise BadRequest(f"{where}response_url must be a string")
    _objects(data, "authorizations", where, nested=True)
    _objects(data, "response_urls", where)
    for key in ("view", "container", "function_data"):
        if key in data and not isinstance(data[key], dict) and (key == "view" or data[key] is not None):
            raise BadRequest(f"{where}{key} must be an object")  # bolt reads `"callback_id" in body["view"]`
    if data.get("type") in ("block_actions", "interactive_message") and "actions" in data:
        actions = data["actions"]  # bolt reads body["actions"][0]
        if not isinstance(actions, list) or not actions or not all(isinstance(a, dict) for a in actions):
            raise BadRequest(f"{where}actions must be a non-empty list of objects")
    view = data.get("view")
    if isinstance(view, dict):
        for key in ("id", "callback_id", "type", "team_id", "app_installed_team_id"):
            if view.get(key) is not None:
                _id(view[key], f"{where}view.{key}")
    container = data.get("container")
    if isinstance(container, dict) and container.get("channel_id") is not None:
        _id(container["channel_id"], f"{where}container.channel_id")
    if isinstance(data.get("actions"), list):
        for i, action in enumerate(data["actions"]):
            if not isinstance(action, dict):
                raise BadRequest(f"{where}actions[{i}] must be an object")
            if "action_id" in action or data.get("type") == "block_actions":
                _id(action.get("action_id"), f"{where}actions[{i}].action_id")
            for key in ("block_id", "value", "action_ts"):
                if action.get(key) is not None:
                    _id(action[key], f"{where}actions[{i}].{key}")
    if depth < 3:
        for key in _NESTED:
            if key in data and (data[key] is not None or key == "event"):  # bolt: body.get("event", {}).get(...)
                if not isinstance(data[key], dict):
                    raise BadRequest(f"{where}{key} must be an object")
                _payload(data[key], f"{where}{key}.", depth + 1)


def _objects(data: dict[str, Any], key: str, where: str, *, nested: bool = False) -> None:
    if key not in data:
        return
    value = data[key]  # present means a list to bolt, even null (it reads len(body["response_urls"]))
    if value is None and key == "authorizations":
        return
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise BadRequest(f"{where}{key} must be a list of objects")
    if nested and value:
        _payload(value[0], f"{where}{key}[0].", depth=3)  # bolt reads the first one like the payload

#: Slack's control sequences in message text: ``<@U1|name>``, ``<#C1|general>``, ``<!here>``, ``<https://x|label>``.
_CONTROL = re.compile(r"<([@#!]?)([^<>|]*)(?:\|([^<>]*))?>")


def plain_text(text: str, *, keep_mentions: bool = False) -> str:
    """What the employee typed, from Slack's message format: user mentions removed (kept as
    ``<@U1|name>`` with ``keep_mentions``, for commands that name a person), ``<#C1|general>`` as
    ``#general``, ``<!here>`` as ``@here``, links as ``label (URL)``, and ``&lt;`` ``&gt;``
    ``&amp;`` unescaped (https://api.slack.com/reference/surfaces/formatting#escaping).
    """

    def control(m: re.Match[str]) -> str:
        sigil, target, label = m.group(1), m.group(2), m.group(3)
        if sigil == "@":
            return m.group(0) if keep_mentions else ""
        if sigil == "#":
            return "#" + (label or target)
        if sigil == "!":
            name = label or target.split("^", 1)[0]
            return name if name.startswith("@") else "@" + name
        if label and label != target and not target.startswith("mailto:"):
            return f"{label} ({target})"  # keep where a link pointed: the MSP may need it
        return label or target

    return slack_unescape(_CONTROL.sub(control, text))
