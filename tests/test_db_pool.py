"""storage/db.py: PostgreSQL connections are pinged at checkout only after sitting idle.

A connection the server closed while it sat in the pool is replaced before anyone uses it; one
that was used a moment ago is not pinged (a ping is three round trips). A dead connection used all
the same fails its statement once, and the pool then reconnects by itself.
Runs on PostgreSQL only (``HANDOFF_TEST_DATABASE_URL``).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from storage import db
from tests.conftest import PG_URL_ENV

pytestmark = [pytest.mark.asyncio,
              pytest.mark.skipif(not os.environ.get(PG_URL_ENV), reason=f"PostgreSQL only: set {PG_URL_ENV}")]


@pytest.fixture
async def engine() -> AsyncIterator[AsyncEngine]:
    engine = db.make_engine(os.environ[PG_URL_ENV], pool_size=1)
    try:
        yield engine
    finally:
        await engine.dispose()


async def _backend(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def _kill(pid: int) -> None:
    """Close a backend from outside, as a database restart or a proxy's idle timeout would."""
    admin = await asyncpg.connect(os.environ[PG_URL_ENV].replace("+asyncpg", ""))
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid) is True
    finally:
        await admin.close()


async def test_an_idle_connection_the_server_closed_is_replaced_before_use(
        engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    first = await _backend(engine)
    await _kill(first)
    monkeypatch.setattr(db, "IDLE_PING_SECONDS", 0.0)  # every pooled connection counts as idle
    second = await _backend(engine)  # no error: the ping failed and the pool connected anew
    assert second != first


async def test_a_connection_used_a_moment_ago_is_not_pinged_and_the_pool_recovers_after_one_failure(
        engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db, "IDLE_PING_SECONDS", 3600.0)
    first = await _backend(engine)
    await _kill(first)
    with pytest.raises(DBAPIError) as caught:  # not pinged: the dead connection is handed out
        await _backend(engine)
    assert caught.value.connection_invalidated
    assert await _backend(engine) not in (first, 0)  # the failure invalidated it; the next one works
