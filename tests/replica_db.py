"""What the replicas wrote to their shared database, read back for the checks of the replica runs."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Snapshot:
    """Rows of the shared database, as plain dicts."""

    tickets: list[dict[str, Any]]
    outbox: list[dict[str, Any]]
    inbound: list[str]
    versions: list[int]
    incidents: list[dict[str, Any]]

    def rows(self, *kinds: str, status: str | None = None) -> list[dict[str, Any]]:
        return [r for r in self.outbox if r["kind"] in kinds and (status is None or r["status"] == status)]

    def pending(self, *kinds: str) -> int:
        """Rows of ``kinds`` still pending (waiting for a retry included)."""
        return len(self.rows(*kinds, status="pending"))


async def snapshot(database_url: str) -> Snapshot:
    """Read tickets, outbox rows, inbound event ids, rule versions and incidents (own short-lived engine)."""
    from sqlalchemy import select

    from storage.db import make_engine
    from storage.models import InboundEvent, Incident, OutboxRow, RulesetVersion, Ticket

    engine = make_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            t = Ticket.__table__
            o = OutboxRow.__table__
            tickets = [dict(r._mapping) for r in await conn.execute(
                select(t.c.id, t.c.text, t.c.route, t.c.rule_id, t.c.ruleset_version, t.c.incident_id)
                .order_by(t.c.id))]
            outbox = [dict(r._mapping) for r in await conn.execute(
                select(o.c.id, o.c.ticket_id, o.c.kind, o.c.status, o.c.idempotency_key, o.c.attempts,
                       o.c.payload, o.c.next_attempt_at, o.c.locked_by, o.c.last_error).order_by(o.c.id))]
            inbound = list((await conn.execute(select(InboundEvent.__table__.c.event_id))).scalars())
            versions = list((await conn.execute(
                select(RulesetVersion.__table__.c.version).order_by(RulesetVersion.__table__.c.version))).scalars())
            i = Incident.__table__
            incidents = [dict(r._mapping) for r in await conn.execute(
                select(i.c.id, i.c.dedup_key, i.c.reports, i.c.pager).order_by(i.c.id))]
    finally:
        await engine.dispose()
    return Snapshot(tickets, outbox, inbound, versions, incidents)


async def wait_drained(database_url: str, kinds: tuple[str, ...], timeout: float) -> Snapshot:
    """Poll until no row of ``kinds`` is pending (or ``timeout``); the last snapshot."""
    deadline = time.monotonic() + timeout
    snap = await snapshot(database_url)
    while snap.pending(*kinds) and time.monotonic() < deadline:
        await asyncio.sleep(0.25)
        snap = await snapshot(database_url)
    return snap
