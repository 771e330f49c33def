"""Ports: the small interfaces through which use cases reach the outside world.

``bot/`` provides the implementations (connectors); tests provide real fakes on loopback. Handlers
never import ``bot``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol


@dataclass(frozen=True, slots=True)
class Actor:
    """Who typed a command or pressed a button, as the platform identified them."""

    platform: str
    user_id: str
    user_name: str = ""
    channel_id: str = ""
    groups: frozenset[str] = frozenset()

    @property
    def ref(self) -> str:
        """``platform:user id``, how people are recorded in tickets, incidents and the audit log."""
        return f"{self.platform}:{self.user_id}"


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """What one delivery attempt of an outbox row came to.

    Attributes:
        ok: The third party accepted it; the row is delivered.
        retryable: Not ok, but worth trying again (network error, timeout, 5xx, 429).
            Not ok and not retryable means dead-letter (4xx other than 429).
        retry_after: Seconds the third party asked us to wait (``Retry-After``), if any.
        detail: Short human summary for the outbox listing (status code, remote id, error).
            Never contains secrets.
        remote_id: Id the third party gave the delivered item (MSP ticket id, PagerDuty dedup key,
            Slack message ts), if any.
    """

    ok: bool
    retryable: bool = False
    retry_after: float | None = None
    detail: str = ""
    remote_id: str | None = None


class Connector(Protocol):
    """Delivers one kind of outbox row (``msp``, ``pagerduty``, ``slack.post``, ...).

    ``deliver`` must never raise for an expected failure (HTTP error, timeout, refused connection):
    it returns a :class:`DeliveryResult` instead. It must send ``idempotency_key`` to the third
    party where the third party supports one, so a retry after an unknown outcome is harmless.
    """

    kind: str

    async def deliver(self, *, payload: dict[str, Any], idempotency_key: str) -> DeliveryResult: ...


class GroupLookupError(Exception):
    """A group directory could not say who is in a group (unreachable, no permission, no such group)."""


class GroupDirectory(Protocol):
    """Who belongs to a chat platform's user group (a Slack user group, a Teams / Entra ID group).

    ``group`` is what ``app.yaml`` names (a Slack user group id ``S0123`` or handle ``it-admins``).
    Implementations cache; they raise :class:`GroupLookupError` rather than guess.
    """

    async def members(self, *, platform: str, group: str) -> frozenset[str]: ...


#: What an on-call can do to a page from chat (buttons, or ``/handoff ack|resolve|escalate IT-…``).
PAGE_ACTIONS = ("acknowledge", "resolve", "escalate", "not_critical")


@dataclass(frozen=True, slots=True)
class ActionOutcome:
    """The answer to a page action: ``text`` for whoever pressed the button (ephemeral),
    ``card`` an updated rendering of the page message when the action changed it (else None)."""

    ok: bool
    text: str
    card: dict[str, Any] | None = None


class PageActions(Protocol):
    """The on-call use case behind the page buttons (implemented in :mod:`handlers`).

    ``action`` is one of :data:`PAGE_ACTIONS`; ``incident_id`` comes from the button's value. Must be
    idempotent (a button pressed twice, or two people pressing at once, acts once) and never raise
    for a user error (unknown incident, already resolved): it answers with ``ok=False`` and why.
    """

    async def act(self, *, actor: Actor, action: str, incident_id: int, event_id: str) -> ActionOutcome: ...


@dataclass(frozen=True, slots=True)
class ThreadMessage:
    """A message posted in a thread the bot started or answered (Slack ``thread_ts``; Teams reply chain)."""

    platform: str
    event_id: str
    user_id: str
    channel_id: str
    thread_ref: str
    text: str
    user_name: str = ""


#: What :meth:`ThreadComments.comment` made of a thread message: ``comment`` (handled), ``no-ticket`` (no
#: ticket lives in that thread) or ``request`` (a ticket does, but the message is critical: a request).
ThreadOutcome = Literal["comment", "no-ticket", "request"]


class ThreadComments(Protocol):
    """Turns a message in a ticket's thread into a comment on that ticket (implemented in handlers).

    ``comment``: handled; the comment, its forwarding and the answer in the thread are committed as
    outbox rows (a platform retry of the same ``event_id`` changes nothing). ``no-ticket``: no ticket
    lives in that thread; the edge treats the message as it would any other. ``request``: a ticket
    lives there but the message would page on its own; the edge hands it to intake as a request,
    even where it would otherwise ignore it (a Teams channel reply without a mention). Raises only
    for infrastructure failures (the edge answers 503 and the platform retries).
    """

    async def comment(self, message: ThreadMessage) -> ThreadOutcome: ...
