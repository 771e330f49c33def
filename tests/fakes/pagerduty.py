"""A fake PagerDuty Events API v2 on loopback.

``POST /v2/enqueue`` validates the event as the published OpenAPI file and PagerDuty's observed
answers say, and answers like PagerDuty:

* ``202 {"status": "success", "message": "Event processed", "dedup_key": "..."}`` (a trigger without
  ``dedup_key`` gets a generated one);
* ``400 {"status": "invalid event", "message": "Event object is invalid", "errors": [...]}`` listing
  every problem (error strings as PagerDuty words them where known, e.g. ``"Length of 'routing_key'
  is incorrect (should be 32 characters)"`` and ``"'payload.source' is missing or blank"``);
* ``400 {"status": "Unrecognized object", "message": "Event object format is unrecognized",
  "errors": ["JSON parse error"]}`` for a body that is not a JSON object (the spec's example).

Incidents are tracked per ``dedup_key``: a trigger opens one (or is deduplicated into the open one),
acknowledge and resolve move it, and are silently dropped (still 202) when the key is unknown or
comes with another ``routing_key`` than the trigger, as PagerDuty does (the Events API is
asynchronous: a 202 says the event was accepted, not that it changed an alert). ``Incident.history``
lists the states an alert went through (``["triggered", "acknowledged", "resolved"]``) and
:meth:`FakePagerDuty.actions_for` the accepted actions naming a key, so a scenario can assert
"exactly one trigger, then acknowledged, then resolved". ``payload.summary`` longer than 1,024
characters is accepted and stored truncated, as PagerDuty does.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.base import FakeService

ACTIONS = ("trigger", "acknowledge", "resolve")
SEVERITIES = ("critical", "error", "warning", "info")
INVALID = {"status": "invalid event", "message": "Event object is invalid"}
UNRECOGNIZED = {
    "status": "Unrecognized object",
    "message": "Event object format is unrecognized",
    "errors": ["JSON parse error"],
}


@dataclass
class Incident:
    """What the fake knows about one alert (keyed by dedup key)."""

    dedup_key: str
    routing_key: str
    status: str
    summary: str
    severity: str
    source: str
    triggers: int = 1
    events: list[dict[str, Any]] = field(default_factory=list)
    #: States the alert went through, oldest first (a repeated acknowledge is not a new state).
    history: list[str] = field(default_factory=lambda: ["triggered"])


def _blank(value: Any) -> bool:
    return not isinstance(value, str) or not value.strip()


def validate_event(event: Any) -> list[str]:
    """Problems PagerDuty would report for an Events API v2 body (empty when valid)."""
    if not isinstance(event, dict):
        return ["JSON parse error"]
    errors: list[str] = []
    key = event.get("routing_key")
    if not isinstance(key, str) or not key.strip():
        errors.append("'routing_key' is missing or blank")
    else:
        if len(key) != 32:
            errors.append("Length of 'routing_key' is incorrect (should be 32 characters)")
        if not key.isalnum() or not key.isascii():
            errors.append("'routing_key' cannot contain non-alphanumeric characters.")
    action = event.get("event_action")
    if _blank(action):
        errors.append("'event_action' is missing or blank")
    elif action not in ACTIONS:
        errors.append("'event_action' is invalid (must be one of: trigger, acknowledge, resolve)")
    dedup = event.get("dedup_key")
    if dedup is not None and not isinstance(dedup, str):
        errors.append("'dedup_key' must be a string")
    elif isinstance(dedup, str) and len(dedup) > 255:
        errors.append("'dedup_key' is too long (maximum is 255 characters)")
    if action in ("acknowledge", "resolve") and _blank(dedup):
        errors.append("'dedup_key' is missing or blank")
    if action == "trigger":
        payload = event.get("payload")
        if not isinstance(payload, dict):
            errors.append("'payload' is missing or blank")
        else:
            for name in ("summary", "source", "severity"):
                if _blank(payload.get(name)):
                    errors.append(f"'payload.{name}' is missing or blank")
            severity = payload.get("severity")
            if not _blank(severity) and severity not in SEVERITIES:
                errors.append("'payload.severity' is invalid (must be one of: critical, error, warning, info)")
            details = payload.get("custom_details")
            if details is not None and not isinstance(details, dict):
                errors.append("'payload.custom_details' must be an object")
    for name, required in (("links", "href"), ("images", "src")):
        items = event.get(name)
        if items is not None and (
            not isinstance(items, list) or any(not isinstance(i, dict) or _blank(i.get(required)) for i in items)
        ):
            errors.append(f"'{name}' entries need a '{required}'")
    return errors


class FakePagerDuty(FakeService):
    """Fake Events API v2.

    Args:
        routing_keys: If given, only these integration keys exist; others get a 400
            (``"Invalid routing key"``). By default any well-formed key is accepted.
    """

    def __init__(self, *, routing_keys: Iterable[str] | None = None) -> None:
        super().__init__()
        self.routing_keys = set(routing_keys) if routing_keys is not None else None
        self.incidents: dict[str, Incident] = {}
        self.accepted: list[dict[str, Any]] = []
        self.incidents_opened = 0

    def setup(self, app: web.Application) -> None:
        app.router.add_post("/v2/enqueue", self._enqueue)
        app.router.add_post("/v2/change/enqueue", self._change)

    def reset(self) -> None:
        super().reset()
        self.incidents.clear()
        self.accepted.clear()
        self.incidents_opened = 0

    def failure_body(self, status: int) -> Any:
        if status == 429:
            return {"status": "throttle event", "message": "Request Limit Exceeded", "errors": []}
        if status >= 500:
            return {"status": "Internal Server Error", "message": "An error occurred", "errors": []}
        return {**INVALID, "errors": []}

    @property
    def enqueue_url(self) -> str:
        """URL of ``/v2/enqueue``."""
        return self.url_for("/v2/enqueue")

    @property
    def trigger_count(self) -> int:
        """Accepted trigger events (deduplicated ones included)."""
        return sum(1 for e in self.accepted if e["event_action"] == "trigger")

    def incident(self, dedup_key: str) -> Incident | None:
        """The incident tracked for ``dedup_key``, if any."""
        return self.incidents.get(dedup_key)

    def actions_for(self, dedup_key: str) -> list[str]:
        """Accepted ``event_action``s naming ``dedup_key``, in order (dropped ones included)."""
        return [e["event_action"] for e in self.accepted if e["dedup_key"] == dedup_key]

    async def _enqueue(self, request: web.Request) -> web.Response:
        event = self.record_of(request).json
        if not isinstance(event, dict):
            return web.json_response(UNRECOGNIZED, status=400)
        errors = validate_event(event)
        if not errors and self.routing_keys is not None and event["routing_key"] not in self.routing_keys:
            errors = ["Invalid routing key"]
        if errors:
            return web.json_response({**INVALID, "errors": errors}, status=400)
        if event["event_action"] == "trigger" and _blank(event.get("dedup_key")):
            event = {**event, "dedup_key": secrets.token_hex(16)}
        self.accepted.append(event)
        self._apply(event)
        return web.json_response(
            {"status": "success", "message": "Event processed", "dedup_key": event["dedup_key"]}, status=202
        )

    def _apply(self, event: dict[str, Any]) -> None:
        key, action = event["dedup_key"], event["event_action"]
        current = self.incidents.get(key)
        if action == "trigger":
            if current is not None and current.status != "resolved":
                current.triggers += 1
                current.events.append(event)
                return
            payload = event["payload"]
            self.incidents[key] = Incident(
                dedup_key=key, routing_key=event["routing_key"], status="triggered",
                summary=payload["summary"][:1024], severity=payload["severity"],
                source=payload["source"], events=[event],
            )
            self.incidents_opened += 1
            return
        if current is None or current.routing_key != event["routing_key"] or current.status == "resolved":
            return  # PagerDuty drops these silently
        status = "acknowledged" if action == "acknowledge" else "resolved"
        if status != current.status:
            current.history.append(status)
        current.status = status
        current.events.append(event)

    async def _change(self, request: web.Request) -> web.Response:
        event = self.record_of(request).json
        if not isinstance(event, dict):
            return web.json_response(UNRECOGNIZED, status=400)
        payload = event.get("payload")
        errors = [e for e in validate_event({**event, "event_action": "acknowledge", "dedup_key": "x"})
                  if "routing_key" in e]
        if not isinstance(payload, dict) or _blank(payload.get("summary")):
            errors.append("'payload.summary' is missing or blank")
        if errors:
            return web.json_response({**INVALID, "errors": errors}, status=400)
        return web.json_response({"status": "success", "message": "Change event processed"}, status=202)
