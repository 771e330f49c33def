"""Housekeeping: forget inbound event ids once no platform can retry them any more.

Every replica may run it: each pass deletes a bounded batch in its own short transaction, so
replicas pruning at the same time only share the work.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage import service

log = logging.getLogger(__name__)


class Housekeeper:
    """Prunes ``inbound_events`` older than ``retention`` every ``interval`` seconds."""

    def __init__(self, *, sessionmaker: async_sessionmaker[AsyncSession], clock: Callable[[], datetime],
                 retention: timedelta, interval: float = 3600.0, batch: int = 5000) -> None:
        if retention < timedelta(hours=1):
            raise ValueError("inbound event retention must be at least an hour (platforms retry for that long)")
        self._sessionmaker = sessionmaker
        self._clock = clock
        self._retention = retention
        self._interval = interval
        self._batch = batch

    async def run_once(self) -> int:
        """One pass: delete old event ids batch by batch; returns how many were deleted."""
        before = self._clock() - self._retention
        total = 0
        while True:
            async with self._sessionmaker() as session, session.begin():
                deleted = await service.prune_inbound(session=session, before=before, limit=self._batch)
            total += deleted
            if deleted < self._batch:
                break
            await asyncio.sleep(0)  # let requests in between batches
        if total:
            log.info("housekeeping: forgot %d inbound event ids older than %s", total, before.isoformat())
        return total

    async def run(self, stop: asyncio.Event) -> None:
        """Prune now and then every ``interval`` until ``stop``; a failed pass is logged and retried later."""
        while not stop.is_set():
            try:
                await self.run_once()
            except Exception:
                log.exception("housekeeping pass failed; trying again in %.0f s", self._interval)
            try:
                await asyncio.wait_for(stop.wait(), timeout=self._interval)
            except TimeoutError:
                pass
