"""Group commit: writes that arrive together share one transaction.

The first caller starts a writer, which lingers a moment (``linger``, a couple of milliseconds)
so that requests already on their way join the same transaction; callers that arrive while a
transaction is running queue up and go together in the next one. Under load this
turns N transactions into N / batch, which is what lets one SQLite file keep up with Slack's
bursts, and saves round trips on PostgreSQL too.
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
    """Runs ``write(items) -> results`` for batches of submitted items, one batch at a time.

    ``write`` must return one result per item, in order. If it raises, a batch of one fails with
    that error; a larger batch is retried item by item, so one bad item cannot fail its
    neighbours (a database outage still fails each of them, as it should).
    """

    def __init__(
        self, write: Callable[[Sequence[T]], Awaitable[Sequence[R]]], *, max_batch: int = 64, linger: float = 0.0
    ) -> None:
        self._write = write
        self._max_batch = max_batch
        self._linger = linger
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain(), name="group-commit")
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        while self._queue:
            if self._linger and len(self._queue) < self._max_batch:
                # Let requests already being parsed join: without this, the first arrival of a
                # burst commits alone and everyone behind it waits a whole transaction for it.
                await asyncio.sleep(self._linger)
            batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
            await self._run(batch)

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
