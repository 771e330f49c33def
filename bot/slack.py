"""The Slack edge: verify, parse and normalise; slack-bolt dispatches; handlers decide.

``POST /slack/events`` serves the Events API, slash commands and interactivity. Before bolt sees a
request this module checks, in order: size (413), signature and timestamp (401), and shape (400, see
:mod:`bot.slack_shape`: types bolt reads, ids we store, JSON nesting), so bad input never reaches a
listener and never produces a 500 or a 503. A shape error raised by bolt's own code all the same
(``TypeError`` and kin in a matcher or a log message) is a 400 too; text is cleaned where it is
used (:func:`handlers.text_input.clean_text`). Bolt runs with
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
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from bot.metrics import Metrics
from bot.slack_actions import SlackPageButtons
from bot.slack_shape import BadRequest, check_shape, plain_text
from handlers.commands import Actor, CommandRouter
from handlers.intake import Inbound, Intake
from handlers.ports import Connector, PageActions, ThreadComments, ThreadMessage
from handlers.replies import slack_blocks
from handlers.text_input import clean_name, clean_text, valid_id

log = logging.getLogger(__name__)

#: Message subtypes an employee writes: with a file, "also send to channel" from a thread, /me.
_WRITTEN = frozenset({"file_share", "thread_broadcast", "me_message"})
_MAX_FILE_NAMES = 5
#: The text bolt's authorization middleware answers (200) when auth.test fails; never shown to anyone.
_AUTH_FAILED = "handoff: auth.test failed"
#: What slack-bolt raises while it reads a body whose shape :func:`check_shape` did not foresee.
PARSE_ERRORS = (TypeError, AttributeError, KeyError, IndexError, ValueError, RecursionError)

__all__ = ["BadRequest", "SlackEdge"]


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
            # bolt answers 200 with this text when its auth.test call fails; handle() makes it a 503.
            user_facing_authorize_error_message=_AUTH_FAILED,
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
        if not (timestamp.isascii() and signature.isascii()):  # hmac.compare_digest raises on non-ASCII str
            return self._reject(request, 401, "invalid signature")
        if not self._fresh(timestamp):
            return self._reject(request, 401, "stale or invalid timestamp")
        if not self._verifier.is_valid(body=body, timestamp=timestamp, signature=signature):
            return self._reject(request, 401, "invalid signature")
        try:
            parsed = check_shape(body, request.content_type)
        except BadRequest as exc:
            return self._reject(request, 400, str(exc))
        headers: dict[str, str | Sequence[str]] = dict(request.headers)
        if request.content_type != "application/json":  # bolt reads the form as we did (see check_shape)
            body, headers["Content-Type"] = json.dumps(parsed), "application/json"
        try:
            bolt_request = AsyncBoltRequest(body=body, query=request.query_string, headers=headers)
        except PARSE_ERRORS as exc:  # bolt could not read it: the sender's problem, not a retry
            return self._reject(request, 400, f"body slack-bolt cannot read ({type(exc).__name__})")
        try:
            response = await self.app.async_dispatch(bolt_request)
        except PARSE_ERRORS as exc:  # raised again while bolt built the error handler's arguments
            where = _bolt_choked(exc)
            if where is None:
                raise
            return self._reject(request, 400, f"body slack-bolt cannot read ({type(exc).__name__} in {where})")
        return await to_aiohttp_response(self.unless_auth_failed(response))

    def unless_auth_failed(self, response: BoltResponse) -> BoltResponse:
        """``response``, or a 503 when it is bolt's answer to a failed auth.test (rate limited, Slack
        down, a revoked token): then no listener ran, and a 200 would tell Slack the event was
        delivered. Over HTTP Slack retries the 503; in Socket Mode the envelope is not acknowledged
        and comes again."""
        if response.status != 200 or response.body != _AUTH_FAILED:
            return response
        log.error("slack request not processed: auth.test failed (see handoff.slack_bolt above; check "
                  "SLACK_BOT_TOKEN if it says invalid_auth); answering 503 so Slack retries")
        return self._unavailable()

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
        # DMs only: channel messages that mention the bot arrive as app_mention too. Subtypes are
        # edits, deletions, joins and bots, except the few an employee writes (a DM with a screenshot).
        subtype = event.get("subtype")
        if event.get("channel_type") != "im" or (subtype and subtype not in _WRITTEN) or event.get("bot_id"):
            return
        await self._intake_event(event, body)

    async def _on_mention(self, event: dict[str, Any], body: dict[str, Any]) -> None:
        if event.get("bot_id"):
            return
        await self._intake_event(event, body)

    async def _intake_event(self, event: dict[str, Any], body: dict[str, Any]) -> None:
        text = plain_text(clean_text(str(event.get("text") or ""))).strip()
        names = _file_names(event.get("files"))
        if names:  # the files stay in Slack; whoever handles the ticket learns they exist
            text = f"{text}\n[attached in Slack: {', '.join(names)}]".strip()
        ids = (body.get("event_id"), event.get("user"), event.get("channel"), event.get("ts"), event.get("thread_ts"))
        if not ids[0] or not all(value is None or valid_id(value) for value in ids):  # Socket Mode skips check_shape
            log.warning("slack event with unusable ids ignored")
            return
        if not text or not event.get("user") or not event.get("channel"):
            return
        parent = str(event.get("thread_ts") or "")
        in_thread = bool(parent) and parent != str(event.get("ts") or "")
        if self.threads is not None and in_thread and await self.threads.comment(ThreadMessage(
            platform="slack", event_id=str(body["event_id"]), user_id=str(event["user"]),
            channel_id=str(event["channel"]), thread_ref=parent, text=text,
        )) == "comment":
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
                      user_name=clean_name(str(command.get("user_name") or "")),
                      channel_id=str(command.get("channel_id") or ""))
        # Slack sends a trigger_id with every command; without one there is nothing to deduplicate on.
        event_id = f"command:{command.get('trigger_id') or command.get('command_ts') or uuid.uuid4().hex}"
        text = plain_text(clean_text(str(command.get("text") or "")), keep_mentions=True)
        reply = await self.commands.dispatch(actor, text, event_id=event_id,
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
        where = _bolt_choked(error)
        if where is not None:  # bolt's own code could not read the body: retrying would not help
            log.warning("slack request refused: 400 body slack-bolt cannot read (%s in %s)", type(error).__name__, where)
            self.metrics.rejected.labels(platform="slack", status="400").inc()
            return BoltResponse(status=400, body=json.dumps({"ok": False, "error": "body slack-bolt cannot read"}),
                                headers={"content-type": "application/json"})
        log.error("slack listener failed (%s); answering 503 so Slack retries", type(error).__name__, exc_info=error)
        return self._unavailable()

    def _unavailable(self) -> BoltResponse:
        """The 503 with Retry-After that makes Slack send the request again (counted)."""
        self.metrics.rejected.labels(platform="slack", status="503").inc()
        return BoltResponse(status=503, body=json.dumps({"ok": False, "error": "temporarily unavailable"}),
                            headers={"content-type": "application/json", "retry-after": "1"})


def _file_names(files: Any) -> list[str]:
    """Names of the files shared with a message (at most five, then "+N more"), cleaned for storage."""
    if not isinstance(files, list):
        return []
    names = [clean_name(str(f.get("name") or f.get("title") or "file"), 100) for f in files if isinstance(f, dict)]
    extra = len(names) - _MAX_FILE_NAMES
    return names[:_MAX_FILE_NAMES] + ([f"+{extra} more"] if extra > 0 else [])


def _bolt_choked(error: Exception) -> str | None:
    """The slack-bolt function that raised ``error`` when it is a shape error raised by bolt's own code
    (a matcher, a middleware, a log message reading a field of an unforeseen type), else None.

    Errors raised in our listeners (a database failure, or a bug of ours) are not the sender's fault
    and stay 503; this is the safety net behind :func:`bot.slack_shape.check_shape`.
    """
    if not isinstance(error, PARSE_ERRORS):
        return None
    tb, last = error.__traceback__, None
    while tb is not None:
        last, tb = tb, tb.tb_next
    if last is None or "slack_bolt" not in Path(last.tb_frame.f_code.co_filename).parts:
        return None
    return last.tb_frame.f_code.co_name
