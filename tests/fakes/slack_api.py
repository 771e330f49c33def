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
``invalid_payload`` for unusable bodies.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
import uuid
from typing import Any

from aiohttp import web

from tests.fakes.base import FakeService, RecordedRequest, Scripted

TEAM_ID = "T111"
BOT_USER_ID = "U0HANDOFF"
BOT_ID = "B0HANDOFF"
APP_ID = "A0HANDOFF"
MAX_TEXT = 40_000
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
        if blocks is not None and not isinstance(blocks, list):
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
        self.responses.setdefault(rid, []).append(body)
        return web.Response(status=200, text="ok", content_type="text/html")
