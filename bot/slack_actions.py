"""Slack page buttons: a ``block_actions`` press becomes a page action, answered via ``response_url``.

A press of a button with ``action_id`` ``handoff.page.<action>`` (see :mod:`bot.page_cards`) calls
:meth:`handlers.ports.PageActions.act`, which commits the outcome (incident state, PagerDuty or
Opsgenie rows, requester updates) before it returns; only then is the request acknowledged, so a
database failure answers 503 rather than a false "done".

How the presser sees the outcome: Slack ignores the acknowledgement body of a ``block_actions``
request (unlike slash commands and view submissions, the ack cannot update the message), so the
answer goes to the payload's ``response_url``: the message is replaced by the rendered
``ActionOutcome.card`` when there is one (and ``ActionOutcome.text`` follows as an ephemeral
message), else ``text`` is posted ephemerally. That POST is an outside call, so it is made *after*
the ack, in a background task with a timeout (:data:`ANSWER_TIMEOUT`), never in the 3-second ack
path. It is not an outbox row on purpose: ``act()`` commits in its own transaction (the edge cannot
add a row to it), a second transaction on the request path for a cosmetic update would cost more
than it saves, and the outbox poll would delay the visual feedback. Nothing can be lost by it: the
outcome is already committed, and a failed or timed-out answer is logged (without the URL, which
is a credential); pressing the button again is harmless (``act`` is idempotent) and answers with
the current state. Pending answers are awaited briefly at shutdown.

A button with an unusable value (not an incident id) or an unknown ``handoff.page.`` action is
logged and acknowledged, never a 500.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any

from bot.page_cards import BadButton, PagePress, slack_action, slack_message
from handlers.ports import ActionOutcome, Actor, Connector, PageActions
from handlers.text_input import clean_name, valid_id

log = logging.getLogger(__name__)

#: Seconds an answer through ``response_url`` may take before it is given up (and logged).
ANSWER_TIMEOUT = 5.0
NOT_WIRED = ActionOutcome(ok=False, text="On-call actions are not enabled on this server yet; nothing was changed.")


def response_bodies(outcome: ActionOutcome) -> list[dict[str, Any]]:
    """What is POSTed to the ``response_url``, in order."""
    if outcome.card is not None:
        bodies = [{"replace_original": True, **slack_message(outcome.card)}]
        if outcome.text:
            bodies.append({"response_type": "ephemeral", "replace_original": False, "text": outcome.text})
        return bodies
    return [{"response_type": "ephemeral", "replace_original": False, "text": outcome.text or "Done."}]


def _str(data: Any, key: str) -> str:
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, str) else ""


class SlackPageButtons:
    """Handles page-button presses and answers them in the background.

    Args:
        responder: A ``slack.post`` connector: it POSTs rows with a ``response_url`` there (allowed
            prefixes, timeout and secret scrubbing included). None: presses are not answered.
        timeout: Seconds for one answer.
    """

    def __init__(self, *, responder: Connector | None, timeout: float = ANSWER_TIMEOUT) -> None:
        self._responder = responder
        self._timeout = timeout
        self._pending: set[asyncio.Task[None]] = set()

    async def press(self, page_actions: PageActions | None, body: dict[str, Any], action: dict[str, Any]) -> None:
        """Act on one press (committed when this returns) and schedule its answer."""
        try:
            press = slack_action(action)
        except BadButton as exc:
            log.warning("slack page button %r refused: %s", _str(action, "action_id")[:60], exc)
            return
        if press is None:
            return
        user = body.get("user") if isinstance(body.get("user"), dict) else {}
        channel = _str(body.get("channel"), "id") or _str(body.get("container"), "channel_id")
        actor = Actor(platform="slack", user_id=_str(user, "id"),
                      user_name=clean_name(_str(user, "name") or _str(user, "username")), channel_id=channel)
        if not actor.user_id:
            log.warning("slack page button without a user; ignored")
            return
        if not all(valid_id(value) for value in (actor.user_id, channel, _str(body, "trigger_id"))):
            log.warning("slack page button with unusable ids; ignored")  # Socket Mode skips the edge's check
            return
        event_id = f"action:{_str(body, 'trigger_id') or _str(action, 'action_ts') + ':' + actor.user_id}"
        if not valid_id(event_id):  # a long action_ts: keep the dedup key within its column
            event_id = f"action:sha256:{hashlib.sha256(event_id.encode('utf-8', 'replace')).hexdigest()}"
        if page_actions is None:
            outcome = NOT_WIRED
        else:
            outcome = await page_actions.act(actor=actor, action=press.action, incident_id=press.incident_id,
                                             event_id=event_id)
        response_url = _str(body, "response_url")
        if response_url and self._responder is not None:
            task = asyncio.get_running_loop().create_task(self._answer(response_url, outcome, press, event_id),
                                                          name="slack-page-answer")
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _answer(self, url: str, outcome: ActionOutcome, press: PagePress, event_id: str) -> None:
        assert self._responder is not None
        for n, body in enumerate(response_bodies(outcome)):
            try:
                result = await asyncio.wait_for(self._responder.deliver(
                    payload={"response_url": url, **body}, idempotency_key=f"{event_id}:answer:{n}"), self._timeout)
            except TimeoutError:
                log.warning("slack: answer to %s on incident %d timed out after %gs (the action itself is done)",
                            press.action, press.incident_id, self._timeout)
                return
            if not result.ok:
                log.warning("slack: answer to %s on incident %d failed: %s (the action itself is done)",
                            press.action, press.incident_id, result.detail)
                return

    async def close(self, timeout: float = ANSWER_TIMEOUT) -> None:
        """Let pending answers finish (up to ``timeout`` seconds), then cancel the rest."""
        if not self._pending:
            return
        _, late = await asyncio.wait(set(self._pending), timeout=timeout)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)
