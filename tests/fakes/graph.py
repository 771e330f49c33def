"""A fake Microsoft Graph (group transitive members) and its client-credentials token endpoint, on loopback.

Graph route, answering the way Graph v1.0 does (``group-list-transitivemembers``):

* ``GET /v1.0/groups/{id}/transitiveMembers/microsoft.graph.user?$select=id&$top=N``: ``200
  {"@odata.context": ..., "value": [{"@odata.type": "#microsoft.graph.user", "id": ...}],
  "@odata.nextLink": ...}``. Nested groups are flattened and the OData cast keeps only users. At most
  ``$top`` (default 100, max 999) objects per page, and never more than :attr:`FakeGraph.page_size`;
  the next page is an absolute ``@odata.nextLink`` with an opaque ``$skiptoken``.
* Errors use Graph's body ``{"error": {"code", "message", "innerError"}}``: no or unknown bearer
  token ``401 InvalidAuthenticationToken``; the app without ``GroupMember.Read.All``
  (:attr:`FakeGraph.granted` false) ``403 Authorization_RequestDenied``; a group id that is not a GUID
  ``400 Request_BadRequest``; an unknown group ``404 Request_ResourceNotFound``; ``$top`` over 999
  ``400 Request_BadRequest``.

Token route (Microsoft identity platform): ``POST /{tenant}/oauth2/v2.0/token`` with
``grant_type=client_credentials``, ``client_id``, ``client_secret`` and
``scope=https://graph.microsoft.com/.default``; errors as in :mod:`tests.fakes.bot_connector`.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from aiohttp import web

from tests.fakes.base import FakeService, client_credentials_answer

SCOPE = "https://graph.microsoft.com/.default"
_GUID = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


def graph_error(code: str, message: str) -> dict[str, Any]:
    """Graph's error body."""
    return {"error": {"code": code, "message": message,
                      "innerError": {"date": "2026-11-28T12:00:00", "request-id": secrets.token_hex(8),
                                     "client-request-id": secrets.token_hex(8)}}}


class FakeGraph(FakeService):
    """Fake Graph groups plus token endpoint.

    Args:
        app_id: App id (client id) the token endpoint accepts.
        app_password: Its client secret.
        page_size: Largest page the fake serves, whatever ``$top`` asks (to exercise paging).
        expires_in: Lifetime of issued tokens (seconds).
    """

    def __init__(self, *, app_id: str, app_password: str, page_size: int = 999, expires_in: int = 3599) -> None:
        super().__init__()
        self.app_id = app_id
        self.app_password = app_password
        self.page_size = page_size
        self.expires_in = expires_in
        self.granted = True
        self.issued: list[str] = []
        #: group id -> member ids; a member that is itself a key is a nested group.
        self.groups: dict[str, list[str]] = {}

    def setup(self, app: web.Application) -> None:
        app.router.add_get("/v1.0/groups/{group}/transitiveMembers/microsoft.graph.user", self._users)
        app.router.add_post("/{tenant}/oauth2/v2.0/token", self._token)

    def failure_body(self, status: int) -> Any:
        codes = {401: "InvalidAuthenticationToken", 403: "Authorization_RequestDenied", 404: "Request_ResourceNotFound",
                 429: "TooManyRequests"}
        code = codes.get(status, "UnknownError" if status >= 500 else "Request_BadRequest")
        return graph_error(code, f"HTTP {status}")

    def add_group(self, group_id: str, members: list[str]) -> None:
        """Define a group (ids as given; nested groups are ids of other groups)."""
        self.groups[group_id.lower()] = [m.lower() for m in members]

    def token_url(self, tenant: str) -> str:
        """Stand-in for ``https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token``."""
        return self.url_for(f"/{tenant}/oauth2/v2.0/token")

    def token_requests(self) -> list[Any]:
        return [r for r in self.requests if r.path.endswith("/oauth2/v2.0/token")]

    def member_requests(self) -> list[Any]:
        return [r for r in self.requests if r.path.endswith("/microsoft.graph.user")]

    # --- handlers ------------------------------------------------------------------------------
    def _users_of(self, group: str, seen: set[str]) -> list[str]:
        users: list[str] = []
        for member in self.groups.get(group, []):
            if member in self.groups:
                if member not in seen:
                    seen.add(member)
                    users.extend(u for u in self._users_of(member, seen) if u not in users)
            elif member not in users:
                users.append(member)
        return users

    async def _users(self, request: web.Request) -> web.Response:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer" or token not in self.issued:
            return web.json_response(graph_error("InvalidAuthenticationToken", "Access token is empty."), status=401)
        if not self.granted:
            return web.json_response(graph_error("Authorization_RequestDenied",
                                                 "Insufficient privileges to complete the operation."), status=403)
        group = request.match_info["group"]
        if not _GUID.match(group):
            return web.json_response(graph_error("Request_BadRequest", f"Invalid object identifier '{group}'."),
                                     status=400)
        group = group.lower()
        if group not in self.groups:
            return web.json_response(graph_error(
                "Request_ResourceNotFound",
                f"Resource '{group}' does not exist or one of its queried reference-property objects are not present."),
                status=404)
        try:
            top = int(request.query.get("$top", "100"))
        except ValueError:
            top = -1
        if not 1 <= top <= 999:
            return web.json_response(graph_error("Request_BadRequest", "Invalid page size specified."), status=400)
        skip = 0
        if "$skiptoken" in request.query:
            skip = int(request.query["$skiptoken"].removeprefix("RFNwdA"), 16)
        users = self._users_of(group, {group})
        size = min(top, self.page_size)
        page = users[skip:skip + size]
        body: dict[str, Any] = {"@odata.context": f"{self.url}/v1.0/$metadata#users(id)",
                                "value": [{"@odata.type": "#microsoft.graph.user", "id": u} for u in page]}
        if skip + size < len(users):
            token_ = f"RFNwdA{skip + size:08x}"  # opaque to the client, as Graph's are
            body["@odata.nextLink"] = (f"{self.url}/v1.0/groups/{group}/transitiveMembers/microsoft.graph.user"
                                       f"?$select=id&$top={top}&$skiptoken={token_}")
        return web.json_response(body)

    async def _token(self, request: web.Request) -> web.Response:
        return client_credentials_answer(
            self.record_of(request).form or {}, app_id=self.app_id, app_password=self.app_password,
            scope=SCOPE, prefix="graph-", issued=self.issued, expires_in=self.expires_in,
        )
