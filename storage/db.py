"""Engines, sessions and schema migrations.

SQLite (a file next to ``app.yaml``) is the default; PostgreSQL is the same code with another URL.
Nothing here touches the network or the file system until a function is called.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import event, inspect, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DisconnectionError, SQLAlchemyError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry, NullPool

#: How long a SQLite connection waits for the write lock before giving up ("database is locked").
SQLITE_BUSY_TIMEOUT_MS = 5000

#: Alembic's ``context`` is process-global: one migration run at a time per process.
_MIGRATE_LOCK = threading.Lock()

#: Sync or blocking driver names mapped to the async driver of the same database.
_ASYNC_SCHEMES: dict[str, str] = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+pysqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+psycopg2": "postgresql+asyncpg",
    "postgresql+pg8000": "postgresql+asyncpg",
}


def normalise_url(url: str) -> str:
    """Return ``url`` with an async driver.

    ``sqlite:///x.db`` becomes ``sqlite+aiosqlite:///x.db``; ``postgresql://`` and ``postgres://``
    (and the blocking ``+psycopg2``/``+pg8000`` drivers) become ``postgresql+asyncpg://``.
    Any other URL, including one already naming an async driver, is returned unchanged.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError("not a database URL (expected scheme://...)")
    new = _ASYNC_SCHEMES.get(scheme.lower())
    return f"{new}://{rest}" if new else url


def default_sqlite_url(config_path: Path) -> str:
    """The default database: a SQLite file ``handoff.db`` in the directory of ``app.yaml``."""
    db_file = Path(config_path).absolute().parent / "handoff.db"
    return f"sqlite+aiosqlite:///{db_file}"


#: Execution option of engines made with ``bookkeeping=True`` (see :func:`make_engine`).
BOOKKEEPING = "handoff_bookkeeping"
#: Settings of the bookkeeping connections, and of the outbox claim's transaction on other ones:
#: no WAL-flush wait (see ``storage.outbox.relax_durability``), and the claim's plan whatever the
#: statistics say: walk ix_outbox_pending_due in order and stop at the limit. A custom plan per call
#: (the cached generic plan cannot see ``now`` or ``limit``), and no bitmap scan, sort or sequential
#: scan: when the backlog grows faster than autovacuum's ANALYZE notices (a burst on a young table),
#: the planner expected 4 due rows, chose a bitmap scan and sorted all 3,400 of them, 150-480 ms per
#: claim (auto_explain, bench/load.py at 700/s), where the index walk takes < 1 ms. The other
#: bookkeeping statements go by primary key.
BOOKKEEPING_SETTINGS = {"synchronous_commit": "off", "plan_cache_mode": "force_custom_plan", "enable_bitmapscan": "off",
                        "enable_sort": "off", "enable_incremental_sort": "off", "enable_seqscan": "off"}


def make_engine(url: str, *, pool_size: int = 10, bookkeeping: bool = False) -> AsyncEngine:
    """Create the async engine for ``url`` (normalised first).

    ``bookkeeping=True`` (PostgreSQL only; on SQLite it changes nothing): an engine for the outbox
    worker's hot-path records (claims, delivered marks), each of which is one statement. Its
    connections autocommit every statement (no BEGIN and COMMIT round trips), do not wait for the
    WAL flush, carry the claim's planner settings (:data:`BOOKKEEPING_SETTINGS`, set once per
    connection), and are not pinged at checkout: after a database restart the first claim on a dead
    connection fails, is logged and retried, and the pool reconnects. Never for writes an
    acknowledgement depends on, nor for anything that needs two statements in one transaction; see
    :func:`storage.outbox.relax_durability` for why losing such a record is harmless.

    SQLite connections get WAL, a busy timeout and foreign keys, and every transaction starts with
    ``BEGIN IMMEDIATE`` so that it holds the write lock from its first statement: concurrent
    writers queue for up to :data:`SQLITE_BUSY_TIMEOUT_MS` instead of failing mid-transaction, and
    a select followed by an update in one transaction is atomic. Within one process the pool holds
    a single connection: since every transaction takes the file's write lock anyway, more
    connections only move the queue from asyncio (fair, no polling) into SQLite's busy handler
    (sleep-polling: it made p99 latency under a burst reach the 5 s busy timeout). Other processes
    on the same file still queue on the lock.

    PostgreSQL connections are pinged at checkout only when they sat idle in the pool for
    :data:`IDLE_PING_SECONDS` (:func:`_ping_when_idle`), not at every checkout as ``pool_pre_ping``
    does: its ping is three round trips (BEGIN, a query, ROLLBACK) and cost an intake batch about
    0.14 ms of CPU, for connections that under load were used a moment ago.

    Every engine hides statement parameters from its error messages (``hide_parameters``): they
    carry employees' messages and Slack ``response_url`` capabilities, and a failed statement's
    message lands in the logs.
    """
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_async_engine(url, pool_size=1, max_overflow=0, pool_timeout=60, hide_parameters=True)
        _configure_sqlite(engine)
        return engine
    if bookkeeping:
        return create_async_engine(
            url, pool_size=pool_size, max_overflow=pool_size, pool_recycle=1800, isolation_level="AUTOCOMMIT",
            hide_parameters=True,
            connect_args={"server_settings": BOOKKEEPING_SETTINGS}, execution_options={BOOKKEEPING: True},
        )
    engine = create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_recycle=1800, hide_parameters=True)
    _ping_when_idle(engine)
    return engine


#: A pooled PostgreSQL connection idle for longer than this is pinged before it is handed out.
IDLE_PING_SECONDS = 5.0


def _ping_when_idle(engine: AsyncEngine) -> None:
    """Ping connections that sat idle in the pool; a dead one is replaced before anyone uses it.

    What a ping protects is a connection the server closed while nobody used it (a database
    restart, an idle timeout in a proxy): without one, the first request after a quiet spell
    fails. A connection that was in use a moment ago is as fresh as a ping would prove it, and if
    the database dies under load, the first statement that fails invalidates the whole pool
    (SQLAlchemy's disconnect handling): that batch answers 503 and is retried, as with a ping.
    Raising ``DisconnectionError`` at checkout makes the pool connect anew (SQLAlchemy's documented
    pessimistic-disconnect recipe).
    """
    pool = engine.sync_engine.pool
    dialect = engine.sync_engine.dialect

    @event.listens_for(pool, "checkin")
    def _checked_in(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _checkout(dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        since = record.info.get(_IDLE_SINCE)
        if since is None or time.monotonic() - since < IDLE_PING_SECONDS:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:  # any failure means: not usable, connect again
            raise DisconnectionError(f"idle connection failed its ping ({type(exc).__name__})") from exc


_IDLE_SINCE = "handoff_idle_since"


def _configure_sqlite(engine: AsyncEngine) -> None:
    """SQLAlchemy's documented recipe: the driver stops emitting BEGIN, we emit our own."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None  # driver-level autocommit; BEGIN is ours
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded attributes after commit (``expire_on_commit=False``)."""
    return async_sessionmaker(engine, expire_on_commit=False)


def is_postgres(engine: Any) -> bool:
    """True when ``engine`` (sync or async engine or connection) talks to PostgreSQL."""
    return bool(engine.dialect.name == "postgresql")


def _migrations_dir() -> Path:
    import migrations  # the packaged Alembic environment

    return Path(migrations.__file__).resolve().parent


def alembic_config(url: str) -> Any:
    """An Alembic ``Config`` built in code for ``url``; no ``alembic.ini`` is read."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_migrations_dir()))
    cfg.attributes["url"] = normalise_url(url)  # not via the ini option: '%' would need escaping
    return cfg


def upgrade_sync(url: str, revision: str = "head") -> None:
    """Apply the migrations to ``revision`` (blocking).

    Safe to call from a thread that runs an event loop: the work then happens in a helper thread
    (Alembic's async ``env.py`` starts its own loop). Concurrent calls in one process run one
    after the other; concurrent processes are serialised by the database (SQLite's write lock,
    a PostgreSQL advisory lock in ``env.py``).
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        _upgrade_now(url, revision)
        return
    errors: list[BaseException] = []

    def target() -> None:
        try:
            _upgrade_now(url, revision)
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=target, name="handoff-migrate")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


def _upgrade_now(url: str, revision: str) -> None:
    from alembic import command

    with _MIGRATE_LOCK, _sqlite_file_lock(url):
        command.upgrade(alembic_config(url), revision)


@contextlib.contextmanager
def _sqlite_file_lock(url: str) -> Iterator[None]:
    """Processes migrating one SQLite file take turns on a lock file beside it.

    SQLite's own locks already make the upgrade atomic, but a process that connects while another
    holds the file for a long upgrade can fail its first statements ("database is locked") before
    any busy timeout applies; an ``flock`` makes the second process simply wait. SQLite lives on one
    host, so a host-local lock is enough. PostgreSQL uses an advisory lock instead (``env.py``).
    """
    parsed = make_url(url)
    path = parsed.database if parsed.get_backend_name() == "sqlite" else None
    if not path or path == ":memory:" or path.startswith("file:"):
        yield
        return
    with open(f"{path}.migrate-lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


async def upgrade(url: str, revision: str = "head") -> None:
    """Apply the migrations to ``revision`` without blocking the running event loop.

    Every process runs this at start-up, and usually the database is already at the head: one query
    says so, and Alembic is not loaded at all. Loading it (with Mako, and the Pygments lexers Mako
    installs for its error pages) cost each process about 10 MB it kept for its lifetime.
    """
    if revision == "head" and await _at_head(url):
        return
    await asyncio.to_thread(upgrade_sync, url, revision)


def head_revision() -> str:
    """The newest migration's revision. Migrations are numbered (``0001_initial_schema.py``, …) with
    the number as revision and a linear history, so it is the highest number; a test checks this
    against Alembic's own answer."""
    return max(path.name.split("_", 1)[0] for path in (_migrations_dir() / "versions").glob("[0-9]*_*.py"))


async def _at_head(url: str) -> bool:
    """True when the database at ``url`` records exactly :func:`head_revision` as applied. Any doubt
    (no version table yet, another revision, an error) is False: Alembic then decides and reports."""
    engine = create_async_engine(normalise_url(url), poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            # Asked first, so that a new database does not leave an error in the server's log.
            if not await conn.run_sync(lambda sync: inspect(sync).has_table("alembic_version")):
                return False
            applied = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars().all()
    except SQLAlchemyError:
        return False
    finally:
        await engine.dispose()
    return list(applied) == [head_revision()]
