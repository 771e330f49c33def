"""storage/: URLs, migrations, and every query against real SQLite (and PostgreSQL if given)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import bindparam, delete, select, text, update
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from storage import service
from storage.db import (
    default_sqlite_url,
    is_postgres,
    make_engine,
    make_sessionmaker,
    normalise_url,
    upgrade,
    upgrade_sync,
)
from storage.models import (
    MAX_ROW_ID,
    Base,
    OutboxRow,
    Ticket,
    UTCDateTime,
    ticket_id_from_key,
    ticket_key,
)

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
SM = async_sessionmaker[AsyncSession]

TICKET_FIELDS = dict(
    platform="slack",
    user_id="U1",
    user_name="Ada",
    channel_id="D1",
    thread_ref="1700000000.1",
    text="outlook keeps crashing",
    route="msp",
    severity="normal",
    queue="msp-general",
    rule_id="office",
    ruleset_version=3,
    why="matched 'outlook'",
    terms=["outlook"],
    redactions=[],
    fail_closed=False,
)


async def new_ticket(session: AsyncSession, **over: object) -> Ticket:
    return await service.create_ticket(session=session, now=NOW, **{**TICKET_FIELDS, **over})


# --- pure helpers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("sqlite:////abs/x.db", "sqlite+aiosqlite:////abs/x.db"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("postgresql://u:p%40ss@h:5432/db", "postgresql+asyncpg://u:p%40ss@h:5432/db"),
        ("postgres://u@h/db?ssl=require", "postgresql+asyncpg://u@h/db?ssl=require"),
        ("postgresql+psycopg2://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
    ],
)
def test_normalise_url(url: str, expected: str) -> None:
    assert normalise_url(url) == expected


def test_normalise_url_refuses_junk() -> None:
    with pytest.raises(ValueError):
        normalise_url("handoff.db")


def test_default_sqlite_url_is_next_to_config(tmp_path: Path) -> None:
    url = default_sqlite_url(tmp_path / "app.yaml")
    assert url == f"sqlite+aiosqlite:///{tmp_path / 'handoff.db'}"


def test_ticket_key_examples() -> None:
    assert ticket_key(42) == "IT-1042"
    assert ticket_id_from_key("IT-1042") == 42
    assert ticket_id_from_key(" it-1001 ") == 1


@pytest.mark.parametrize(
    "junk", ["", "IT-", "IT-abc", "XY-1042", "IT-1000", "IT-999", "IT-1042x", "1042", "IT--5",
             f"IT-{1000 + 2**31}", "IT-999999999999"]  # past an INTEGER id
)
def test_ticket_id_from_key_refuses_junk(junk: str) -> None:
    with pytest.raises(ValueError):
        ticket_id_from_key(junk)


@given(st.integers(min_value=1, max_value=MAX_ROW_ID))
def test_ticket_key_round_trip(ticket_id: int) -> None:
    assert ticket_id_from_key(ticket_key(ticket_id)) == ticket_id


# --- engine and migrations ------------------------------------------------------------------------


async def test_a_failed_statement_s_message_carries_no_parameters(db_url: str) -> None:
    # What a database error logs must not repeat an employee's text or a response_url.
    await upgrade(db_url)
    eng = make_engine(db_url)
    marker = "https://hooks.slack.com/commands/T111/99/SECRETMARKER"
    try:
        async with eng.begin() as conn:
            await conn.execute(text("INSERT INTO inbound_events (platform, event_id, received_at) "
                                    "VALUES ('slack', 'dup', '2026-01-01 00:00:00')"))
        with pytest.raises(IntegrityError) as failed:
            async with eng.begin() as conn:
                await conn.execute(text("INSERT INTO inbound_events (platform, event_id, received_at) "
                                        "VALUES ('slack', 'dup', :at), ('slack', :marker, :at)")
                                   .bindparams(bindparam("at", type_=UTCDateTime())),
                                   {"marker": marker, "at": datetime(2026, 1, 1, tzinfo=UTC)})
        assert "SECRETMARKER" not in str(failed.value) and "parameters hidden" in str(failed.value)
    finally:
        await eng.dispose()


async def test_migrations_match_models(db_url: str) -> None:
    await upgrade(db_url)
    await upgrade(db_url)  # idempotent
    eng = make_engine(db_url)
    try:
        async with eng.connect() as conn:
            diff = await conn.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c), Base.metadata)
            )
            version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
    finally:
        await eng.dispose()
    assert diff == []
    from alembic.script import ScriptDirectory

    from storage.db import alembic_config

    head = ScriptDirectory.from_config(alembic_config(db_url)).get_current_head()
    assert head is not None and version == head


def test_head_revision_is_alembics_head(db_url: str) -> None:
    """The cheap start-up check reads the head from the migration files' numbers; Alembic agrees."""
    from alembic.script import ScriptDirectory

    from storage.db import alembic_config, head_revision

    assert head_revision() == ScriptDirectory.from_config(alembic_config(db_url)).get_current_head()


def test_start_up_on_a_database_at_head_does_not_load_alembic(db_url: str) -> None:
    """A process whose database is at the head checks it with one query; a fresh one migrates."""
    code = ("import asyncio, sys; from storage.db import upgrade; asyncio.run(upgrade(sys.argv[1])); "
            "print('alembic' in sys.modules)")

    def start() -> str:
        done = subprocess.run([sys.executable, "-c", code, db_url], cwd=ROOT, capture_output=True, text=True,
                              timeout=120, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout.strip()

    assert start() == "True"  # a fresh database: Alembic migrates it
    assert start() == "False"  # at the head: not loaded


async def test_upgrade_sync_inside_running_loop(db_url: str) -> None:
    upgrade_sync(db_url)  # a blocking call from a coroutine must not trip over the running loop
    eng = make_engine(db_url)
    try:
        async with make_sessionmaker(eng)() as s:
            assert await service.latest_ruleset(session=s) is None
    finally:
        await eng.dispose()


def test_concurrent_upgrades_in_two_processes(db_url: str) -> None:
    """Two replicas starting at once on a fresh database: both succeed, schema at head."""
    code = "import sys; from storage.db import upgrade_sync; upgrade_sync(sys.argv[1])"
    procs = [
        subprocess.Popen([sys.executable, "-c", code, db_url], cwd=ROOT, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    outcomes = [(p.wait(timeout=120), p.stderr.read().decode()[-2000:]) for p in procs]  # type: ignore[union-attr]
    assert [rc for rc, _ in outcomes] == [0, 0], outcomes
    upgrade_sync(db_url)


def test_concurrent_upgrades_in_threads(db_url: str) -> None:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            upgrade_sync(db_url)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


async def test_sqlite_connection_settings(engine: AsyncEngine) -> None:
    if is_postgres(engine):
        pytest.skip("SQLite pragmas")
    async with engine.connect() as conn:
        assert (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar() == "wal"
        assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 1
        assert (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar() == 5000


async def test_foreign_keys_enforced(sessionmaker: SM) -> None:
    with pytest.raises(IntegrityError):
        async with sessionmaker() as s, s.begin():
            await service.enqueue(
                session=s, kind="msp", payload={}, idempotency_key="k", now=NOW, ticket_id=999
            )


async def test_sqlite_writers_queue_instead_of_failing(
    engine: AsyncEngine, sessionmaker: SM
) -> None:
    """Many concurrent read-then-write transactions: none fails with 'database is locked'."""

    async def bump(i: int) -> None:
        async with sessionmaker() as s, s.begin():
            await service.latest_ruleset(session=s)  # read first: the classic upgrade deadlock
            await asyncio.sleep(0.001)
            await service.audit(
                session=s, actor=f"u{i}", action="x", target="", allowed=True, detail={}, now=NOW
            )

    await asyncio.gather(*(bump(i) for i in range(20)))
    async with sessionmaker() as s:
        assert len(await service.list_audit(session=s, limit=100)) == 20


# --- inbound events -------------------------------------------------------------------------------


async def test_record_inbound_dedupes_without_aborting(sessionmaker: SM) -> None:
    async with sessionmaker() as s, s.begin():
        assert await service.record_inbound(session=s, platform="slack", event_id="Ev1", now=NOW)
        assert not await service.record_inbound(
            session=s, platform="slack", event_id="Ev1", now=NOW
        )
        assert await service.record_inbound(session=s, platform="teams", event_id="Ev1", now=NOW)
        ticket = await new_ticket(s)  # the transaction is still usable after the duplicate
    async with sessionmaker() as s, s.begin():
        assert not await service.record_inbound(
            session=s, platform="slack", event_id="Ev1", now=NOW
        )
        assert await service.get_ticket(session=s, key_or_id=ticket.id) is not None


async def test_record_inbound_race_between_two_engines(db_url: str, engine: AsyncEngine) -> None:
    other = make_engine(db_url)
    try:
        first, second = make_sessionmaker(engine)(), make_sessionmaker(other)()
        async with first, second:
            await first.begin()
            assert await service.record_inbound(
                session=first, platform="slack", event_id="E", now=NOW
            )
            # The second writer must wait for the first transaction rather than see "no row yet".
            racer = asyncio.create_task(
                service.record_inbound(session=second, platform="slack", event_id="E", now=NOW)
            )
            await asyncio.sleep(0.2)
            assert not racer.done()
            await first.commit()
            assert await racer is False
            await second.commit()
    finally:
        await other.dispose()


# --- tickets --------------------------------------------------------------------------------------


async def test_ticket_create_key_and_lookup(sessionmaker: SM) -> None:
    async with sessionmaker() as s, s.begin():
        a = await new_ticket(s)
        b = await new_ticket(s, conversation={"team": "T1", "channel": "D1"})
        assert a.id is not None and b.id == a.id + 1
        assert a.key == f"IT-{1000 + a.id}"
    async with sessionmaker() as s:
        got = await service.get_ticket(session=s, key_or_id=b.key)
        assert got is not None and got.id == b.id
        assert got.status == "open" and got.terms == ["outlook"] and got.fail_closed is False
        assert got.conversation == {"team": "T1", "channel": "D1"}
        assert got.created_at == NOW and got.created_at.tzinfo is not None
        assert (await service.get_ticket(session=s, key_or_id=a.id)).key == a.key  # type: ignore[union-attr]
        assert await service.get_ticket(session=s, key_or_id="IT-9999") is None
        assert await service.get_ticket(session=s, key_or_id="nonsense") is None


async def test_timestamps_are_utc_and_naive_is_refused(sessionmaker: SM) -> None:
    plus_two = timezone(timedelta(hours=2))
    async with sessionmaker() as s, s.begin():
        row = await service.enqueue(
            session=s, kind="msp", payload={}, idempotency_key="k", now=NOW.astimezone(plus_two)
        )
    async with sessionmaker() as s:
        back = await s.get(OutboxRow, row.id)
        assert (
            back is not None
            and back.created_at == NOW
            and back.created_at.utcoffset() == timedelta(0)
        )
    with pytest.raises(Exception, match="naive datetime"):
        async with sessionmaker() as s, s.begin():
            await service.enqueue(
                session=s, kind="msp", payload={}, idempotency_key="n", now=NOW.replace(tzinfo=None)
            )


# --- outbox ---------------------------------------------------------------------------------------


async def enqueue_many(
    sm: SM, specs: list[tuple[int | None, str]], *, now: datetime = NOW
) -> list[int]:
    """Enqueue rows given as (ticket_id, kind); returns their ids in order."""
    async with sm() as s, s.begin():
        ids = []
        for n, (ticket_id, kind) in enumerate(specs):
            row = await service.enqueue(
                session=s,
                kind=kind,
                payload={"n": n},
                idempotency_key=f"{kind}:{n}:{now.isoformat()}",
                now=now,
                ticket_id=ticket_id,
            )
            ids.append(row.id)
        return ids


async def claim(
    sm: SM, *, now: datetime = NOW, limit: int = 10, worker: str = "w1", lease: float = 60
) -> list[int]:
    async with sm() as s, s.begin():
        rows = await service.claim_due(
            session=s, now=now, limit=limit, lease_seconds=lease, worker_id=worker
        )
        return [r.id for r in rows]


async def test_claim_lease_and_expiry(sessionmaker: SM) -> None:
    ids = await enqueue_many(sessionmaker, [(None, "msp")] * 3)
    async with sessionmaker() as s, s.begin():
        later = await service.enqueue(
            session=s,
            kind="msp",
            payload={},
            idempotency_key="later",
            now=NOW + timedelta(minutes=5),
        )
    async with sessionmaker() as s, s.begin():
        rows = await service.claim_due(
            session=s, now=NOW, limit=2, lease_seconds=60, worker_id="w1"
        )
        assert [r.id for r in rows] == ids[:2]  # oldest first, limit honoured
        assert all(
            r.locked_by == "w1" and r.locked_until == NOW + timedelta(seconds=60) for r in rows
        )
    assert await claim(sessionmaker, worker="w2") == [ids[2]]  # leased rows are skipped
    assert await claim(sessionmaker, now=NOW + timedelta(seconds=30)) == []  # not due, leases live
    expired = NOW + timedelta(seconds=61)
    assert await claim(sessionmaker, now=expired, worker="w3") == ids  # leases ran out
    assert later.id not in await claim(sessionmaker, now=NOW + timedelta(minutes=2))


async def test_two_workers_claim_disjoint_rows(
    db_url: str, engine: AsyncEngine, sessionmaker: SM
) -> None:
    ids = await enqueue_many(sessionmaker, [(None, "msp")] * 5)
    other = make_engine(db_url)
    try:
        first, second = sessionmaker(), make_sessionmaker(other)()
        async with first, second:
            await first.begin()
            a = await service.claim_due(
                session=first, now=NOW, limit=3, lease_seconds=60, worker_id="a"
            )
            racer = asyncio.create_task(
                service.claim_due(session=second, now=NOW, limit=5, lease_seconds=60, worker_id="b")
            )
            if is_postgres(engine):
                b = await asyncio.wait_for(racer, 5)  # SKIP LOCKED: no waiting on the first
                await first.commit()
            else:
                await asyncio.sleep(0.1)
                assert not racer.done()  # SQLite: queued behind the first writer
                await first.commit()
                b = await racer
            await second.commit()
    finally:
        await other.dispose()
    got_a, got_b = {r.id for r in a}, {r.id for r in b}
    assert len(got_a) == 3 and got_a.isdisjoint(got_b) and got_a | got_b == set(ids)


async def test_many_workers_claim_each_row_once(db_url: str, sessionmaker: SM) -> None:
    ids = await enqueue_many(sessionmaker, [(None, "msp")] * 40)
    engines = [make_engine(db_url) for _ in range(3)]
    try:

        async def worker(n: int) -> list[int]:
            sm, got = make_sessionmaker(engines[n]), []
            while batch := await claim(sm, limit=3, worker=f"w{n}"):
                got += batch
            return got

        results = await asyncio.gather(*(worker(n) for n in range(3)))
    finally:
        for e in engines:
            await e.dispose()
    claimed = [i for r in results for i in r]
    assert sorted(claimed) == ids  # every row exactly once


async def test_per_ticket_ordering(sessionmaker: SM) -> None:
    async with sessionmaker() as s, s.begin():
        t1, t2 = (await new_ticket(s)).id, (await new_ticket(s)).id
    r1, r2, r3, r4, r5, r6 = await enqueue_many(
        sessionmaker,
        [(t1, "msp"), (t1, "msp"), (t1, "slack.post"), (t2, "msp"), (None, "x"), (None, "x")],
    )
    # r2 waits for the older msp row of the same ticket; other kinds/tickets/no-ticket rows go.
    assert await claim(sessionmaker) == [r1, r3, r4, r5, r6]
    async with sessionmaker() as s, s.begin():
        assert await service.mark_retry(
            session=s, row_id=r1, error="503", next_attempt_at=NOW + timedelta(seconds=30)
        )
    later = NOW + timedelta(minutes=10)  # all leases expired
    assert r2 not in await claim(sessionmaker, now=NOW + timedelta(seconds=10))  # r1 still pending
    async with sessionmaker() as s, s.begin():
        assert await service.mark_delivered(session=s, row_id=r1, now=later, detail="201")
    assert r2 in await claim(sessionmaker, now=later)
    # A dead older row does not block the ticket forever.
    r7, r8 = await enqueue_many(sessionmaker, [(t2, "pager"), (t2, "pager")], now=later)
    async with sessionmaker() as s, s.begin():
        assert await service.mark_dead(session=s, row_id=r7, now=later, error="400")
    assert r8 in await claim(sessionmaker, now=later)


async def test_retry_dead_delivered_transitions(sessionmaker: SM) -> None:
    (rid,) = await enqueue_many(sessionmaker, [(None, "msp")])
    await claim(sessionmaker)
    retry_at = NOW + timedelta(seconds=42)
    async with sessionmaker() as s, s.begin():
        assert await service.mark_retry(
            session=s, row_id=rid, next_attempt_at=retry_at, error="HTTP 503"
        )
    async with sessionmaker() as s:
        row = await s.get(OutboxRow, rid)
        assert row is not None
        assert (row.status, row.attempts, row.next_attempt_at, row.last_error) == (
            "pending",
            1,
            retry_at,
            "HTTP 503",
        )
        assert row.locked_by is None and row.locked_until is None
    assert await claim(sessionmaker, now=retry_at) == [rid]
    async with sessionmaker() as s, s.begin():
        assert await service.mark_delivered(
            session=s, row_id=rid, now=retry_at, detail="HTTP 201", remote_id="T-77"
        )
        assert not await service.mark_retry(
            session=s, row_id=rid, next_attempt_at=retry_at, error="x"
        )
        assert not await service.mark_dead(session=s, row_id=rid, now=retry_at, error="x")
    async with sessionmaker() as s:
        row = await s.get(OutboxRow, rid)
        assert row is not None
        assert (row.status, row.attempts, row.delivered_at, row.remote_id, row.detail) == (
            "delivered",
            2,
            retry_at,
            "T-77",
            "HTTP 201",
        )
    (dead,) = await enqueue_many(sessionmaker, [(None, "pager")], now=retry_at)
    async with sessionmaker() as s, s.begin():
        assert await service.mark_dead(session=s, row_id=dead, now=retry_at, error="HTTP 400")
        assert not await service.mark_dead(session=s, row_id=dead, now=retry_at, error="again")
    assert await claim(sessionmaker, now=retry_at + timedelta(days=1)) == []
    async with sessionmaker() as s:
        row = await s.get(OutboxRow, dead)
        assert row is not None and (row.status, row.last_error, row.dead_at) == (
            "dead",
            "HTTP 400",
            retry_at,
        )


async def test_intake_outbox_insert_takes_rows_with_different_columns(sessionmaker: SM) -> None:
    """One executemany needs the same columns in every row: a column some rows leave out is NULL there."""
    from storage import bulk

    later = NOW + timedelta(hours=4)
    async with sessionmaker() as s, s.begin():
        await bulk.enqueue_many(session=s, now=NOW, rows=[
            {"kind": "msp", "payload": {"n": 1}, "idempotency_key": "k1"},
            {"kind": "sla.check", "payload": {"n": 2}, "idempotency_key": "k2", "next_attempt_at": later},
            {"kind": "internal", "payload": {"n": 3}, "idempotency_key": "k3", "detail": "held back"},
        ])
    async with sessionmaker() as s:
        rows = {r.idempotency_key: r for r in (await s.scalars(select(OutboxRow))).all()}
    assert [(rows[k].status, rows[k].attempts, rows[k].next_attempt_at, rows[k].detail) for k in ("k1", "k2", "k3")] == [
        ("pending", 0, NOW, None), ("pending", 0, later, None), ("pending", 0, NOW, "held back")]
    assert all(r.locked_until is None and r.delivered_at is None and r.dead_at is None for r in rows.values())


async def test_intake_outbox_insert_of_the_usual_columns_stores_each_row_as_given(sessionmaker: SM) -> None:
    """The rows intake writes (one statement over column arrays on PostgreSQL): payloads, tickets, due
    times and keys land in their own row; the defaults are pending, no attempt, created now."""
    from storage import bulk

    later = NOW + timedelta(hours=4)
    async with sessionmaker() as s, s.begin():
        (ticket,) = await bulk.create_tickets(session=s, now=NOW, rows=[{
            "platform": "slack", "user_id": "U1", "text": "printer jams", "route": "msp", "severity": "low",
            "queue": "msp-l1", "rule_id": "printing", "ruleset_version": 1}])
        await bulk.enqueue_many(session=s, now=NOW, rows=[
            {"kind": "msp", "payload": {"id": "IT-1", "nested": {"list": [1, "ü"]}}, "idempotency_key": "u1",
             "ticket_id": ticket},
            {"kind": "sla.check", "payload": {"ticket_id": ticket}, "idempotency_key": "u2", "ticket_id": ticket,
             "next_attempt_at": later},
            {"kind": "admin.alert", "payload": {}, "idempotency_key": "u3"},
        ])
    async with sessionmaker() as s:
        rows = {r.idempotency_key: r for r in (await s.scalars(select(OutboxRow))).all()}
    assert [(rows[k].kind, rows[k].payload, rows[k].ticket_id, rows[k].next_attempt_at) for k in ("u1", "u2", "u3")] == [
        ("msp", {"id": "IT-1", "nested": {"list": [1, "ü"]}}, ticket, NOW),
        ("sla.check", {"ticket_id": ticket}, ticket, later), ("admin.alert", {}, None, NOW)]
    assert all((r.status, r.attempts, r.created_at) == ("pending", 0, NOW) for r in rows.values())

    with pytest.raises((ValueError, StatementError), match="naive datetime"):  # StatementError wraps it on SQLite
        async with sessionmaker() as s, s.begin():
            await bulk.enqueue_many(session=s, now=NOW, rows=[
                {"kind": "msp", "payload": {}, "idempotency_key": "u4", "next_attempt_at": datetime(2030, 1, 1)}])


async def test_delivered_marks_in_one_statement_record_each_row_once(sessionmaker: SM) -> None:
    """The worker's batched marks (one statement over arrays on PostgreSQL): each row its own detail and
    remote id; a row marked again (delivered twice after a lease ran out) keeps its first record."""
    from storage import bulk

    a, b, c = await enqueue_many(sessionmaker, [(None, "msp"), (None, "pager"), (None, "msp")])
    later = NOW + timedelta(seconds=5)
    async with sessionmaker() as s, s.begin():
        await bulk.mark_delivered_many(session=s, now=NOW, deliveries=[(a, "HTTP 201, id T-1", "T-1"), (b, "HTTP 202", None)])
    async with sessionmaker() as s, s.begin():
        await bulk.mark_delivered_many(session=s, now=later, deliveries=[(a, "HTTP 200 (replay)", "T-1b"), (c, "ok", "T-3")])
    async with sessionmaker() as s:
        rows = {r.id: r for r in (await s.scalars(select(OutboxRow))).all()}
    assert [(rows[i].status, rows[i].attempts, rows[i].detail, rows[i].remote_id, rows[i].delivered_at) for i in (a, b, c)] == [
        ("delivered", 1, "HTTP 201, id T-1", "T-1", NOW), ("delivered", 1, "HTTP 202", None, NOW),
        ("delivered", 1, "ok", "T-3", later)]


async def test_duplicate_idempotency_key_is_refused(sessionmaker: SM) -> None:
    with pytest.raises(IntegrityError):
        async with sessionmaker() as s, s.begin():
            await service.enqueue(
                session=s, kind="msp", payload={}, idempotency_key="same", now=NOW
            )
            await service.enqueue(
                session=s, kind="msp", payload={}, idempotency_key="same", now=NOW
            )


async def test_list_outbox_and_stats(sessionmaker: SM) -> None:
    a, b, c = await enqueue_many(sessionmaker, [(None, "msp"), (None, "pager"), (None, "msp")])
    async with sessionmaker() as s, s.begin():
        await service.mark_dead(session=s, row_id=b, now=NOW, error="x")
        await service.mark_delivered(session=s, row_id=c, now=NOW, detail="ok")
        later = await service.enqueue(
            session=s,
            kind="msp",
            payload={"p": [1, "é"]},
            idempotency_key="late",
            now=NOW + timedelta(seconds=10),
        )
    async with sessionmaker() as s:
        assert [r.id for r in await service.list_outbox(session=s)] == [later.id, c, b, a]
        assert [r.id for r in await service.list_outbox(session=s, status="pending")] == [
            later.id,
            a,
        ]
        assert [r.id for r in await service.list_outbox(session=s, kind="msp", limit=2)] == [
            later.id,
            c,
        ]
        assert (await service.list_outbox(session=s, limit=1))[0].payload == {"p": [1, "é"]}
        stats = await service.outbox_stats(session=s, now=NOW + timedelta(seconds=90))
        assert stats == {"pending": 2, "delivered": 1, "dead": 1, "scheduled": 0, "retrying": 0,
                         "oldest_pending_age_seconds": 90.0}
        # a row due later (an SLA check, an escalation step) is scheduled, not a backlog
        await service.enqueue(session=s, kind="sla.check", payload={}, idempotency_key="sla", now=NOW,
                              due=NOW + timedelta(days=2))
        await s.execute(update(OutboxRow).where(OutboxRow.id == a).values(next_attempt_at=NOW + timedelta(seconds=30)))
        stats = await service.outbox_stats(session=s, now=NOW + timedelta(seconds=90))
    assert stats == {"pending": 3, "delivered": 1, "dead": 1, "scheduled": 1, "retrying": 0,
                     "oldest_pending_age_seconds": 80.0}
    async with sessionmaker() as s, s.begin():
        await s.execute(delete(OutboxRow))
        assert (await service.outbox_stats(session=s, now=NOW))["oldest_pending_age_seconds"] == 0.0


async def test_rows_retrying_through_an_outage_are_a_backlog_aged_from_their_first_due_time(sessionmaker: SM) -> None:
    """The MSP answers 503 for 30 minutes: its rows wait between retries, never due for long. They
    are a backlog (``retrying``, not ``scheduled``) whose age grows from when each first became due,
    so an alert on the oldest undelivered row fires. A row scheduled for later and never attempted
    stays out of both; once it fails, it is aged from its own due time, not from when it was written."""
    msp, = await enqueue_many(sessionmaker, [(None, "msp")])
    later = NOW + timedelta(hours=4)
    async with sessionmaker() as s, s.begin():
        sla = (await service.enqueue(session=s, kind="sla.check", payload={}, idempotency_key="sla", now=NOW,
                                     due=later + timedelta(hours=1))).id
        notice = (await service.enqueue(session=s, kind="slack.post", payload={}, idempotency_key="notice", now=NOW,
                                        due=later)).id
    for minutes in (1, 5, 12, 30):  # each failed attempt moves the next one later
        async with sessionmaker() as s, s.begin():
            await service.mark_retry(session=s, row_id=msp, next_attempt_at=NOW + timedelta(minutes=minutes + 2),
                                     error="HTTP 503")
    async with sessionmaker() as s:
        stats = await service.outbox_stats(session=s, now=NOW + timedelta(minutes=30))
    assert (stats["pending"], stats["scheduled"], stats["retrying"]) == (3, 2, 1)
    assert stats["oldest_pending_age_seconds"] == 1800.0

    async with sessionmaker() as s, s.begin():  # the MSP is back; Slack fails the after-hours notice once
        await service.mark_delivered(session=s, row_id=msp, now=later, detail="HTTP 201")
        await service.mark_retry(session=s, row_id=notice, next_attempt_at=later + timedelta(minutes=3), error="HTTP 500")
    async with sessionmaker() as s:
        stats = await service.outbox_stats(session=s, now=later + timedelta(minutes=1))
        rows = {r.id: r for r in await service.list_outbox(session=s)}
    assert (stats["pending"], stats["scheduled"], stats["retrying"]) == (2, 1, 1)
    assert stats["oldest_pending_age_seconds"] == 60.0  # from when it became due, 4 h after it was written
    assert rows[notice].first_due_at == later and rows[sla].first_due_at is None


async def test_migration_0008_leaves_rows_already_retrying_unaged(db_url: str) -> None:
    """A row written days ago, due later, that had failed once before the upgrade: its first due time
    is lost, and its creation time is no stand-in (it would read as a 3-day-old backlog and fire the
    delivery-lag alert at once). Up, down and up again keep the rows."""
    from alembic import command

    from storage.db import alembic_config

    await upgrade(db_url)
    await asyncio.to_thread(command.downgrade, alembic_config(db_url), "0007")
    now = datetime.now(UTC)
    engine = make_engine(db_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text("INSERT INTO outbox (kind, payload, idempotency_key, status, attempts, created_at, next_attempt_at) "
                     "VALUES ('sla.check', '{}', 'sla-old', 'pending', 1, :created, :due)")
                .bindparams(bindparam("created", type_=UTCDateTime()), bindparam("due", type_=UTCDateTime())),
                {"created": now - timedelta(days=3), "due": now + timedelta(minutes=1)},
            )
        await upgrade(db_url)
        async with make_sessionmaker(engine)() as s:
            stats = await service.outbox_stats(session=s, now=now)
            [row] = await service.list_outbox(session=s)
        assert row.first_due_at is None and stats["retrying"] == 1
        assert stats["oldest_pending_age_seconds"] == 0.0
    finally:
        await engine.dispose()


# --- rule sets and audit --------------------------------------------------------------------------


async def test_ruleset_versions(sessionmaker: SM) -> None:
    content = {"rules": [{"id": "default", "route": "internal", "queue": "triage"}]}
    async with sessionmaker() as s, s.begin():
        assert await service.latest_ruleset(session=s) is None
        v1 = await service.save_ruleset(
            session=s,
            content=content,
            content_hash="h1",
            source="file",
            author="app.yaml",
            note="boot",
            now=NOW,
        )
        v2 = await service.save_ruleset(
            session=s,
            content={"rules": []},
            content_hash="h2",
            source="chat",
            author="U9",
            note="edit",
            now=NOW,
        )
        with pytest.raises(ValueError):
            await service.save_ruleset(
                session=s,
                content={},
                content_hash="h",
                source="bogus",
                author="x",
                note="",
                now=NOW,
            )
    assert (v1.version, v2.version) == (1, 2)
    async with sessionmaker() as s:
        latest = await service.latest_ruleset(session=s)
        assert latest is not None and latest.version == 2
        from_file = await service.latest_ruleset_from_source(session=s, source="file")
        assert (
            from_file is not None
            and from_file.content == content
            and from_file.content_hash == "h1"
        )
        assert await service.latest_ruleset_from_source(session=s, source="rollback") is None
        assert [r.version for r in await service.list_rulesets(session=s)] == [2, 1]
        assert (await service.get_ruleset(session=s, version=1)) is not None


async def test_ruleset_version_race_does_not_overwrite(
    db_url: str, engine: AsyncEngine, sessionmaker: SM
) -> None:
    other = make_engine(db_url)
    try:

        async def save(sm: SM, who: str) -> int | None:
            try:
                async with sm() as s, s.begin():
                    v = await service.save_ruleset(
                        session=s,
                        content={"who": who},
                        content_hash=who,
                        source="chat",
                        author=who,
                        note="",
                        now=NOW,
                    )
                    await asyncio.sleep(0.05)
                    return v.version
            except IntegrityError:
                return None

        got = await asyncio.gather(save(sessionmaker, "a"), save(make_sessionmaker(other), "b"))
    finally:
        await other.dispose()
    saved = [v for v in got if v is not None]
    assert len(saved) == len(set(saved))  # never two writers with one number
    async with sessionmaker() as s:
        versions = await service.list_rulesets(session=s)
        assert sorted(v.version for v in versions) == sorted(saved)


async def test_audit_log(sessionmaker: SM) -> None:
    async with sessionmaker() as s, s.begin():
        for i in range(3):
            await service.audit(
                session=s,
                actor=f"U{i}",
                action="rules.apply",
                target="v2",
                allowed=i != 1,
                detail={"i": i},
                now=NOW + timedelta(seconds=i),
            )
    async with sessionmaker() as s:
        entries = await service.list_audit(session=s, limit=2)
    assert [(e.actor, e.allowed, e.detail) for e in entries] == [
        ("U2", True, {"i": 2}),
        ("U1", False, {"i": 1}),
    ]
    assert entries[0].at == NOW + timedelta(seconds=2)


async def test_ticket_numbers_are_not_reused(sessionmaker: SM) -> None:
    async with sessionmaker() as s, s.begin():
        first = await new_ticket(s)
        await s.delete(first)
    async with sessionmaker() as s, s.begin():
        second = await new_ticket(s)
    assert second.id > first.id
    async with sessionmaker() as s:
        assert (await s.scalars(select(Ticket.id))).all() == [second.id]


async def test_bookkeeping_engine_skips_the_wal_flush_and_nothing_else_does(db_url: str, engine: AsyncEngine) -> None:
    """The worker's engine commits without waiting for the WAL flush; the intake's stays durable."""
    if not is_postgres(engine):
        pytest.skip("a PostgreSQL setting")
    books = make_engine(db_url, pool_size=1, bookkeeping=True)
    try:
        async with books.connect() as conn:
            assert (await conn.exec_driver_sql("SHOW synchronous_commit")).scalar() == "off"
        async with engine.connect() as conn:
            assert (await conn.exec_driver_sql("SHOW synchronous_commit")).scalar() == "on"
    finally:
        await books.dispose()


async def test_queue_tables_are_vacuumed_often(engine: AsyncEngine) -> None:
    if not is_postgres(engine):
        pytest.skip("PostgreSQL storage parameters")
    async with engine.connect() as conn:
        options = dict((await conn.execute(text(
            "SELECT relname, array_to_string(reloptions, ',') FROM pg_class WHERE relname IN ('outbox', 'inbound_events', 'tickets')"
        ))).all())
    assert "autovacuum_analyze_scale_factor=0.02" in (options["outbox"] or "")
    assert "autovacuum_vacuum_scale_factor=0.02" in (options["inbound_events"] or "")
    assert options["tickets"] is None  # only the queue tables


async def test_claim_walks_the_due_index_even_on_stale_statistics(sessionmaker: SM, engine: AsyncEngine) -> None:
    """A burst on a young table: the planner's statistics say the outbox is empty, 3,000 rows are due.

    Left to its estimate, PostgreSQL chose a bitmap scan and sorted every due row (150-480 ms per
    claim under load); the claim's settings leave it only the ordered walk of ix_outbox_pending_due.
    """
    if not is_postgres(engine):
        pytest.skip("a PostgreSQL plan")
    from storage.outbox import _CLAIM_SETTINGS, claim_params, claim_statement

    insert = ("INSERT INTO outbox (kind, payload, idempotency_key, status, attempts, created_at, next_attempt_at) "
              "SELECT 'msp', '{}', :prefix || g, :status, 0, :at, :at FROM generate_series(1, :n) g")
    async with sessionmaker() as s, s.begin():  # a quiet day: everything delivered, statistics say so
        await s.execute(text("ALTER TABLE outbox SET (autovacuum_enabled = false)"))
        await s.execute(text(insert), {"prefix": "old", "status": "delivered", "at": NOW - timedelta(hours=1), "n": 5000})
        await s.execute(text(insert), {"prefix": "few", "status": "pending", "at": NOW - timedelta(hours=1), "n": 3})
    async with sessionmaker() as s, s.begin():
        await s.execute(text("ANALYZE outbox"))
    async with sessionmaker() as s, s.begin():  # then a burst
        await s.execute(text(insert), {"prefix": "new", "status": "pending", "at": NOW, "n": 3000})
    params = claim_params(now=NOW, limit=20, lease_seconds=60, worker_id="w")
    async with sessionmaker() as s, s.begin():
        conn = await s.connection()
        compiled = claim_statement("postgresql").compile(dialect=conn.dialect)
        values = compiled.construct_params(params)
        await conn.execute(_CLAIM_SETTINGS)
        explained = await conn.exec_driver_sql(f"EXPLAIN (ANALYZE, COSTS OFF) {compiled.string}",
                                               tuple(values[name] for name in compiled.positiontup or ()))
        plan = "\n".join(explained.scalars())
        await s.rollback()  # EXPLAIN ANALYZE ran the claim
    assert "Index Scan using ix_outbox_pending_due" in plan, plan
    assert "Sort" not in plan and "Bitmap" not in plan and "Seq Scan" not in plan, plan
    assert plan.startswith("Update on outbox") and "rows=20 loops=1" in plan.split("\n")[0], plan  # the limit held
