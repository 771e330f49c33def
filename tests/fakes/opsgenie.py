"""A fake Opsgenie Alert API v2 on loopback.

Routes (the subset of the published spec handoff uses, answering as Opsgenie does):

* ``POST /v2/alerts`` (``CreateAlertPayload``), ``POST /v2/alerts/{identifier}/acknowledge`` and
  ``POST /v2/alerts/{identifier}/close`` (``identifierType`` = ``id`` (default), ``alias`` or
  ``tiny``): **202** ``{"result": "Request will be processed", "took": ..., "requestId": ...}``.
  Processing is asynchronous as in Opsgenie: an acknowledge or close of an alert that does not
  exist is still 202, and its request status says ``"Alert does not exist"``.
* ``GET /v2/alerts/requests/{requestId}``: the request status (``isSuccess``, ``status``,
  ``alertId``, ``alias``); ``GET /v2/alerts/{identifier}``: the alert.

Every call needs ``Authorization: GenieKey <key>``: no or another scheme gives **401** ``"Key
format is not valid!"``, an unknown key **401** ``"Could not authenticate"``. A body that is not
JSON is **400**; a create without ``message``, a bad ``priority``, non-string ``details`` or a field
over the documented limits (message 130, alias 512, description 15,000, source and user 100, note
25,000, details 8,000 characters, tags 20 x 50) is **422** ``{"message": "Request body is not
processable. Please check the errors.", "errors": {field: why}}``. (Opsgenie documents these as the
fields' limits; this fake refuses what exceeds them so a connector that forgets to cut is caught.)

Alerts are tracked per alias: a create opens one (or, while one with that alias is open, only
counts up: deduplication), acknowledge and close move it.
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.base import FakeService

PRIORITIES = ("P1", "P2", "P3", "P4", "P5")
LIMITS = {"message": 130, "alias": 512, "description": 15_000, "source": 100, "user": 100, "note": 25_000,
          "entity": 512}
DETAILS_MAX = 8_000
UNPROCESSABLE = "Request body is not processable. Please check the errors."


@dataclass
class Alert:
    """What the fake knows about one alert."""

    id: str
    tiny_id: str
    alias: str
    message: str
    priority: str
    description: str = ""
    details: dict[str, str] = field(default_factory=dict)
    source: str = ""
    status: str = "open"
    acknowledged: bool = False
    count: int = 1
    history: list[str] = field(default_factory=lambda: ["open"])
    notes: list[str] = field(default_factory=list)


@dataclass
class RequestStatus:
    """What ``GET /v2/alerts/requests/{id}`` tells about one accepted request."""

    action: str
    is_success: bool
    status: str
    alert_id: str = ""
    alias: str = ""


def _answer(body: dict[str, Any], status: int) -> web.Response:
    request_id = str(uuid.uuid4())
    return web.json_response({**body, "took": 0.004, "requestId": request_id}, status=status,
                             headers={"X-Request-ID": request_id, "X-Response-Time": "0.004"})


def validate_create(body: Any) -> dict[str, str]:
    """Problems Opsgenie reports for a create body (field -> why), empty when valid."""
    if not isinstance(body, dict):
        return {"body": "must be a JSON object"}
    errors: dict[str, str] = {}
    message = body.get("message")
    if not isinstance(message, str) or not message.strip():
        errors["message"] = "Message can not be empty."
    errors.update(validate_action(body, names=("message", "alias", "description", "entity")))
    priority = body.get("priority")
    if priority is not None and priority not in PRIORITIES:
        errors["priority"] = f"Priority should be one of {list(PRIORITIES)}"
    details = body.get("details")
    if details is not None:
        if not isinstance(details, dict) or not all(isinstance(v, str) for v in details.values()):
            errors["details"] = "Details should be a map of strings"
        elif sum(len(str(k)) + len(v) for k, v in details.items()) > DETAILS_MAX:
            errors["details"] = f"Details can not be longer than {DETAILS_MAX} characters"
    tags = body.get("tags")
    if tags is not None and (not isinstance(tags, list) or len(tags) > 20
                             or any(not isinstance(t, str) or len(t) > 50 for t in tags)):
        errors["tags"] = "At most 20 tags of at most 50 characters"
    for name in ("responders", "visibleTo"):
        items = body.get(name)
        if items is not None and (not isinstance(items, list) or any(
                not isinstance(i, dict) or i.get("type") not in
                ("all", "none", "user", "escalation", "schedule", "team", "group") for i in items)):
            errors[name] = "Recipients need a valid type"
    return errors


def validate_action(body: Any, *, names: tuple[str, ...] = ()) -> dict[str, str]:
    """Type and size problems of ``user``, ``note``, ``source`` (and ``names``)."""
    if body is None:
        return {}
    if not isinstance(body, dict):
        return {"body": "must be a JSON object"}
    errors: dict[str, str] = {}
    for name in ("user", "note", "source", *names):
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            errors[name] = f"{name} should be a string"
        elif len(value) > LIMITS[name]:
            errors[name] = f"{name} can not be longer than {LIMITS[name]} characters"
    return errors


class FakeOpsgenie(FakeService):
    """Fake Opsgenie Alert API.

    Args:
        api_keys: The integration keys that exist.
    """

    def __init__(self, *, api_keys: tuple[str, ...] = ("eb243592-faa2-4ba2-a551-1afdf565c889",)) -> None:
        super().__init__()
        self.api_keys = set(api_keys)
        self.alerts: dict[str, Alert] = {}
        self.statuses: dict[str, RequestStatus] = {}
        self.accepted: list[tuple[str, dict[str, Any]]] = []
        self._tiny = itertools.count(1)

    def setup(self, app: web.Application) -> None:
        app.router.add_post("/v2/alerts", self._create)
        app.router.add_get("/v2/alerts/requests/{request_id}", self._request_status)
        app.router.add_post("/v2/alerts/{identifier}/{action:acknowledge|close}", self._act)
        app.router.add_get("/v2/alerts/{identifier}", self._get)

    def reset(self) -> None:
        super().reset()
        self.alerts.clear()
        self.statuses.clear()
        self.accepted.clear()

    def failure_body(self, status: int) -> Any:
        message = {429: "You are making too many requests! To avoid errors, we recommend you limit requests.",
                   401: "Could not authenticate", 403: "You do not have the right to do this."}.get(
            status, "Internal Server Error" if status >= 500 else "Bad request")
        return {"message": message, "took": 0.001, "requestId": str(uuid.uuid4())}

    @property
    def api_url(self) -> str:
        """Stand-in for ``https://api.opsgenie.com``."""
        return self.url

    def alert(self, alias: str) -> Alert | None:
        """The alert with ``alias`` (open or closed), if any."""
        return self.alerts.get(alias)

    def actions_for(self, alias: str) -> list[str]:
        """Accepted actions that named ``alias``, in order (``create``, ``acknowledge``, ``close``)."""
        return [action for action, body in self.accepted if body.get("alias") == alias]

    # --- handlers ------------------------------------------------------------------------------
    def _auth(self, request: web.Request) -> web.Response | None:
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        if scheme != "GenieKey" or not key.strip():
            return _answer({"message": "Key format is not valid!"}, 401)
        if key.strip() not in self.api_keys:
            return _answer({"message": "Could not authenticate"}, 401)
        return None

    def _body(self, request: web.Request) -> tuple[bool, Any]:
        """``(readable, body)``: an empty body reads as None, one that is not JSON is unreadable."""
        record = self.record_of(request)
        if not record.body:
            return True, None
        return record.json is not None, record.json

    def _accept(self, action: str, status: RequestStatus, body: dict[str, Any]) -> web.Response:
        response = _answer({"result": "Request will be processed"}, 202)
        request_id = response.headers["X-Request-ID"]
        self.statuses[request_id] = status
        self.accepted.append((action, body))
        return response

    async def _create(self, request: web.Request) -> web.Response:
        if (denied := self._auth(request)) is not None:
            return denied
        readable, body = self._body(request)
        if not readable or body is None:
            return _answer({"message": "Invalid JSON body"}, 400)
        if errors := validate_create(body):
            return _answer({"message": UNPROCESSABLE, "errors": errors}, 422)
        alias = body.get("alias") or body["message"]
        current = self.alerts.get(alias)
        if current is not None and current.status == "open":
            current.count += 1
            status = RequestStatus("Create", True, "Alert count incremented", current.id, alias)
            return self._accept("create", status, {**body, "alias": alias})
        alert = Alert(id=str(uuid.uuid4()), tiny_id=str(next(self._tiny)), alias=alias, message=body["message"],
                      priority=body.get("priority") or "P3", description=body.get("description") or "",
                      details=dict(body.get("details") or {}), source=body.get("source") or request.remote or "")
        self.alerts[alias] = alert
        return self._accept("create", RequestStatus("Create", True, "Created alert", alert.id, alias),
                            {**body, "alias": alias})

    def _find(self, identifier: str, kind: str) -> Alert | None:
        for alert in self.alerts.values():
            if {"id": alert.id, "alias": alert.alias, "tiny": alert.tiny_id}[kind] == identifier:
                return alert
        return None

    async def _act(self, request: web.Request) -> web.Response:
        if (denied := self._auth(request)) is not None:
            return denied
        kind = request.query.get("identifierType", "id")
        if kind not in ("id", "alias", "tiny"):
            return _answer({"message": UNPROCESSABLE,
                            "errors": {"identifierType": "should be one of [id, alias, tiny]"}}, 422)
        readable, body = self._body(request)
        if not readable:
            return _answer({"message": "Invalid JSON body"}, 400)
        if errors := validate_action(body):
            return _answer({"message": UNPROCESSABLE, "errors": errors}, 422)
        action = request.match_info["action"]
        identifier = request.match_info["identifier"]
        alert = self._find(identifier, kind)
        label = action.capitalize()
        if alert is None:
            return self._accept(action, RequestStatus(label, False, "Alert does not exist"), {"alias": None})
        if action == "acknowledge" and alert.status == "open" and not alert.acknowledged:
            alert.acknowledged = True
            alert.history.append("acknowledged")
        elif action == "close" and alert.status == "open":
            alert.status = "closed"
            alert.history.append("closed")
        if isinstance(body, dict) and body.get("note"):
            alert.notes.append(body["note"])
        done = "Acknowledged" if action == "acknowledge" else "Closed"
        return self._accept(action, RequestStatus(label, True, done, alert.id, alert.alias), {"alias": alert.alias})

    async def _request_status(self, request: web.Request) -> web.Response:
        if (denied := self._auth(request)) is not None:
            return denied
        status = self.statuses.get(request.match_info["request_id"])
        if status is None:
            return _answer({"message": "Request not found. It might not be processed, yet."}, 404)
        return _answer({"data": {"success": status.is_success, "action": status.action, "isSuccess": status.is_success,
                                 "status": status.status, "alertId": status.alert_id, "alias": status.alias,
                                 "processedAt": "2024-05-02T09:14:07.000Z", "integrationId": "fake"}}, 200)

    async def _get(self, request: web.Request) -> web.Response:
        if (denied := self._auth(request)) is not None:
            return denied
        alert = self._find(request.match_info["identifier"], request.query.get("identifierType", "id"))
        if alert is None:
            return _answer({"message": "Alert does not exist"}, 404)
        return _answer({"data": {"id": alert.id, "tinyId": alert.tiny_id, "alias": alert.alias,
                                 "message": alert.message, "status": alert.status, "acknowledged": alert.acknowledged,
                                 "count": alert.count, "priority": alert.priority, "source": alert.source,
                                 "description": alert.description, "details": alert.details}}, 200)
