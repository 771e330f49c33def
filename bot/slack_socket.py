"""Socket Mode: the Slack edge over Slack's WebSocket, for a bot without a public URL (``SLACK_APP_TOKEN``).

bolt's own handler, with one difference: what the HTTP edge answers 503 (a failed ``auth.test``, see
:meth:`bot.slack.SlackEdge.unless_auth_failed`) is left unacknowledged, so Slack sends it again.
An envelope is observed as an HTTP request is: its log lines carry a request id (the envelope's)
and the time to its acknowledgement goes to ``handoff_intake_seconds``.
"""

from __future__ import annotations

from typing import Any

from bot.logs import request_id, request_id_from
from bot.slack import SlackEdge


def socket_mode_handler(edge: SlackEdge, app_token: str) -> Any:
    """bolt's Socket Mode handler for ``edge``, which leaves unacknowledged what the HTTP edge answers
    503 (:meth:`SlackEdge.unless_auth_failed`): Slack sends the envelope again."""
    from time import time

    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
    from slack_bolt.adapter.socket_mode.async_internals import (
        run_async_bolt_app,
        send_async_response,
    )

    class Handler(AsyncSocketModeHandler):
        async def handle(self, client: Any, req: Any) -> None:
            start = time()
            token = request_id.set(request_id_from(req.envelope_id))  # this envelope's task only
            try:
                # Timed like POST /slack/events (bot.app.slack_events): until the answer is ready.
                with edge.metrics.intake_latency.labels(platform="slack").time():
                    response = edge.unless_auth_failed(await run_async_bolt_app(self.app, req))
                await send_async_response(client, req, response, start)  # acknowledges only a 200
            finally:
                request_id.reset(token)

    return Handler(edge.app, app_token)
