"""Conversation references: the 0002 migration and upserts by (platform, key), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage import service
from storage.db import make_engine, upgrade
from storage.models import ConversationRef

SM = async_sessionmaker[AsyncSession]
T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
URL = "https://smba.trafficmanager.net/amer/"


async def upsert(sm: SM, key: str, *, conversation: str, now: datetime, kind: str = "user",
                 platform: str = "teams") -> None:
    async with sm.begin() as session:
        await service.upsert_conversation_ref(
            session=session, platform=platform, key=key, kind=kind, service_url=URL, conversation_id=conversation,
            reference={"service_url": URL, "conversation_id": conversation, "bot": {"id": "28:bot"}},
            now=now, tenant_id="tenant-1",
        )


async def test_upsert_inserts_then_replaces(sessionmaker: SM) -> None:
    await upsert(sessionmaker, "user:aad-1", conversation="a:1", now=T0)
    await upsert(sessionmaker, "user:aad-1", conversation="a:2", now=T0 + timedelta(minutes=5))
    await upsert(sessionmaker, "user:aad-1", conversation="a:ignored", now=T0, platform="slack")
    async with sessionmaker() as session:
        ref = await service.get_conversation_ref(session=session, platform="teams", key="user:aad-1")
        assert ref is not None
        assert ref.conversation_id == "a:2" and ref.reference["conversation_id"] == "a:2"
        assert ref.created_at == T0 and ref.updated_at == T0 + timedelta(minutes=5)
        assert ref.tenant_id == "tenant-1" and ref.kind == "user"
        assert await service.get_conversation_ref(session=session, platform="teams", key="user:other") is None
        assert len(await service.list_conversation_refs(session=session)) == 2


async def test_list_filters_and_orders(sessionmaker: SM) -> None:
    await upsert(sessionmaker, "channel:19:a@thread.skype", conversation="19:a@thread.skype", now=T0, kind="channel")
    await upsert(sessionmaker, "user:1", conversation="a:1", now=T0 + timedelta(seconds=1))
    await upsert(sessionmaker, "user:2", conversation="a:2", now=T0 + timedelta(seconds=2))
    async with sessionmaker() as session:
        users = await service.list_conversation_refs(session=session, platform="teams", kind="user")
        assert [r.key for r in users] == ["user:2", "user:1"]
        channels = await service.list_conversation_refs(session=session, kind="channel", limit=5)
        assert [r.key for r in channels] == ["channel:19:a@thread.skype"]


async def test_concurrent_upserts_of_one_key_never_fail(sessionmaker: SM) -> None:
    await asyncio.gather(*(upsert(sessionmaker, "user:race", conversation=f"a:{i}", now=T0) for i in range(8)))
    async with sessionmaker() as session:
        [ref] = await service.list_conversation_refs(session=session)
        assert ref.key == "user:race" and ref.conversation_id.startswith("a:")


async def test_kind_is_checked(sessionmaker: SM) -> None:
    with pytest.raises(ValueError, match="unknown conversation kind"):
        await upsert(sessionmaker, "team:1", conversation="19:x", now=T0, kind="team")
    async with sessionmaker() as session:
        session.add(ConversationRef(platform="teams", key="k", kind="team", service_url=URL, conversation_id="c",
                                    reference={}, created_at=T0, updated_at=T0))
        with pytest.raises(IntegrityError):
            await session.flush()


async def test_migration_0002_up_and_down(db_url: str) -> None:
    from alembic import command

    from storage.db import alembic_config

    await upgrade(db_url)
    engine = make_engine(db_url)
    try:
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
            columns = await conn.run_sync(lambda c: {col["name"] for col in inspect(c).get_columns("conversation_refs")})
        assert "conversation_refs" in tables
        assert {"platform", "key", "kind", "tenant_id", "service_url", "conversation_id", "reference"} <= columns
        await asyncio.to_thread(command.downgrade, alembic_config(db_url), "0001")
        async with engine.connect() as conn:
            assert "conversation_refs" not in await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    finally:
        await engine.dispose()
    await upgrade(db_url)


# --- ConversationBook: how the Teams edge writes them ---------------------------------------------


def _act(user: int, conversation: str, service_url: str = URL) -> Any:
    from bot.teams_cards import parse_activity
    from tests.fakes.bot_connector import personal_message

    person = {"id": f"29:user{user}", "name": f"User {user}", "aadObjectId": f"aad-{user}"}
    return parse_activity(personal_message(service_url, "hi", user=person, conversation_id=conversation))


async def test_conversation_book_writes_in_batches_and_skips_unchanged(sessionmaker: SM) -> None:
    from bot.teams_bot import ConversationBook

    book = ConversationBook(sessionmaker=sessionmaker, clock=lambda: T0, interval=3600)  # flushed by hand here
    for i in range(3):
        book.note(_act(i, f"a:{i}"))
        book.note(_act(i, f"a:{i}"))
    assert await book.flush() == 3
    for i in range(3):
        book.note(_act(i, f"a:{i}"))  # nothing new
    assert await book.flush() == 0
    book.note(_act(1, "a:moved"))
    await book.close()  # writes what is pending
    async with sessionmaker() as session:
        refs = {r.key: r for r in await service.list_conversation_refs(session=session)}
    assert sorted(refs) == ["user:aad-0", "user:aad-1", "user:aad-2"]
    assert refs["user:aad-1"].conversation_id == "a:moved" and refs["user:aad-1"].reference["user"]["id"] == "29:user1"


async def test_conversation_book_keeps_what_failed(sessionmaker: SM, engine: Any) -> None:
    from sqlalchemy import text

    from bot.teams_bot import ConversationBook

    book = ConversationBook(sessionmaker=sessionmaker, clock=lambda: T0, interval=0.01)
    async with engine.begin() as conn:
        await conn.execute(text("ALTER TABLE conversation_refs RENAME TO refs_away"))
    book.note(_act(7, "a:7"))
    with pytest.raises(Exception):
        await book.flush()
    async with engine.begin() as conn:
        await conn.execute(text("ALTER TABLE refs_away RENAME TO conversation_refs"))
    book.note(_act(8, "a:8"))
    for _ in range(200):  # the background writer retries
        async with sessionmaker() as session:
            if len(await service.list_conversation_refs(session=session)) == 2:
                break
        await asyncio.sleep(0.02)
    await book.close()
    async with sessionmaker() as session:
        assert {r.key for r in await service.list_conversation_refs(session=session)} == {"user:aad-7", "user:aad-8"}
