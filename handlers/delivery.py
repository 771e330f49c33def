"""The outbox worker: delivers pending outbox rows through connectors, with retries.

Each cycle claims a batch in one short transaction, calls the connectors with no transaction
open, then records each outcome in short transactions (:class:`handlers.delivery_outcomes.Outcomes`).
A row that cannot be delivered is dead-lettered and reported to admins by an ``admin.alert`` outbox
row written in the same transaction. Payloads may hold user text: they are never logged.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import random
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from handlers.delivery_outcomes import (
    ALERT_KIND,
    DeadLetter,
    NullMetrics,
    OutboxMetrics,
    Outcomes,
    RetryPolicy,
)
from handlers.ports import Connector, DeliveryResult
from storage import service
from storage.outbox import ClaimedRow

__all__ = ["ALERT_KIND", "DeadLetter", "NullMetrics", "OutboxMetrics", "OutboxWorker", "RetryPolicy"]

log = logging.getLogger(__name__)


def _default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class OutboxWorker:
    """Delivers due outbox rows; several workers (processes) may share one database."""

    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        connectors: Mapping[str, Connector],
        clock: Callable[[], datetime],
        policy: RetryPolicy | None = None,
        worker_id: str | None = None,
        batch: int = 20,
        lease_seconds: float = 60,
        poll_interval: float = 0.5,
        on_dead: Callable[[DeadLetter], Awaitable[None] | None] | None = None,
        metrics: OutboxMetrics | None = None,
        concurrency: int = 8,
        deliver_timeout: float | None = None,
        rng: random.Random | None = None,
        bookkeeping: async_sessionmaker[AsyncSession] | None = None,
    ) -> None:
        """Create a worker; nothing runs until :meth:`run` or :meth:`run_once` is awaited.

        Args:
            lease_seconds: How long a claimed row stays reserved; another worker may take it
                after that (its delivery then repeats under the same idempotency key).
            deliver_timeout: Limit on one connector call (default 0.8 x lease, so the outcome is
                recorded before the lease runs out); a timeout counts as a retryable failure.
            concurrency: Connector calls in flight at once (rows of one ticket go one by one).
            on_dead: Called (sync or async) after a row was dead-lettered; errors are logged.
            rng: Source of jitter (seed it in tests).
            bookkeeping: Sessions for the worker's one-statement records on its hot path (claims,
                delivered marks); default ``sessionmaker``. ``serve`` gives it autocommit connections that skip
                the WAL-flush wait on PostgreSQL (:func:`storage.db.make_engine`). Dead letters and their
                admin alert are two statements in one transaction: always ``sessionmaker``.
        """
        self._books = bookkeeping or sessionmaker
        self._connectors = dict(connectors)
        self._clock = clock
        self.worker_id = worker_id or _default_worker_id()
        self._batch = batch
        self._lease = lease_seconds
        self._poll = poll_interval
        self._metrics: OutboxMetrics = metrics or NullMetrics()
        self._concurrency = max(1, concurrency)
        # Claim again once this many slots are free (one claim per freed slot cost more than the rows).
        self._refill = max(1, min(batch, self._concurrency) // 2)
        self._timeout = deliver_timeout if deliver_timeout is not None else 0.8 * lease_seconds
        self._margin = 0.1 * lease_seconds  # to record an outcome once the call returned
        self._wake = asyncio.Event()
        self._outcomes = Outcomes(
            sessionmaker=sessionmaker, bookkeeping=self._books, clock=clock, policy=policy or RetryPolicy(),
            rng=rng or random.Random(), batch=batch, wake=self.wake, on_dead=on_dead,
        )

    def wake(self) -> None:
        """Deliver now rather than at the next poll (call after committing new rows)."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set; never raises for a failed cycle (it is logged).

        Claims are pipelined: up to ``concurrency`` rows are in flight at once, and free slots are
        refilled as rows finish, without waiting for the slowest row of a batch. (Claiming a batch
        and delivering all of it before the next claim capped a replica at a few hundred rows per
        second, whatever the CPU: each batch waited for its slowest call and two commits.) On stop,
        rows in flight finish and their outcomes are recorded.
        """
        log.info("outbox worker %s started", self.worker_id)
        inflight: set[asyncio.Task[None]] = set()
        rows_in_flight = 0
        ids_in_flight: set[int] = set()
        freed = asyncio.Event()

        def finished(task: asyncio.Task[None], group: list[ClaimedRow]) -> None:
            nonlocal rows_in_flight
            inflight.discard(task)
            rows_in_flight -= len(group)
            ids_in_flight.difference_update(job.id for job in group)
            freed.set()

        try:
            while not stop.is_set():
                self._wake.clear()
                freed.clear()
                free = self._concurrency - rows_in_flight
                if inflight and free < self._refill:  # too few free slots for a claim to be worth it
                    await self._wait(stop, freed)
                    continue
                want = min(self._batch, free)
                jobs: list[ClaimedRow] = []
                try:
                    jobs = await self._claim(want)
                except Exception:
                    log.exception("outbox worker %s: claim failed", self.worker_id)
                # A row still in flight here can come back when its lease ran out meanwhile (the
                # clock jumped, or a call outlived the lease): it is being delivered, not again.
                for group in _by_ticket([job for job in jobs if job.id not in ids_in_flight]):
                    task = asyncio.create_task(self._deliver_group(group), name="outbox-delivery")
                    inflight.add(task)
                    rows_in_flight += len(group)
                    ids_in_flight.update(job.id for job in group)
                    task.add_done_callback(functools.partial(finished, group=group))
                if jobs and len(jobs) == want:  # there may be more due
                    await asyncio.sleep(0)
                elif inflight:  # nothing more due for now: new rows wake us, the end of this burst too
                    await self._wait(stop, self._wake, _all_done(inflight))
                else:
                    await self._idle(stop)
        finally:
            if inflight:
                await asyncio.gather(*inflight, return_exceptions=True)
        log.info("outbox worker %s stopped", self.worker_id)

    async def _wait(self, stop: asyncio.Event, *events: asyncio.Event) -> None:
        waiters = [asyncio.ensure_future(e.wait()) for e in (stop, *events)]
        try:
            await asyncio.wait(waiters, timeout=self._poll, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)

    async def _idle(self, stop: asyncio.Event) -> None:
        await self._wait(stop, self._wake)

    async def _claim(self, limit: int) -> list[ClaimedRow]:
        async with self._books() as session, session.begin():
            jobs = await service.claim_due(  # plain values, usable after the session closes
                session=session,
                now=self._clock(),
                limit=limit,
                lease_seconds=self._lease,
                worker_id=self.worker_id,
            )
        if jobs:
            self._metrics.claimed(len(jobs))
        return jobs

    async def _deliver_group(self, group: list[ClaimedRow]) -> None:
        """Deliver the rows of one ticket one by one, in order.

        The rows share the lease of their claim, and each call may take up to the delivery timeout:
        before a row whose call could outlive its lease, the leases of the rows left are renewed. A
        row this worker no longer holds (its lease ran out and another worker claimed it) is left to
        that worker, and so are the rows after it, to keep their order; delivering it here as well
        would post the same chat answer twice (chat posts carry no idempotency key).
        """
        for i, job in enumerate(group):
            if (job.locked_until - self._clock()).total_seconds() < self._timeout + self._margin:
                renewed = await self._renew(group[i:])
                if job.id not in renewed:
                    log.warning("outbox rows %s: lease lost before delivery; left to the worker that holds them",
                                [j.id for j in group[i:]])
                    return
                group[i:] = [j._replace(locked_until=renewed[j.id]) if j.id in renewed else j for j in group[i:]]
                job = group[i]
            try:
                await self._handle(job)
            except Exception:  # a faulty hook must not stop the other rows
                log.exception("outbox row %s: unexpected error", job.id)

    async def _renew(self, rows: Sequence[ClaimedRow]) -> dict[int, datetime]:
        try:
            async with self._books() as session, session.begin():
                return await service.renew_leases(session=session, row_ids=[r.id for r in rows], now=self._clock(),
                                                  lease_seconds=self._lease, worker_id=self.worker_id)
        except Exception:
            log.exception("outbox worker %s: lease renewal failed", self.worker_id)
            return {}

    async def run_once(self) -> int:
        """Claim one batch and deliver all of it; returns how many rows were handled."""
        jobs = await self._claim(self._batch)
        if not jobs:
            return 0
        limit = asyncio.Semaphore(self._concurrency)

        async def deliver_group(group: list[ClaimedRow]) -> None:
            async with limit:
                await self._deliver_group(group)

        await asyncio.gather(*(deliver_group(g) for g in _by_ticket(jobs)))
        return len(jobs)

    async def _handle(self, job: ClaimedRow) -> None:
        started = time.monotonic()
        connector = self._connectors.get(job.kind)
        if connector is None:
            outcome = await self._outcomes.dead(job, f"no connector configured for kind {job.kind!r}")
        else:
            result = await self._attempt(connector, job)
            outcome = await self._outcomes.record(job, result)
        if outcome is not None:
            self._metrics.attempt(
                kind=job.kind, outcome=outcome, seconds=time.monotonic() - started
            )

    async def _attempt(self, connector: Connector, job: ClaimedRow) -> DeliveryResult:
        """Call the connector (no transaction is open here); never raises."""
        try:
            async with asyncio.timeout(self._timeout):  # no task of its own, unlike wait_for (3.11)
                result = await connector.deliver(payload=job.payload, idempotency_key=job.idempotency_key)
        except TimeoutError:
            log.warning("outbox row %s (%s): connector timed out", job.id, job.kind)
            return DeliveryResult(
                ok=False, retryable=True, detail=f"timed out after {self._timeout:g}s"
            )
        except Exception as exc:
            log.warning(
                "outbox row %s (%s): connector raised %s",
                job.id,
                job.kind,
                type(exc).__name__,
                exc_info=True,
            )
            return DeliveryResult(
                ok=False, retryable=True, detail=f"connector raised {type(exc).__name__}"
            )
        if not isinstance(result, DeliveryResult):
            log.warning(
                "outbox row %s (%s): connector returned no DeliveryResult", job.id, job.kind
            )
            return DeliveryResult(
                ok=False, retryable=True, detail=f"connector returned {type(result).__name__}"
            )
        return result

def _by_ticket(jobs: Sequence[ClaimedRow]) -> list[list[ClaimedRow]]:
    """Claimed rows grouped by ticket (rows without one alone), each group in claim (id) order."""
    groups: dict[tuple[str, int], list[ClaimedRow]] = {}
    for job in jobs:
        key = ("ticket", job.ticket_id) if job.ticket_id is not None else ("row", job.id)
        groups.setdefault(key, []).append(job)
    return list(groups.values())


def _all_done(tasks: set[asyncio.Task[None]]) -> asyncio.Event:
    """An event set once every task of ``tasks`` (as it is now) has finished."""
    done = asyncio.Event()
    pending = {t for t in tasks if not t.done()}

    def one_done(task: asyncio.Task[None]) -> None:
        pending.discard(task)
        if not pending:
            done.set()

    if not pending:
        done.set()
    for task in pending:
        task.add_done_callback(one_done)
    return done
