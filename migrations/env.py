"""Alembic environment (async engine, migrations run through ``run_sync``).

The database URL comes from ``config.attributes["url"]`` (set by ``storage.db.alembic_config``),
else ``-x url=...`` on the command line, else ``sqlalchemy.url`` in the ini file.
"""

from __future__ import annotations

import asyncio
from logging.config import fileConfig
from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import text
from sqlalchemy.engine import Connection

from storage.db import is_postgres, make_engine, normalise_url
from storage.models import Base, UTCDateTime

#: Serialises concurrent upgrades by several replicas sharing one PostgreSQL database.
_PG_MIGRATION_LOCK = 0x68616E64  # "hand"

config = context.config
target_metadata = Base.metadata

if config.config_file_name is not None and not config.attributes.get("url"):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _url() -> str:
    url = config.attributes.get("url") or context.get_x_argument(as_dictionary=True).get("url")
    url = url or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL: use storage.db.upgrade(url) or -x url=...")
    return normalise_url(url)


def _render_item(type_: str, obj: Any, _autogen_context: AutogenContext) -> str | Literal[False]:
    """Autogenerate writes plain ``sa`` types: a revision must not import the live models."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


#: How long a migrating SQLite connection waits for another process's upgrade to finish.
MIGRATION_BUSY_TIMEOUT_MS = 120_000


def _configure(**kwargs: object) -> None:
    context.configure(
        target_metadata=target_metadata,
        compare_type=True,
        render_item=_render_item,
        render_as_batch=_url().startswith("sqlite"),  # SQLite ALTERs via table copy
        **kwargs,  # type: ignore[arg-type]
    )


def run_migrations_offline() -> None:
    """``alembic upgrade --sql``: emit SQL instead of running it."""
    _configure(url=_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def _do_run_migrations(connection: Connection) -> None:
    # One transaction for the whole upgrade, on SQLite too (our engine emits BEGIN IMMEDIATE):
    # the version check and the DDL are atomic, so concurrent starts cannot both migrate.
    _configure(connection=connection, transactional_ddl=True)
    if connection.dialect.name == "sqlite":
        # Another process may hold the write lock for a whole upgrade (table copies included), far
        # longer than a request's wait; a starting replica should queue behind it, not fail.
        # On the DBAPI connection, so it applies before SQLAlchemy's BEGIN IMMEDIATE waits for the lock.
        cursor = connection.connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {MIGRATION_BUSY_TIMEOUT_MS}")
        finally:
            cursor.close()
    with context.begin_transaction():
        if is_postgres(connection):
            # Transaction-scoped: a second replica waits here, then finds the schema at head.
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
        context.run_migrations()


async def _run_async_migrations() -> None:
    engine = make_engine(_url(), pool_size=1)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_do_run_migrations)
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    asyncio.run(_run_async_migrations())


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
