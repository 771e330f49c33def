"""The Slack edge: verify, parse and normalise; slack-bolt dispatches; handlers decide.

``POST /slack/events`` serves the Events API, slash commands and interactivity. Before bolt sees a
request this module checks, in order: size (413), signature and timestamp (401), and shape (400), so
bad input never reaches a listener and never produces a 500. Bolt runs with
``process_before_response=True``: a request is acknowledged only after its ticket and outbox rows are
committed, so nothing Slack was told we accepted can be lost. If that commit fails the answer is 503
and Slack retries; the retry is deduplicated by event id.

On-call page buttons (``block_actions`` with ``action_id`` ``handoff.page.<action>``) go to
:class:`~handlers.ports.PageActions` and are answered through ``response_url`` after the ack (see
:mod:`bot.slack_actions` for why and how). A DM or an @mention posted in a thread (``thread_ts``
differs from its ``ts``) goes first to :class:`~handlers.ports.ThreadComments`: a comment on the
ticket living in that thread; when no ticket lives there it is a new request, as any other message.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from bot.metrics import Metrics
from bot.slack_actions import SlackPageButtons
from handlers.commands import Actor, CommandRouter
from handlers.intake import Inbound, Intake
from handlers.ports import Connector, PageActions, ThreadComments, ThreadMessage
from handlers.replies import slack_blocks

log = logging.getLogger(__name__)

MENTION = re.compile(r"<@[A-Z0-9]+(?:\|[^>]*)?>")

class BadRequest(Exception):
    """A request that is not a well-formed Slack request; answered 400."""


class SlackEdge:
    """Owns the bolt app and the checks in front of it."""

    def __init__(
        self,
        *,
        signing_secret: str,
        bot_token: str,
        api_url: str,
        intake: Intake,
        commands: CommandRouter,
        metrics: Metrics,
        max_age_seconds: int = 300,
        clock: Callable[[], float] | None = None,
        page_actions: PageActions | None = None,
        threads: ThreadComments | None = None,
        responder: Connector | None = None,
    ) -> None:
        """``page_actions``/``threads``: the on-call and thread-comment use cases (None: page buttons
        answer "not enabled", thread messages are new requests). ``responder``: the ``slack.post``
        connector that answers button presses through their ``response_url``."""
        self.intake = intake
        self.commands = commands
        self.metrics = metrics
        self.page_actions = page_actions
        self.threads = threads
        self.buttons = SlackPageButtons(responder=responder)
        self._max_age = max_age_seconds
        self._verifier = SignatureVerifier(signing_secret)
        if clock is not None:
            self._verifier.clock.now = clock  # type: ignore[method-assign]
        self.client = AsyncWebClient(token=bot_token, base_url=api_url)
        self.app = AsyncApp(
            name="handoff",
            signing_secret=signing_secret,
            client=self.client,
            process_before_response=True,
            request_verification_enabled=False,  # done in handle(), before parsing
            logger=logging.getLogger("handoff.slack_bolt"),
        )
        self._register()

    # -- HTTP edge ------------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.Response:
        """aiohttp handler for ``POST /slack/events``."""
        try:
            body = (await request.read()).decode("utf-8")
        except web.HTTPRequestEntityTooLarge:
            return self._reject(request, 413, "body too large")
        except UnicodeDecodeError:
            return self._reject(request, 400, "body is not UTF-8")
        timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
        signature = request.headers.get("X-Slack-Signature", "")
        if not timestamp or not signature:
            return self._reject(request, 401, "missing Slack signature headers")
        if not self._fresh(timestamp):
            return self._reject(request, 401, "stale or invalid timestamp")
        if not self._verifier.is_valid(body=body, timestamp=timestamp, signature=signature):
            return self._reject(request, 401, "invalid signature")
        try:
            _check_shape(body, request.content_type)
        except BadRequest as exc:
            return self._reject(request, 400, str(exc))
        bolt_request = AsyncBoltRequest(body=body, query=request.query_string, headers=dict(request.headers))
        response = await self.app.async_dispatch(bolt_request)
        return await to_aiohttp_response(response)

    def _fresh(self, timestamp: str) -> bool:
        try:
            ts = int(timestamp)
        except ValueError:
            return False
        return abs(self._verifier.clock.now() - ts) <= self._max_age

    def _reject(self, request: web.Request, status: int, reason: str) -> web.Response:
        self.metrics.rejected.labels(platform="slack", status=str(status)).inc()
        log.warning("slack request refused: %d %s (from %s)", status, reason, request.remote)
        return web.json_response({"ok": False, "error": reason}, status=status)

    # -- listeners ------------------------------------------------------------------------------

    def _register(self) -> None:
        app = self.app
        app.event("message")(self._on_message)
        app.event("app_mention")(self._on_mention)
        app.event(re.compile(".*"))(self._ignore)  # unknown event types: acknowledged, ignored
        app.command("/handoff")(self._on_command)
        app.action(re.compile(r"^handoff\.page\."))(self._on_page_action)  # before the catch-all
        app.action(re.compile(".*"))(self._on_action)
        app.error(self._on_error)

    async def _ignore(self) -> None:
        return None

    async def _on_message(self, event: dict[str, Any], body: dict[str, Any]) -> None:
        # DMs only: channel messages that mention the bot arrive as app_mention too.
        if event.get("channel_type") != "im" or event.get("subtype") or event.get("bot_id"):
            return
        await self._intake_event(event, body)

    async def _on_mention(self, event: dict[str, Any], body: dict[str, Any]) -> None:
        if event.get("bot_id"):
            return
        await self._intake_event(event, body)

    async def _intake_event(self, event: dict[str, Any], body: dict[str, Any]) -> None:
        text = MENTION.sub("", str(event.get("text") or "")).strip()
        if not text or not event.get("user") or not event.get("channel"):
            return
        parent = str(event.get("thread_ts") or "")
        in_thread = bool(parent) and parent != str(event.get("ts") or "")
        if self.threads is not None and in_thread and await self.threads.comment(ThreadMessage(
            platform="slack", event_id=str(body["event_id"]), user_id=str(event["user"]),
            channel_id=str(event["channel"]), thread_ref=parent, text=text,
        )):
            return
        thread = str(event.get("thread_ts") or event.get("ts") or "")
        result = await self.intake.handle(
            Inbound(
                platform="slack", event_id=str(body["event_id"]), text=text, user_id=str(event["user"]),
                channel_id=str(event["channel"]), channel_type=str(event.get("channel_type") or "channel"),
                thread_ref=thread or None, reply_kind="slack.post",
                reply_target={"channel": event["channel"], **({"thread_ts": thread} if thread else {})},
            )
        )
        self.metrics.observe_intake("slack", result)

    async def _on_command(self, ack: Any, command: dict[str, Any]) -> None:
        actor = Actor(platform="slack", user_id=str(command.get("user_id") or ""),
                      user_name=str(command.get("user_name") or ""), channel_id=str(command.get("channel_id") or ""))
        event_id = f"command:{command.get('trigger_id') or command.get('command_ts') or ''}"
        reply = await self.commands.dispatch(actor, str(command.get("text") or ""), event_id=event_id,
                                             reply_target={"response_url": command.get("response_url")})
        if reply.intake is not None:
            self.metrics.observe_intake("slack", reply.intake)
        if reply.intake is not None and reply.intake.reply is not None:
            await ack(response_type="ephemeral", text=reply.text, blocks=slack_blocks(reply.intake.reply))
        else:
            await ack(response_type="ephemeral", text=reply.text, **({"blocks": reply.blocks} if reply.blocks else {}))

    async def _on_page_action(self, ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        await self.buttons.press(self.page_actions, body, action)  # committed before the ack
        await ack()

    async def _on_action(self, ack: Any) -> None:
        await ack()

    async def close(self) -> None:
        """Let pending button answers finish (shutdown)."""
        await self.buttons.close()

    async def _on_error(self, error: Exception, body: dict[str, Any]) -> BoltResponse:
        log.error("slack listener failed (%s); answering 503 so Slack retries", type(error).__name__, exc_info=error)
        self.metrics.rejected.labels(platform="slack", status="503").inc()
        return BoltResponse(status=503, body=json.dumps({"ok": False, "error": "temporarily unavailable"}),
                            headers={"content-type": "application/json", "retry-after": "1"})


def _check_shape(body: str, content_type: str) -> None:
    """Refuse what is not shaped like a Slack request, before bolt parses it."""
    if content_type == "application/json":
        try:
            data = json.loads(body)
        except ValueError:
            raise BadRequest("body is not valid JSON") from None
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            raise BadRequest("JSON body must be an object with a string `type`")
        if data["type"] == "event_callback":
            if not isinstance(data.get("event"), dict) or not isinstance(data["event"].get("type"), str):
                raise BadRequest("event_callback without an `event` object")
            if not isinstance(data.get("event_id"), str) or not data["event_id"]:
                raise BadRequest("event_callback without an `event_id`")
            text = data["event"].get("text")
            if text is not None and not isinstance(text, str):
                raise BadRequest("event.text must be a string")
        return
    if content_type == "application/x-www-form-urlencoded":
        try:
            form = parse_qs(body, keep_blank_values=True, strict_parsing=bool(body), max_num_fields=200)
        except ValueError:
            raise BadRequest("body is not valid form data") from None
        if "payload" in form:
            try:
                payload = json.loads(form["payload"][0])
            except ValueError:
                raise BadRequest("interactivity payload is not valid JSON") from None
            if not isinstance(payload, dict) or not isinstance(payload.get("type"), str):
                raise BadRequest("interactivity payload must be an object with a string `type`")
            if payload["type"] == "block_actions":
                actions = payload.get("actions")
                if not isinstance(actions, list) or not actions or not all(isinstance(a, dict) for a in actions):
                    raise BadRequest("block_actions payload needs a non-empty `actions` list of objects")
        elif "command" not in form and "ssl_check" not in form:
            raise BadRequest("form body is neither a slash command nor an interactivity payload")
        return
    raise BadRequest(f"unsupported content type {content_type or '(none)'!r}")
