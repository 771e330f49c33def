"""Slack traffic for the replica runs: signed events, Slack-like retries, paced sending, counting.

Every event's text ends with ``(ref <event id>)``, so whatever reaches the fake MSP or PagerDuty can
be traced back to the event that caused it, whatever ticket id or idempotency key it was given.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from tests.fakes.base import RecordedRequest
from tests.helpers import event_body, signed_headers

JSON = "application/json"
MARKER = re.compile(r"\(ref (Ev[A-Za-z0-9]+)\)")
#: Texts the shipped rules route to the MSP, and one that pages.
MSP_TEXTS = (
    "the printer on floor 2 is jammed again",
    "outlook keeps crashing when I open the calendar",
    "how do I reset my password",
    "my laptop battery drains in an hour",
    "wifi is slow in meeting room 4",
)
PAGE_TEXT = "ransomware note on my screen, files renamed .locked"


@dataclass(frozen=True)
class Event:
    """One employee message as Slack would deliver it (retries reuse ``event_id``)."""

    event_id: str
    text: str
    critical: bool = False
    user: str = "U0EMPLOYEE"

    def body(self) -> str:
        return event_body(self.text, event_id=self.event_id, user=self.user, channel=f"D0{self.user[-4:]}",
                          ts=f"1726000000.{zlib.crc32(self.event_id.encode()) % 1_000_000:06d}")


def make_events(count: int, *, prefix: str, page_every: int = 0, reject_every: int = 0,
                reject_marker: str = "") -> list[Event]:
    """``count`` distinct events; every ``page_every``-th is critical, every ``reject_every``-th
    MSP text carries ``reject_marker`` (the scripted MSP refuses those with a 4xx)."""
    out = []
    for i in range(count):
        eid = f"Ev{prefix}{i:06d}"
        critical = bool(page_every) and i % page_every == page_every - 1
        base = PAGE_TEXT if critical else MSP_TEXTS[i % len(MSP_TEXTS)]
        if not critical and reject_every and i % reject_every == reject_every - 1:
            base = f"{base} {reject_marker}"
        out.append(Event(eid, f"{base} (ref {eid})", critical, user=f"U0EMP{i % 97:04d}"))
    return out


def marker(text: Any) -> str | None:
    found = MARKER.search(str(text or ""))
    return found.group(1) if found else None


@dataclass
class Outcome:
    """What happened to one event: every attempt (replica, HTTP status or -1, when it was
    answered) and when it was acked."""

    event: Event
    attempts: list[tuple[str, int, float]] = field(default_factory=list)
    acked_at: float | None = None
    latency: float | None = None  # of the attempt that got the 200

    @property
    def acked(self) -> bool:
        return self.acked_at is not None


async def post_event(http: aiohttp.ClientSession, url: str, event: Event, *, retry: int = 0,
                     timeout: float = 10.0) -> int:
    """POST one signed event; the HTTP status, or -1 when the connection failed or timed out."""
    body = event.body()
    extra = {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"} if retry else None
    try:
        async with http.post(url, data=body.encode(), headers=signed_headers(body, content_type=JSON, extra=extra),
                             timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            await resp.read()
            return resp.status
    except (TimeoutError, aiohttp.ClientError):
        return -1


async def deliver(http: aiohttp.ClientSession, targets: Sequence[tuple[str, str]], event: Event, *,
                  first: int = 0, deadline: float, pause: float = 0.2) -> Outcome:
    """Send ``event`` as Slack does until a 200: a failed attempt (no answer, 5xx) is retried with
    the same event id on the next target, after ``pause``. Gives up at ``deadline`` (monotonic)."""
    out = Outcome(event)
    n = 0
    while time.monotonic() < deadline:
        name, url = targets[(first + n) % len(targets)]
        started = time.monotonic()
        status = await post_event(http, url, event, retry=n)
        out.attempts.append((name, status, time.time()))
        if status == 200:
            out.acked_at, out.latency = time.time(), time.monotonic() - started
            return out
        n += 1
        await asyncio.sleep(pause)
    return out


async def paced(items: Sequence[Any], rate: float, run: Callable[[int, Any], Awaitable[Any]]) -> list[Any]:
    """Start ``run(i, item)`` for each item at ``rate`` per second (open loop); all results in order."""
    t0 = time.monotonic()
    tasks = []
    for i, item in enumerate(items):
        delay = t0 + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(run(i, item)))
    return list(await asyncio.gather(*tasks))


def storm_order(events: Iterable[Event], copies: int, rng: random.Random) -> list[Event]:
    """Each event ``copies`` times, shuffled (a retry storm, out of order)."""
    out = [e for e in events for _ in range(copies)]
    rng.shuffle(out)
    return out


@dataclass(frozen=True)
class MspCount:
    """What the fake MSP saw, per event (via the text's ref marker)."""

    requests: int
    distinct_keys: int
    tickets: int
    tickets_per_event: Counter[str]
    requests_per_key: Counter[str]


def count_msp(requests: Sequence[RecordedRequest], tickets: Iterable[dict[str, Any]]) -> MspCount:
    """Requests and distinct keys received; tickets created per event (new-ticket payloads only:
    later updates of a ticket carry ``event: ticket.comment`` and the like)."""
    keys = Counter(r.header("Idempotency-Key") or "" for r in requests)
    created = (t for t in tickets if t.get("event") in (None, "ticket.created"))
    per_event = Counter(m for m in (marker(t.get("text")) for t in created) if m)
    return MspCount(len(requests), len(keys), sum(per_event.values()), per_event, keys)
