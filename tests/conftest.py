"""Shared fixtures."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from storage.db import make_engine, make_sessionmaker, upgrade
from tests.helpers import pg_execute

T = TypeVar("T")

# --- database fixtures ---------------------------------------------------------------------------
#
# ``db_url`` is parametrised over SQLite (a file in tmp_path, always) and PostgreSQL when
# HANDOFF_TEST_DATABASE_URL is set (e.g. postgresql://postgres@127.0.0.1:5432/test). For
# PostgreSQL the session creates a private database next to the given one (so parallel runs by
# other people do not collide), and each test starts from an empty ``public`` schema.
# ``engine`` / ``sessionmaker`` apply the migrations first.

PG_URL_ENV = "HANDOFF_TEST_DATABASE_URL"


def run_in_thread(make_coro: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion on a private loop in another thread (from sync code)."""
    out: list[Any] = []

    def target() -> None:
        try:
            out.append(("ok", asyncio.run(make_coro())))  # type: ignore[arg-type]
        except BaseException as exc:
            out.append(("err", exc))

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    status, value = out[0]
    if status == "err":
        raise value
    return value  # type: ignore[no-any-return]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "db_url" in metafunc.fixturenames:
        backends = ["sqlite"] + (["postgresql"] if os.environ.get(PG_URL_ENV) else [])
        metafunc.parametrize("db_url", backends, indirect=True)


@pytest.fixture(autouse=True)
def _no_log_handler_outlives_its_test() -> Iterator[None]:
    """``handoff …`` run in-process (``bot.cli.main``) configures the root logger for the whole
    process: a handler on the test's captured stderr, closed when the test ends. Left in place, the
    next test that logs at DEBUG (an aiosqlite thread among others) printed "--- Logging error ---
    I/O operation on closed file" into the suite's output. Remove such handlers and restore the level."""
    from bot.logs import RequestIdFilter

    root = logging.getLogger()
    before, level = set(root.handlers), root.level
    yield
    for handler in root.handlers[:]:
        if handler not in before and any(isinstance(f, RequestIdFilter) for f in handler.filters):
            root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture(scope="session")
def _pg_test_database() -> Iterator[tuple[str, str] | None]:
    """(admin DSN for asyncpg, SQLAlchemy URL) of a private database, or None without PG."""
    base = os.environ.get(PG_URL_ENV)
    if not base:
        yield None
        return
    url = make_url(base)
    name = f"handoff_test_{os.getpid()}_{secrets.token_hex(3)}"
    admin = url.set(drivername="postgresql").render_as_string(hide_password=False)
    run_in_thread(lambda: pg_execute(admin, f'CREATE DATABASE "{name}"'))
    test_url = url.set(drivername="postgresql+asyncpg", database=name)
    dsn = test_url.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        yield dsn, test_url.render_as_string(hide_password=False)
    finally:
        run_in_thread(lambda: pg_execute(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database (no tables yet): SQLite file, or PostgreSQL with a fresh schema."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'handoff.db'}"
    pg = request.getfixturevalue("_pg_test_database")
    dsn, url = pg
    run_in_thread(lambda: pg_execute(dsn, "DROP SCHEMA public CASCADE", "CREATE SCHEMA public"))
    return str(url)


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on a database migrated to head."""
    await upgrade(db_url)
    eng = make_engine(db_url)
    try:
        yield eng
    finally:
        await eng.dispose()


@pytest.fixture
def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return make_sessionmaker(engine)


# --- end of database fixtures --------------------------------------------------------------------
