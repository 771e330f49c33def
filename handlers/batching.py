"""Group commit: writes that arrive together share one transaction.

The first caller starts a writer, which lingers a moment (``linger``, a couple of milliseconds)
so that requests already on their way join the same transaction; callers that arrive while a
transaction is running queue up and go together in the next one. Under load this
turns N transactions into N / batch, which is what lets one SQLite file keep up with Slack's
bursts, and saves round trips on PostgreSQL too.

``concurrency`` transactions may be in flight at once (default 1), but a second one starts only
when a whole batch (``max_batch``) waits behind a running one; otherwise the running writer takes
what queued up as soon as it has committed. SQLite has one writer whatever we do, so more would
only queue on its lock. PostgreSQL runs them side by side, which a replica needs when one
transaction at a time cannot keep up (a slow or distant database). When it can, parallel
transactions only split the batches: each event then pays a larger share of each statement's
fixed cost, and page reports of one rule wait for each other's advisory lock. With a second writer
started for every arrival during a commit, one replica at 1,000 events/s (``bench/load.py``, pg-1
with a worker process) spent 82% of a core for an ack p99 of 297 ms; with one writer, 76% for
157 ms.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger(__name__)


class GroupCommitter(Generic[T, R]):
    """Runs ``write(items) -> results`` for batches of submitted items, ``concurrency`` batches at a time.

    ``write`` must return one result per item, in order. If it raises, a batch of one fails with
    that error; a larger batch is retried item by item, so one bad item cannot fail its
    neighbours (a database outage still fails each of them, as it should).
    """

    def __init__(
        self,
        write: Callable[[Sequence[T]], Awaitable[Sequence[R]]],
        *,
        max_batch: int = 64,
        linger: float = 0.0,
        concurrency: int = 1,
    ) -> None:
        self._write = write
        self._max_batch = max_batch
        self._linger = linger
        self._concurrency = max(1, concurrency)
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._writers: set[asyncio.Task[None]] = set()
        self._collecting = 0  # writers starting or lingering: collecting a batch rather than writing one

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        # A new writer only when every running one is busy with its transaction (a writer that is
        # still collecting takes this item too), and, if one is, only when a whole batch waits: the
        # busy writer takes what is queued when its commit is done. (A writer whose loop has ended
        # is done() at once; its done-callback, which forgets it, runs a little later.)
        running = sum(not w.done() for w in self._writers)
        if not self._collecting and (not running or (running < self._concurrency
                                                     and len(self._queue) >= self._max_batch)):
            self._collecting += 1
            task = asyncio.create_task(self._drain(), name="group-commit")
            self._writers.add(task)
            task.add_done_callback(self._writers.discard)
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        """Write batches until the queue is empty (the creator counted this writer as collecting)."""
        try:
            while self._queue:
                if self._linger and len(self._queue) < self._max_batch:
                    # Let requests already being parsed join: without this, the first arrival of a
                    # burst commits alone and everyone behind it waits a whole transaction for it.
                    await asyncio.sleep(self._linger)
                batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
                if not batch:  # another writer took them while this one lingered
                    continue
                self._collecting -= 1
                try:
                    await self._run(batch)
                finally:
                    self._collecting += 1
        finally:
            self._collecting -= 1

    async def _run(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await self._write([item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"batch writer returned {len(results)} results for {len(batch)} items")
        except Exception as exc:  # noqa: BLE001 - handed to the callers
            if len(batch) == 1:
                _settle(batch[0][1], exc=exc)
                return
            log.warning("group commit of %d failed (%s); retrying one by one", len(batch), type(exc).__name__)
            for entry in batch:
                await self._run([entry])
            return
        for (_, future), result in zip(batch, results):
            _settle(future, result=result)


def _settle(future: asyncio.Future[R], *, result: R | None = None, exc: BaseException | None = None) -> None:
    if future.done():  # the caller went away; the write itself stands
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)  # type: ignore[arg-type]
