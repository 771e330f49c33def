"""Group directories: who is in the chat user groups that ``app.yaml`` names as rule admins.

Slack: ``usergroups.users.list`` with the bot token (scope ``usergroups:read``); a group named by
handle (``it-admins`` or ``@it-admins``) is first resolved with ``usergroups.list``. Answers are
cached for ``ttl`` seconds; failures are not cached and raise :class:`GroupLookupError`, so the
caller denies (fail closed) and logs why.

Teams: group membership needs Microsoft Graph (``/groups/{id}/transitiveMembers``, application
permission ``GroupMember.Read.All``), which this deployment does not reach: Teams groups are
refused with a clear reason (a TODO, see docs/rules.md). Teams admins are listed by AAD object id.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
from pydantic import SecretStr

from bot.connectors.http import user_agent
from handlers.ports import GroupDirectory, GroupLookupError

_SLACK_GROUP_ID = re.compile(r"^S[A-Z0-9]{2,}$")


class SlackGroupDirectory:
    """Slack user group members through the Web API, cached.

    Args:
        session: Shared aiohttp client session.
        token: Bot token (``xoxb-…``).
        base_url: Web API base (``https://slack.com/api/`` or a fake's).
        ttl: Seconds a member list is reused.
        timeout: Seconds per request.
        clock: Monotonic clock (injectable for tests).
    """

    def __init__(self, *, session: aiohttp.ClientSession, token: SecretStr | str, base_url: str, ttl: float = 60.0,
                 timeout: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._session = session
        self._token = token if isinstance(token, SecretStr) else SecretStr(token)
        self._base = base_url.rstrip("/") + "/"
        self._ttl = ttl
        self._timeout = timeout
        self._clock = clock
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}
        self._handles: tuple[float, dict[str, str]] | None = None

    async def members(self, *, platform: str, group: str) -> frozenset[str]:
        if platform != "slack":
            raise GroupLookupError(f"the Slack directory cannot read {platform} groups")
        now = self._clock()
        hit = self._cache.get(group)
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]
        group_id = group if _SLACK_GROUP_ID.match(group) else await self._resolve(group.lstrip("@"))
        data = await self._call("usergroups.users.list", {"usergroup": group_id})
        users = data.get("users")
        if not isinstance(users, list):
            raise GroupLookupError("usergroups.users.list answered without a user list")
        members = frozenset(str(u) for u in users)
        self._cache[group] = (now, members)
        return members

    async def _resolve(self, handle: str) -> str:
        now = self._clock()
        if self._handles is None or now - self._handles[0] >= self._ttl:
            data = await self._call("usergroups.list", {"include_disabled": "false"})
            groups = data.get("usergroups")
            if not isinstance(groups, list):
                raise GroupLookupError("usergroups.list answered without a group list")
            names: dict[str, str] = {}
            for g in groups:
                if isinstance(g, Mapping) and isinstance(g.get("id"), str):
                    for key in ("handle", "name"):
                        if isinstance(g.get(key), str):
                            names.setdefault(str(g[key]).lower(), g["id"])
            self._handles = (now, names)
        found = self._handles[1].get(handle.lower())
        if found is None:
            raise GroupLookupError(f"no Slack user group with handle or name {handle!r}")
        return found

    async def _call(self, method: str, form: dict[str, str]) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self._token.get_secret_value()}", "User-Agent": user_agent()}
        try:
            async with self._session.post(self._base + method, data=form, headers=headers,
                                          timeout=aiohttp.ClientTimeout(total=self._timeout)) as resp:
                status = resp.status
                raw = await resp.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise GroupLookupError(f"{method}: Slack unreachable ({type(exc).__name__})") from None
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise GroupLookupError(f"{method}: HTTP {status} without a Slack answer")
        if data.get("ok") is not True:
            raise GroupLookupError(f"{method}: {data.get('error') or f'HTTP {status}'}")
        return data


class PlatformDirectory:
    """Dispatches to one directory per platform; platforms without one are refused with a reason."""

    def __init__(self, directories: Mapping[str, GroupDirectory]) -> None:
        self._directories = dict(directories)

    async def members(self, *, platform: str, group: str) -> frozenset[str]:
        directory = self._directories.get(platform)
        if directory is None:
            if platform == "teams":
                raise GroupLookupError("Teams group membership needs Microsoft Graph, which is not supported yet; "
                                       "list Teams admins by AAD object id in admins.teams")
            raise GroupLookupError(f"no group directory for {platform}")
        return await directory.members(platform=platform, group=group)
