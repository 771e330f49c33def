"""Group directories: who is in the chat user groups that ``app.yaml`` names as rule admins (and, on
Slack, a person's name for the MSP: :meth:`SlackGroupDirectory.display_name`).

Slack: ``usergroups.users.list`` with the bot token (scope ``usergroups:read``); a group named by
handle (``it-admins`` or ``@it-admins``) is first resolved with ``usergroups.list``. Answers are
cached for ``ttl`` seconds; failures are not cached and raise :class:`GroupLookupError`, so the
caller denies (fail closed) and logs why.

Teams: Microsoft Graph ``GET /v1.0/groups/{id}/transitiveMembers/microsoft.graph.user?$select=id``
(nested groups flattened, ``@odata.nextLink`` paging followed) with an app-only token of the Teams
bot's app registration (client-credentials grant, scope ``https://graph.microsoft.com/.default``,
application permission ``GroupMember.Read.All`` with admin consent). Groups are named by Entra ID
object id; members are AAD object ids, which is what Teams sends as ``from.aadObjectId`` and the
Teams edge uses as the actor's user id. Same caching and fail-closed rules as Slack.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

import aiohttp
from pydantic import SecretStr

from bot.connectors.http import NETWORK_ERRORS, fetch, user_agent
from bot.connectors.teams import BotTokenProvider, TokenError
from handlers.ports import GroupDirectory, GroupLookupError

log = logging.getLogger(__name__)

_SLACK_GROUP_ID = re.compile(r"^S[A-Z0-9]{2,}$")
#: Seconds a person's Slack name is reused, and before a failed lookup is tried again.
NAME_TTL = 3600.0
NAME_RETRY = 300.0
_OBJECT_ID = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
#: Scope of an app-only Microsoft Graph token (the app's consented application permissions).
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
GRAPH_URL = "https://graph.microsoft.com"
#: What Graph's error codes mean for whoever reads the audit log.
_GRAPH_HINTS = {
    401: "Graph refused the app token",
    403: "the app lacks the Graph application permission GroupMember.Read.All (with admin consent)",
    404: "no such group in the tenant",
    429: "Graph is throttling, try again shortly",
}


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
        self._names: dict[str, tuple[float, str]] = {}

    async def display_name(self, user_id: str) -> str | None:
        """The person's name (``users.info``: profile real name, else display name; scope ``users:read``),
        cached for an hour; None when Slack cannot say (logged): a name is a courtesy, never a failure."""
        now = self._clock()
        hit = self._names.get(user_id)
        if hit is not None and now - hit[0] < NAME_TTL:
            return hit[1]
        try:
            user = (await self._call("users.info", {"user": user_id})).get("user")
        except GroupLookupError as exc:  # not found, rate limited, Slack down: no name for a while
            log.info("requester name of %s unknown: %s", user_id, exc)
            self._names[user_id] = (now - NAME_TTL + NAME_RETRY, "")
            return None
        profile = user.get("profile") if isinstance(user, Mapping) else None
        names = [profile.get(k) for k in ("real_name", "display_name")] if isinstance(profile, Mapping) else []
        names += [user.get(k) for k in ("real_name", "name")] if isinstance(user, Mapping) else []
        name = next((" ".join(n.split())[:255] for n in names if isinstance(n, str) and n.strip()), "")
        self._names[user_id] = (now, name)
        return name or None

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
            answer = await fetch(self._session, "POST", self._base + method, data=form, headers=headers,
                                 timeout=self._timeout, allow_redirects=True, limit=None)
        except NETWORK_ERRORS as exc:
            raise GroupLookupError(f"{method}: Slack unreachable ({type(exc).__name__})") from None
        status, data = answer.status, answer.json()
        if not isinstance(data, dict):
            raise GroupLookupError(f"{method}: HTTP {status} without a Slack answer")
        if data.get("ok") is not True:
            raise GroupLookupError(f"{method}: {data.get('error') or f'HTTP {status}'}")
        return data


class GraphGroupDirectory:
    """Teams (Entra ID) group members through Microsoft Graph, cached.

    Args:
        session: Shared aiohttp client session.
        tokens: App-only token provider for scope :data:`GRAPH_SCOPE` (the Teams bot's app id and
            secret, the tenant's token endpoint).
        base_url: Graph root (``https://graph.microsoft.com`` or a fake's); ``@odata.nextLink`` is
            only followed under it, so the token goes nowhere else.
        ttl: Seconds a member list is reused.
        timeout: Seconds per request.
        max_pages: Give up (deny) after this many pages of 999.
        clock: Monotonic clock (injectable for tests).
    """

    def __init__(self, *, session: aiohttp.ClientSession, tokens: BotTokenProvider, base_url: str = GRAPH_URL,
                 ttl: float = 60.0, timeout: float = 10.0, max_pages: int = 100,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._session = session
        self._tokens = tokens
        self._base = base_url.rstrip("/") + "/"
        self._ttl = ttl
        self._timeout = timeout
        self._max_pages = max_pages
        self._clock = clock
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}

    def __repr__(self) -> str:
        return f"GraphGroupDirectory(base_url={self._base!r})"

    async def members(self, *, platform: str, group: str) -> frozenset[str]:
        if platform != "teams":
            raise GroupLookupError(f"the Graph directory cannot read {platform} groups")
        key = group.strip().lower()
        if not _OBJECT_ID.match(key):
            raise GroupLookupError(f"Teams groups are named by Entra ID object id, not {group!r}")
        now = self._clock()
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]
        url: str | None = (f"{self._base}v1.0/groups/{quote(key, safe='')}/transitiveMembers/microsoft.graph.user"
                           "?$select=id&$top=999")
        found: set[str] = set()
        pages = 0
        while url is not None:
            pages += 1
            if pages > self._max_pages:
                raise GroupLookupError(f"Graph: group has more than {self._max_pages} pages of members")
            data = await self._get(url)
            values = data.get("value")
            if not isinstance(values, list):
                raise GroupLookupError("Graph answered without a member list")
            found.update(str(v["id"]).lower() for v in values
                         if isinstance(v, Mapping) and isinstance(v.get("id"), str))
            link = data.get("@odata.nextLink")
            if link is not None and (not isinstance(link, str) or not link.startswith(self._base)):
                raise GroupLookupError("Graph: @odata.nextLink points outside the Graph base URL")
            url = link
        members = frozenset(found)
        self._cache[key] = (now, members)
        return members

    async def _get(self, url: str) -> dict[str, Any]:
        try:
            token = await self._tokens.token()
        except TokenError as exc:
            raise GroupLookupError(f"Graph token: {exc.detail}") from None
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json", "User-Agent": user_agent()}
        try:
            answer = await fetch(self._session, "GET", url, headers=headers, timeout=self._timeout, limit=None)
        except NETWORK_ERRORS as exc:
            raise GroupLookupError(f"Graph unreachable ({type(exc).__name__})") from None
        status, data = answer.status, answer.json()
        if status == 200 and isinstance(data, dict):
            return data
        if status == 401:
            self._tokens.invalidate(token)
        error = data.get("error") if isinstance(data, dict) else None
        code = str(error.get("code") or "") if isinstance(error, Mapping) else ""
        code = code if code.replace("_", "").replace(".", "").isalnum() else ""
        hint = _GRAPH_HINTS.get(status, "Graph is unavailable" if status >= 500 else "")
        raise GroupLookupError(" ".join(p for p in (f"Graph HTTP {status}", code) if p) + (f": {hint}" if hint else ""))


class PlatformDirectory:
    """Dispatches to one directory per platform; platforms without one are refused with a reason."""

    def __init__(self, directories: Mapping[str, GroupDirectory]) -> None:
        self._directories = dict(directories)

    async def members(self, *, platform: str, group: str) -> frozenset[str]:
        directory = self._directories.get(platform)
        if directory is None:
            if platform == "teams":
                raise GroupLookupError("Teams group membership needs Microsoft Graph: set TEAMS_APP_ID, "
                                       "TEAMS_APP_PASSWORD and TEAMS_TENANT_ID (application permission "
                                       "GroupMember.Read.All), or list Teams admins by AAD object id in admins.teams")
            raise GroupLookupError(f"no group directory for {platform}")
        return await directory.members(platform=platform, group=group)
