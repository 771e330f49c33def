"""What the outbox worker records after each attempt: delivered, a retry later, or a dead letter.

:class:`Outcomes` owns the worker's writes after a connector call, so the worker's loop
(:mod:`handlers.delivery`) only claims and dispatches. Deliveries finished together are marked in one
statement (group commit on the bookkeeping sessions); retries are batched the same way on the durable
sessions; a dead letter and its ``admin.alert`` row are one transaction of their own. Payloads may
hold user text: they are never logged.
"""

from __future__ import annotations

import inspect
import logging
import math
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from handlers.batching import GroupCommitter
from handlers.ports import DeliveryResult
from storage import bulk, service
from storage.models import ticket_key
from storage.outbox import ClaimedRow

log = logging.getLogger("handlers.delivery")

#: Outbox kind of the dead-letter alerts sent to admins.
ALERT_KIND = "admin.alert"
_MAX_ERROR_CHARS = 500
_Op = Callable[[AsyncSession], Awaitable[Any]]
#: A delivered row: id, detail, the receiver's id for it, and the ticket that learns that id as its
#: ``remote_id`` (an MSP's answer to ``ticket.created``), else None.
_Delivered = tuple[int, str, str | None, int | None]


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, capped; ``max_attempts`` attempts in all."""

    base: float = 1.0
    factor: float = 2.0
    cap: float = 300.0
    max_attempts: int = 12
    jitter: bool = True
    max_retry_after: float = 3600.0

    def delay(self, attempts: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt (1 for the first).

        The ceiling is ``min(cap, base * factor ** (attempts - 1))``; with jitter the delay is
        uniform in ``[0, ceiling]`` ("full jitter"). A ``retry_after`` from the third party is a
        floor: we never come back sooner than asked, up to ``max_retry_after`` (a broken or hostile
        server cannot park a delivery for days).
        """
        try:
            ceiling = min(self.cap, self.base * math.pow(self.factor, max(0, attempts - 1)))
        except OverflowError:
            ceiling = self.cap
        delay = rng.uniform(0.0, ceiling) if self.jitter else ceiling
        if retry_after is not None and retry_after > delay:
            delay = min(float(retry_after), self.max_retry_after)
        return max(0.0, delay)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A row that went dead (given to ``on_dead`` after the dead-letter transaction committed)."""

    row_id: int
    kind: str
    ticket_id: int | None
    error: str
    attempts: int


class OutboxMetrics(Protocol):
    """Hooks for metrics; the default does nothing."""

    def claimed(self, count: int) -> None: ...

    def attempt(self, *, kind: str, outcome: str, seconds: float) -> None:
        """One attempt finished; ``outcome`` is ``delivered``, ``retry`` or ``dead``."""


class NullMetrics:
    def claimed(self, count: int) -> None:
        pass

    def attempt(self, *, kind: str, outcome: str, seconds: float) -> None:
        pass


class Outcomes:
    """Records attempts' outcomes for one worker; returns the outcome's name for the metrics."""

    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        bookkeeping: async_sessionmaker[AsyncSession],
        clock: Callable[[], datetime],
        policy: RetryPolicy,
        rng: random.Random,
        batch: int,
        wake: Callable[[], None],
        on_dead: Callable[[DeadLetter], Awaitable[None] | None] | None = None,
    ) -> None:
        """``bookkeeping``: sessions for delivered marks (see :class:`handlers.delivery.OutboxWorker`);
        ``wake``: called after an admin alert was enqueued, so the worker delivers it now."""
        self._sessionmaker = sessionmaker
        self._books = bookkeeping
        self._clock = clock
        self._policy = policy
        self._rng = rng
        self._wake = wake
        self._on_dead = on_dead
        # Outcomes of rows delivered together are recorded in one transaction.
        self._delivered: GroupCommitter[_Delivered, None] = GroupCommitter(
            self._write_delivered, max_batch=max(batch, 1) * 4
        )
        self._recorder: GroupCommitter[_Op, Any] = GroupCommitter(self._write_ops, max_batch=max(batch, 1) * 2)

    async def _write_delivered(self, deliveries: Sequence[_Delivered]) -> list[None]:
        async with self._books() as session, session.begin():
            await bulk.mark_delivered_many(session=session, deliveries=[(row, detail, remote)
                                                                        for row, detail, remote, _ in deliveries],
                                           now=self._clock())
            await bulk.learn_remote_ids(session=session, pairs=[(ticket, remote) for _, _, remote, ticket in deliveries
                                                                if ticket is not None and remote])
        return [None] * len(deliveries)

    async def _write_ops(self, ops: Sequence[_Op]) -> list[Any]:
        """Retries, a batch in one transaction (rare, so on the durable pool: were a batch to fail
        half-way on autocommit connections, the rows retried one by one would count twice)."""
        async with self._sessionmaker() as session, session.begin():
            return [await op(session) for op in ops]

    async def record(self, job: ClaimedRow, result: DeliveryResult) -> str | None:
        """Store the outcome of one attempt in its own transaction; returns the outcome name."""
        attempts = job.attempts + 1
        detail = (result.detail or "")[:_MAX_ERROR_CHARS]
        if result.ok:
            try:
                created = job.kind == "msp" and job.payload.get("event") == "ticket.created"
                await self._delivered.submit((job.id, detail, result.remote_id, job.ticket_id if created else None))
            except Exception:
                log.exception("outbox row %s: delivered but could not record it", job.id)
                return None
            log.debug("outbox row %s (%s) delivered after %d attempt(s)", job.id, job.kind, attempts)
            return "delivered"
        if not result.retryable:
            return await self.dead(job, f"rejected: {detail or 'no detail'}")
        if attempts >= self._policy.max_attempts:
            return await self.dead(job, f"gave up after {attempts} attempts: {detail}")
        delay = self._policy.delay(attempts, result.retry_after, self._rng)
        try:
            retry_at = self._clock() + timedelta(seconds=delay)
            await self._recorder.submit(
                lambda session: service.mark_retry(
                    session=session, row_id=job.id, next_attempt_at=retry_at, error=detail or "failed"
                )
            )
        except Exception:
            log.exception("outbox row %s: could not record a retry", job.id)
            return None
        log.warning(
            "outbox row %s (%s) attempt %d failed (%s); retry in %.1fs",
            job.id,
            job.kind,
            attempts,
            detail,
            delay,
        )
        return "retry"

    async def dead(self, job: ClaimedRow, error: str) -> str | None:
        """Dead-letter the row and, unless it is an alert itself, enqueue an admin alert."""
        error = error[:_MAX_ERROR_CHARS]
        now = self._clock()
        try:
            async with self._sessionmaker() as session, session.begin():
                changed = await service.mark_dead(
                    session=session, row_id=job.id, now=now, error=error
                )
                if changed and job.kind != ALERT_KIND:
                    await service.enqueue(
                        session=session,
                        kind=ALERT_KIND,
                        payload=self._alert(job, error),
                        idempotency_key=f"alert:dead:{job.id}",
                        now=now,
                    )
        except Exception:
            log.exception("outbox row %s: could not record it as dead", job.id)
            return None
        if changed:
            log.error("outbox row %s (%s) is dead: %s", job.id, job.kind, error)
            if job.kind != ALERT_KIND:
                self._wake()
            await self._notify_dead(
                DeadLetter(job.id, job.kind, job.ticket_id, error, job.attempts + 1)
            )
        return "dead"

    @staticmethod
    def _alert(job: ClaimedRow, error: str) -> dict[str, Any]:
        ticket = f" of ticket {ticket_key(job.ticket_id)}" if job.ticket_id is not None else ""
        return {
            "text": f"Outbox delivery failed for good: row {job.id} ({job.kind}){ticket}: {error}",
            "dead_row_id": job.id,
            "dead_kind": job.kind,
            "ticket_id": job.ticket_id,
            "error": error,
        }

    async def _notify_dead(self, dead: DeadLetter) -> None:
        if self._on_dead is None:
            return
        try:
            maybe = self._on_dead(dead)
            if inspect.isawaitable(maybe):
                await maybe
        except Exception:
            log.exception("outbox row %s: on_dead hook failed", dead.row_id)


