"""A fake Slack Web API (and slash-command ``response_url`` endpoint) on loopback.

Methods live under ``/api/<method>`` (so :attr:`FakeSlackApi.api_base` stands in for
``https://slack.com/api/``) and answer the way Slack does:

* authentication from ``Authorization: Bearer <token>`` or a ``token`` field of a *form* body (a
  token inside a JSON body is ignored, as Slack ignores it); none gives ``not_authed``, a wrong one
  ``invalid_auth``, a revoked one ``token_revoked``, all with HTTP 200;
* bodies as ``application/json`` or ``application/x-www-form-urlencoded`` (JSON without
  ``charset`` succeeds with the ``missing_charset`` warning, as Slack does);
* logical errors as HTTP 200 ``{"ok": false, "error": "<code>"}``; unknown methods as HTTP 404
  ``unknown_method``; rate limiting (scripted with :meth:`FakeSlackApi.ratelimit_next`) as HTTP 429
  with ``Retry-After`` and ``{"ok": false, "error": "ratelimited"}``.

``POST /response/<id>`` is a ``response_url``: it answers ``200 ok`` (plain text), ``404
expired_url`` once expired with :meth:`FakeSlackApi.expire_response_url`, ``400 no_text``/
``invalid_payload``/``invalid_blocks`` for unusable bodies.

``blocks`` are checked against the Block Kit limits handoff relies on (:func:`block_errors`: at most
50 blocks, section text 3,000 characters, ``actions`` with 1-25 elements, button text 75, ``value``
2,000, ``action_id``/``block_id`` 255 and unique, ``style`` primary/danger); a violation answers
``invalid_blocks`` as Slack does. :func:`block_actions_body` builds the form body Slack POSTs when
a button is pressed (shaped like ``fixtures/slack/interactivity.block_actions.json``).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
import uuid
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from tests.fakes.base import FakeService, RecordedRequest, Scripted

TEAM_ID = "T111"
BOT_USER_ID = "U0HANDOFF"
BOT_ID = "B0HANDOFF"
APP_ID = "A0HANDOFF"
MAX_TEXT = 40_000
_BLOCK_TYPES = {"section", "context", "actions", "divider", "header", "image", "input", "rich_text", "file", "video"}
_SCOPES = {
    "chat.postMessage": "chat:write", "chat.postEphemeral": "chat:write", "users.info": "users:read",
    "conversations.open": "im:write", "auth.test": "",
    "usergroups.list": "usergroups:read", "usergroups.users.list": "usergroups:read",
}


class FakeSlackApi(FakeService):
    """Fake Slack Web API.

    Args:
        token: The bot token the fake accepts.
        channels: If given, the only channel ids that exist (others: ``channel_not_found``).
    """

    def __init__(self, *, token: str = "xoxb-fake-token", channels: set[str] | None = None) -> None:
        super().__init__()
        self.token = token
        self.channels = channels
        self.not_in_channels: set[str] = set()
        self.archived_channels: set[str] = set()
        self.revoked = False
        self.users: dict[str, dict[str, Any]] = {}
        self.usergroups: dict[str, dict[str, Any]] = {}
        self.posts: list[dict[str, Any]] = []
        self.ephemerals: list[dict[str, Any]] = []
        self.responses: dict[str, list[dict[str, Any]]] = {}
        self._expired: set[str] = set()
        self._dms: dict[str, str] = {}
        self._seq = itertools.count(1)
        self.add_user("W111", name="primary-owner", real_name="Primary Owner", email="owner@example.com")
        self.add_user(BOT_USER_ID, name="handoff", real_name="handoff", is_bot=True)

    # --- configuration / helpers ---------------------------------------------------------------
    def setup(self, app: web.Application) -> None:
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/response/{rid}", self._response_url)

    def reset(self) -> None:
        super().reset()
        self.posts.clear()
        self.ephemerals.clear()
        self.responses.clear()
        self._expired.clear()
        self._dms.clear()

    def failure_body(self, status: int) -> Any:
        if status == 429:
            return {"ok": False, "error": "ratelimited"}
        if status >= 500:
            return {"ok": False, "error": "service_unavailable" if status == 503 else "internal_error"}
        return {"ok": False, "error": "invalid_request"}

    def extra_headers(self) -> dict[str, str]:
        return {"X-Slack-Req-Id": uuid.uuid4().hex, "X-OAuth-Scopes": "chat:write,users:read,im:write,commands"}

    @property
    def api_base(self) -> str:
        """Stand-in for ``https://slack.com/api/`` (with the trailing slash)."""
        return self.url_for("/api/")

    def add_user(self, user_id: str, *, name: str, real_name: str = "", email: str = "",
                 is_bot: bool = False, tz: str = "Europe/Berlin") -> None:
        """Make ``users.info`` / ``conversations.open`` know a user."""
        self.users[user_id] = {
            "id": user_id, "team_id": TEAM_ID, "name": name, "deleted": False, "real_name": real_name,
            "tz": tz, "tz_label": "Central European Time", "tz_offset": 3600, "is_admin": False,
            "is_owner": False, "is_bot": is_bot, "is_app_user": False, "updated": 1502138686,
            "profile": {"real_name": real_name, "display_name": name, "email": email, "team": TEAM_ID},
        }

    def add_usergroup(self, group_id: str, *, handle: str, users: list[str], name: str = "",
                      disabled: bool = False) -> None:
        """Make ``usergroups.list`` / ``usergroups.users.list`` know a user group (``S…`` id)."""
        self.usergroups[group_id] = {
            "id": group_id, "team_id": TEAM_ID, "is_usergroup": True, "name": name or handle, "handle": handle,
            "description": "", "is_external": False, "date_delete": 1 if disabled else 0, "user_count": len(users),
            "users": list(users),
        }

    def response_url(self, rid: str = "1") -> str:
        """A ``response_url`` served by this fake."""
        return self.url_for(f"/response/{rid}")

    def expire_response_url(self, rid: str) -> None:
        """Make a ``response_url`` answer ``404 expired_url`` from now on."""
        self._expired.add(rid)

    def ratelimit_next(self, n: int = 1, *, retry_after: int = 1) -> None:
        """Answer the next ``n`` requests with HTTP 429, ``Retry-After`` and ``ratelimited``."""
        self.fail_next(n, status=429, headers={"Retry-After": str(retry_after)},
                       body={"ok": False, "error": "ratelimited"})

    def error_next(self, error: str, n: int = 1) -> None:
        """Answer the next ``n`` requests with HTTP 200 ``{"ok": false, "error": error}``."""
        self.script(*(Scripted(status=200, body={"ok": False, "error": error}) for _ in range(n)))

    def calls(self, method: str) -> list[RecordedRequest]:
        """Requests received for one Web API method (e.g. ``"auth.test"``)."""
        return self.requests_to(f"/api/{method}")

    def posts_to(self, channel: str) -> list[dict[str, Any]]:
        """``chat.postMessage`` arguments accepted for ``channel``."""
        return [p for p in self.posts if p["channel"] == channel]

    # --- Web API -------------------------------------------------------------------------------
    def _next_ts(self) -> str:
        return f"{int(time.time())}.{next(self._seq):06d}"

    def _token_of(self, request: web.Request, record: RecordedRequest) -> str | None:
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            return auth[len("Bearer "):].strip()
        if record.form and record.form.get("token"):
            return record.form["token"]
        return request.query.get("token")

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        handler = {
            "auth.test": self._auth_test, "chat.postMessage": self._post_message,
            "chat.postEphemeral": self._post_ephemeral, "users.info": self._users_info,
            "conversations.open": self._conversations_open,
            "usergroups.list": self._usergroups_list, "usergroups.users.list": self._usergroups_users_list,
        }.get(method)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method", "req_method": method}, status=404)
        record = self.record_of(request)
        args: dict[str, Any] = dict(request.query)
        warning = None
        if request.content_type == "application/json" and record.body:
            if record.json is None:
                return self._answer(method, {"ok": False, "error": "invalid_json"})
            if not isinstance(record.json, dict):
                return self._answer(method, {"ok": False, "error": "json_not_object"})
            args.update(record.json)
            args.pop("token", None)  # Slack does not read tokens from JSON bodies
            if request.charset is None:
                warning = "missing_charset"
        elif record.form is not None:
            args.update(record.form)
        token = self._token_of(request, record)
        if not token:
            return self._answer(method, {"ok": False, "error": "not_authed"})
        if token != self.token:
            return self._answer(method, {"ok": False, "error": "invalid_auth"})
        if self.revoked:
            return self._answer(method, {"ok": False, "error": "token_revoked"})
        data = handler(args)
        if warning and data.get("ok"):
            data = {**data, "warning": warning, "response_metadata": {"warnings": [warning]}}
        return self._answer(method, data)

    def _answer(self, method: str, data: dict[str, Any]) -> web.Response:
        headers = {"X-Accepted-OAuth-Scopes": _SCOPES.get(method, "")}
        return web.json_response(data, headers=headers, content_type="application/json")

    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True, "url": "https://fake-workspace.slack.com/", "team": "Fake Workspace",
            "user": "handoff", "team_id": TEAM_ID, "user_id": BOT_USER_ID, "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _channel_error(self, channel: Any) -> str | None:
        if not isinstance(channel, str) or not channel:
            return "channel_not_found"
        if self.channels is not None and channel not in self.channels and channel not in self._dms.values():
            return "channel_not_found"
        if channel in self.archived_channels:
            return "is_archived"
        if channel in self.not_in_channels:
            return "not_in_channel"
        return None

    @staticmethod
    def _content_error(args: dict[str, Any]) -> str | None:
        blocks = args.get("blocks")
        if isinstance(blocks, str):
            try:
                blocks = json.loads(blocks)
            except ValueError:
                return "invalid_blocks"
        if blocks is not None and (not isinstance(blocks, list) or block_errors(blocks)):
            return "invalid_blocks"
        text = args.get("text")
        if not text and not blocks and not args.get("attachments"):
            return "no_text"
        if isinstance(text, str) and len(text) > MAX_TEXT:
            return "msg_too_long"
        return None

    def _post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        error = self._channel_error(args.get("channel")) or self._content_error(args)
        if error:
            return {"ok": False, "error": error}
        ts = self._next_ts()
        message: dict[str, Any] = {
            "bot_id": BOT_ID, "type": "message", "text": args.get("text", ""), "user": BOT_USER_ID,
            "ts": ts, "app_id": APP_ID, "team": TEAM_ID,
        }
        for key in ("blocks", "thread_ts"):
            if args.get(key):
                message[key] = args[key]
        self.posts.append({**args, "ts": ts})
        return {"ok": True, "channel": args["channel"], "ts": ts, "message": message}

    def _post_ephemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        error = self._channel_error(args.get("channel"))
        if not error and args.get("user") not in self.users:
            error = "user_not_in_channel"
        error = error or self._content_error(args)
        if error:
            return {"ok": False, "error": error}
        ts = self._next_ts()
        self.ephemerals.append({**args, "message_ts": ts})
        return {"ok": True, "message_ts": ts}

    def _users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        user = self.users.get(str(args.get("user") or ""))
        if user is None:
            return {"ok": False, "error": "user_not_found"}
        return {"ok": True, "user": user}

    def _conversations_open(self, args: dict[str, Any]) -> dict[str, Any]:
        users = args.get("users")
        if isinstance(users, list):
            users = ",".join(str(u) for u in users)
        if not users:
            channel = args.get("channel")
            if channel and channel in self._dms.values():
                return {"ok": True, "no_op": True, "already_open": True, "channel": {"id": channel}}
            return {"ok": False, "error": "channel_not_found" if channel else "users_list_not_supplied"}
        ids = [u.strip() for u in str(users).split(",") if u.strip()]
        if any(u not in self.users for u in ids):
            return {"ok": False, "error": "user_not_found"}
        key = ",".join(ids)
        if key in self._dms:
            return {"ok": True, "no_op": True, "already_open": True, "channel": {"id": self._dms[key]}}
        prefix = "D" if len(ids) == 1 else "G"
        channel_id = prefix + hashlib.sha1(key.encode()).hexdigest()[:8].upper()
        self._dms[key] = channel_id
        return {"ok": True, "channel": {"id": channel_id}}

    def _usergroups_list(self, args: dict[str, Any]) -> dict[str, Any]:
        include_users = str(args.get("include_users", "")).lower() in ("1", "true")
        include_disabled = str(args.get("include_disabled", "")).lower() in ("1", "true")
        groups = []
        for g in self.usergroups.values():
            if g["date_delete"] and not include_disabled:
                continue
            groups.append(g if include_users else {k: v for k, v in g.items() if k != "users"})
        return {"ok": True, "usergroups": groups}

    def _usergroups_users_list(self, args: dict[str, Any]) -> dict[str, Any]:
        group_id = args.get("usergroup")
        if not group_id:
            return {"ok": False, "error": "invalid_arguments"}
        group = self.usergroups.get(str(group_id))
        if group is None:
            return {"ok": False, "error": "no_such_subteam"}
        if group["date_delete"] and str(args.get("include_disabled", "")).lower() not in ("1", "true"):
            return {"ok": False, "error": "usergroup_disabled"}
        return {"ok": True, "users": list(group["users"])}

    # --- response_url --------------------------------------------------------------------------
    async def _response_url(self, request: web.Request) -> web.Response:
        rid = request.match_info["rid"]
        if rid in self._expired:
            return web.Response(status=404, text="expired_url")
        body = self.record_of(request).json
        if not isinstance(body, dict):
            return web.Response(status=400, text="invalid_payload")
        if not body.get("text") and not body.get("blocks") and not body.get("delete_original"):
            return web.Response(status=400, text="no_text")
        if body.get("blocks") is not None and (not isinstance(body["blocks"], list) or block_errors(body["blocks"])):
            return web.Response(status=400, text="invalid_blocks")
        self.responses.setdefault(rid, []).append(body)
        return web.Response(status=200, text="ok", content_type="text/html")


def _plain(text: Any, limit: int) -> bool:
    return (isinstance(text, dict) and text.get("type") in ("plain_text", "mrkdwn")
            and isinstance(text.get("text"), str) and 0 < len(text["text"]) <= limit)


def block_errors(blocks: list[Any]) -> list[str]:
    """What Slack would refuse in ``blocks`` (the subset of Block Kit rules handoff's messages touch)."""
    errors: list[str] = []
    if len(blocks) > 50:
        errors.append("more than 50 blocks")
    ids: set[str] = set()
    action_ids: set[str] = set()
    for i, block in enumerate(blocks):
        if not isinstance(block, dict) or block.get("type") not in _BLOCK_TYPES:
            errors.append(f"block {i}: unknown type")
            continue
        block_id = block.get("block_id")
        if block_id is not None:
            if not isinstance(block_id, str) or not block_id or len(block_id) > 255 or block_id in ids:
                errors.append(f"block {i}: bad or repeated block_id")
            ids.add(str(block_id))
        kind = block["type"]
        if kind == "section" and not _plain(block.get("text"), 3000):
            errors.append(f"block {i}: section text missing or over 3000 characters")
        elif kind == "context":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 0 < len(elements) <= 10 or not all(
                    _plain(e, 3000) for e in elements):
                errors.append(f"block {i}: context needs 1-10 text elements")
        elif kind == "actions":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 0 < len(elements) <= 25:
                errors.append(f"block {i}: actions needs 1-25 elements")
                continue
            for element in elements:
                if not isinstance(element, dict) or element.get("type") != "button":
                    continue
                action_id = element.get("action_id")
                if (not _plain(element.get("text"), 75) or element["text"].get("type") != "plain_text"
                        or not isinstance(action_id, str) or not 0 < len(action_id) <= 255 or action_id in action_ids
                        or len(str(element.get("value", ""))) > 2000
                        or element.get("style") not in (None, "primary", "danger")):
                    errors.append(f"block {i}: invalid button {action_id!r}")
                action_ids.add(str(action_id))
    return errors


def block_actions_body(action_id: str, value: str, *, user: str = "U0ONCALL", user_name: str = "oncall-olga",
                       channel: str = "D0ONCALL", message_ts: str = "1726133800.000100",
                       response_url: str = "https://hooks.slack.com/actions/T111/111/random-value",
                       trigger_id: str | None = None, actions: Any = None) -> str:
    """The form body Slack POSTs when a button of a bot message is pressed (``payload=<JSON>``)."""
    trigger_id = trigger_id or f"{int(time.time())}.{next(_triggers)}.a1b2c3d4e5f60718"
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": user_name, "name": user_name, "team_id": TEAM_ID},
        "api_app_id": APP_ID, "token": "verification_token",
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel, "is_ephemeral": False},
        "trigger_id": trigger_id, "team": {"id": TEAM_ID, "domain": "fake-workspace"},
        "channel": {"id": channel, "name": "directmessage" if channel.startswith("D") else "oncall"},
        "message": {"type": "message", "user": BOT_USER_ID, "ts": message_ts, "bot_id": BOT_ID, "text": "page"},
        "response_url": response_url,
        "actions": actions if actions is not None else [{
            "action_id": action_id, "block_id": "handoff.page.blk", "type": "button", "value": value,
            "text": {"type": "plain_text", "text": "Button", "emoji": True}, "action_ts": f"{time.time():.6f}",
        }],
    }
    return urlencode({"payload": json.dumps(payload)})


_triggers = itertools.count(1000)
