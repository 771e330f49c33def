"""Housekeeping forgets old inbound event ids, and only those."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from handlers.housekeeping import Housekeeper
from storage import service
from storage.models import InboundEvent

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


async def test_old_event_ids_are_forgotten_in_batches(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    async with sessionmaker() as session, session.begin():
        for i in range(23):  # 8 days old
            await service.record_inbound(session=session, platform="slack", event_id=f"old-{i}",
                                         now=NOW - timedelta(days=8, minutes=i))
        await service.record_inbound(session=session, platform="slack", event_id="edge",
                                     now=NOW - timedelta(days=7) + timedelta(seconds=1))
        await service.record_inbound(session=session, platform="teams", event_id="new", now=NOW)
    keeper = Housekeeper(sessionmaker=sessionmaker, clock=lambda: NOW, retention=timedelta(days=7), batch=5)
    assert await keeper.run_once() == 23
    async with sessionmaker() as session:
        left = sorted((await session.execute(select(InboundEvent.event_id))).scalars())
    assert left == ["edge", "new"]
    assert await keeper.run_once() == 0
    async with sessionmaker() as session, session.begin():  # a retry of a kept id is still absorbed
        assert not await service.record_inbound(session=session, platform="teams", event_id="new", now=NOW)


def test_retention_shorter_than_platform_retries_is_refused(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    with pytest.raises(ValueError, match="at least an hour"):
        Housekeeper(sessionmaker=sessionmaker, clock=lambda: NOW, retention=timedelta(minutes=5))
