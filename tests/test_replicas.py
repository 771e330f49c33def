"""Three real ``handoff serve`` processes on one PostgreSQL database (issue 6, "scale out").

The replicas are the CLI in separate processes, configured by environment variables and the
shipped ``app.yaml``; Slack, the MSP and PagerDuty are loopback fakes in this process. The tests
show that what must be shared is shared through the database: inbound dedupe (a Slack retry on
another replica is still one ticket), outbox claims (``FOR UPDATE SKIP LOCKED``: each row
delivered once, by one worker), and rule versions (published on one replica, used by the others).

PostgreSQL only (``HANDOFF_TEST_DATABASE_URL``): several replicas on one SQLite file is not a
supported deployment. The replicas start once per module; each test uses its own event ids.

Replicas starting together on an empty database store the rules of ``app.yaml`` once (they queue on
an advisory lock, ``storage.service.lock_rulesets``); the first two tests show it.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import time
import zlib
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import aiohttp
import pytest
import pytest_asyncio

from tests.helpers import command_body, signed_headers
from tests.pg_cluster import private_database
from tests.replica_db import Snapshot, snapshot, wait_drained
from tests.replica_harness import (
    ADMIN,
    Fakes,
    Replica,
    start_all,
    write_config,
)
from tests.replica_traffic import (
    PAGE_TEXT,
    Event,
    count_msp,
    make_events,
    marker,
    post_event,
    storm_order,
)

PG_ENV = "HANDOFF_TEST_DATABASE_URL"
pytestmark = pytest.mark.asyncio(loop_scope="module")
DELIVERED_KINDS = ("msp", "pagerduty", "slack.post")
_TRIGGERS = itertools.count(1)


@dataclass
class Cluster:
    fakes: Fakes
    replicas: list[Replica]
    url: str
    http: aiohttp.ClientSession
    start_seconds: list[float]
    start_error: str | None

    async def drained(self, timeout: float = 30.0) -> Snapshot:
        snap = await wait_drained(self.url, DELIVERED_KINDS, timeout)
        assert snap.pending(*DELIVERED_KINDS) == 0, "deliveries still pending after the wait"
        return snap


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    if not os.environ.get(PG_ENV):
        pytest.skip(f"{PG_ENV} not set: replicas share a PostgreSQL database")
    tmp: Path = tmp_path_factory.mktemp("replicas")
    config = write_config(tmp)  # the shipped settings, unchanged
    async with Fakes() as fakes, private_database(os.environ[PG_ENV]) as url, aiohttp.ClientSession() as http:
        group = [Replica(f"replica-{i}", config, url, fakes.env(), tmp) for i in range(3)]
        error = None
        try:
            try:
                seconds = await start_all(group)  # at the same moment, on an empty database
            except (RuntimeError, TimeoutError) as exc:
                error, seconds = str(exc), []
                for r in group:  # keep the other tests meaningful: start what died, one by one
                    if not r.alive():
                        await r.start()
            yield Cluster(fakes, group, url, http, seconds, error)
        finally:
            for r in group:
                r.stop()


def _mine(snap: Snapshot, prefix: str) -> dict[str, list[dict[str, Any]]]:
    """Tickets of this test's events, by event id."""
    out: dict[str, list[dict[str, Any]]] = {}
    for t in snap.tickets:
        m = marker(t["text"])
        if m and m.startswith(f"Ev{prefix}"):
            out.setdefault(m, []).append(t)
    return out


def _check_once_each(cluster: Cluster, snap: Snapshot, events: list[Event], prefix: str) -> None:
    """One ticket, one inbound id, one MSP ticket (or page), one request per key for every event."""
    tickets = _mine(snap, prefix)
    assert {e.event_id: len(tickets.get(e.event_id, [])) for e in events} == {e.event_id: 1 for e in events}
    assert sorted(i for i in snap.inbound if i.startswith(f"Ev{prefix}")) == sorted(e.event_id for e in events)
    msp = count_msp(cluster.fakes.msp.requests, cluster.fakes.msp.tickets.values())
    to_msp = [e.event_id for e in events if not e.critical]
    assert {m: msp.tickets_per_event[m] for m in to_msp} == dict.fromkeys(to_msp, 1)
    keys = {r["idempotency_key"] for r in snap.rows("msp") if r["ticket_id"] in
            {t[0]["id"] for t in tickets.values()}}
    assert len(keys) == len(to_msp)
    assert {k: msp.requests_per_key[k] for k in keys} == dict.fromkeys(keys, 1)  # no fault: not even a replay
    # Critical texts open or join an incident (storm control): its trigger reaches PagerDuty once.
    incidents = {t[0]["incident_id"] for m, t in tickets.items() if m in {e.event_id for e in events if e.critical}}
    assert None not in incidents
    dedup = {i["dedup_key"] for i in snap.incidents if i["id"] in incidents}
    triggers = Counter(e["dedup_key"] for e in cluster.fakes.pd.accepted
                       if e["event_action"] == "trigger" and e["dedup_key"] in dedup)
    assert triggers == Counter(dict.fromkeys(dedup, 1))
    print(f"\n{prefix}: {len(events)} events -> {sum(len(v) for v in tickets.values())} tickets, "
          f"{len(keys)} MSP rows, {sum(msp.requests_per_key[k] for k in keys)} MSP requests, "
          f"{sum(e.critical for e in events)} critical events -> {len(incidents)} incident(s), "
          f"{sum(triggers.values())} page(s)")


async def test_replicas_storing_the_file_rules_at_the_same_moment_all_succeed(db_url: str) -> None:
    """What each replica does at start-up (after the migrations), three at once: deterministic."""
    from datetime import UTC, datetime

    from bot.config import load_settings
    from handlers.rules_state import ActiveRules
    from storage.db import make_engine, make_sessionmaker, upgrade

    routing = load_settings(env={}, path=Path(__file__).resolve().parent.parent / "app.yaml").routing
    await upgrade(db_url)
    engines = [make_engine(db_url, pool_size=2) for _ in range(3)]
    try:
        starts = [ActiveRules(sessionmaker=make_sessionmaker(e), clock=lambda: datetime.now(UTC)) for e in engines]
        results = await asyncio.gather(*(r.sync_from_file(routing) for r in starts), return_exceptions=True)
    finally:
        for e in engines:
            await e.dispose()
    assert [type(r).__name__ for r in results] == ["Classifier"] * 3
    assert {r.version for r in starts} == {1}


async def test_three_replicas_start_together_on_one_empty_database(cluster: Cluster) -> None:
    assert cluster.start_error is None, cluster.start_error
    assert all(r.alive() for r in cluster.replicas)
    snap = await snapshot(cluster.url)
    assert snap.versions == [1]  # the rules of app.yaml stored once, not once per replica
    print(f"\nready after {', '.join(f'{s:.1f}' for s in cluster.start_seconds)} s")


async def test_the_same_event_on_every_replica_at_once_is_one_ticket_and_one_delivery(cluster: Cluster) -> None:
    [event] = make_events(1, prefix="SAME")
    statuses = await asyncio.gather(*(post_event(cluster.http, r.events_url, event) for r in cluster.replicas))
    assert statuses == [200, 200, 200]
    for n, r in enumerate(reversed(cluster.replicas), 1):  # and Slack's later retries, each elsewhere
        assert await post_event(cluster.http, r.events_url, event, retry=n) == 200
    _check_once_each(cluster, await cluster.drained(), [event], "SAME")


async def test_a_retry_storm_across_replicas_out_of_order_is_one_ticket_per_event(cluster: Cluster) -> None:
    events = make_events(45, prefix="STORM", page_every=9)
    rng = random.Random(6)
    sends = storm_order(events, 3, rng)
    seen: dict[str, int] = {}
    order: list[tuple[Event, Replica, int]] = []
    for e in sends:  # each copy of an event on another replica
        n = seen[e.event_id] = seen.get(e.event_id, -1) + 1
        order.append((e, cluster.replicas[(zlib.crc32(e.event_id.encode()) + n) % 3], n))
    limit = asyncio.Semaphore(24)

    async def send(item: tuple[Event, Replica, int]) -> int:
        e, r, n = item
        async with limit:
            return await post_event(cluster.http, r.events_url, e, retry=n)

    statuses = await asyncio.gather(*(send(i) for i in order))
    assert statuses.count(200) == len(order) == 135
    _check_once_each(cluster, await cluster.drained(), events, "STORM")


async def test_events_spread_over_replicas_are_claimed_by_one_worker_and_delivered_once(cluster: Cluster) -> None:
    """Every worker claims, no row is ever claimed by two (SKIP LOCKED), each key reaches the MSP once."""
    from sqlalchemy import text

    from storage.db import make_engine

    events = make_events(90, prefix="SPREAD")
    cluster.fakes.msp.delay_next(90, 0.1)  # a PSA that takes 100 ms: claims stay visible for a while
    claims: dict[int, set[str]] = {}
    stop = asyncio.Event()
    engine = make_engine(cluster.url, pool_size=1)

    async def sample() -> None:
        async with engine.connect() as conn:
            while not stop.is_set():
                rows = await conn.execute(text(
                    "SELECT id, locked_by FROM outbox WHERE kind = 'msp' AND locked_by IS NOT NULL"))
                for row_id, by in rows:
                    claims.setdefault(row_id, set()).add(by)
                await conn.commit()
                await asyncio.sleep(0.01)

    sampler = asyncio.ensure_future(sample())
    try:
        statuses = await asyncio.gather(*(post_event(cluster.http, cluster.replicas[i % 3].events_url, e)
                                          for i, e in enumerate(events)))
        assert statuses == [200] * len(events)
        snap = await cluster.drained()
    finally:
        stop.set()
        await sampler
        await engine.dispose()
    workers = set().union(*claims.values())
    pids = {int(w.rsplit(":", 1)[1]) for w in workers}
    print(f"\nclaims seen on {len(claims)} MSP rows, by {len(workers)} workers (pids {sorted(pids)})")
    assert len(claims) >= 30, "the sampler saw too few claims to say anything"
    assert len(pids) >= 2 and pids <= {r.pid for r in cluster.replicas}
    assert [row for row, by in claims.items() if len(by) > 1] == []
    _check_once_each(cluster, snap, events, "SPREAD")


async def _slash(cluster: Cluster, replica: Replica, text: str) -> str:
    form = dict(parse_qsl(command_body(text, trigger_id=f"trig.{next(_TRIGGERS)}.h5"), keep_blank_values=True))
    form.update(user_id=ADMIN, user_name="admin")
    body = urlencode(form)
    headers = signed_headers(body, content_type="application/x-www-form-urlencoded")
    async with cluster.http.post(replica.events_url, data=body, headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        return str((await resp.json())["text"])


async def _ticket_of(cluster: Cluster, event: Event) -> dict[str, Any]:
    for t in (await snapshot(cluster.url)).tickets:
        if marker(t["text"]) == event.event_id:
            return t
    raise AssertionError(f"no ticket for {event.event_id}")


async def test_a_rule_published_on_one_replica_is_used_by_the_others_within_seconds(cluster: Cluster) -> None:
    a, others = cluster.replicas[0], cluster.replicas[1:]
    n = itertools.count()

    def zebra() -> Event:
        eid = f"EvRULE{next(n):06d}"
        return Event(eid, f"the zebra keyboard squeaks (ref {eid})")

    before = zebra()
    assert await post_event(cluster.http, others[0].events_url, before) == 200
    assert (await _ticket_of(cluster, before))["rule_id"] == "hardware"
    added = await _slash(cluster, a, 'rules add zebra-keyboards --route internal --any "zebra keyboard" --before hardware')
    assert "Draft: added `zebra-keyboards`" in added
    version = max((await snapshot(cluster.url)).versions) + 1  # 2, unless the start-up race made one more
    published = await _slash(cluster, a, 'rules publish --confirm --note "replica test"')
    assert f"Published *v{version}*" in published
    t0 = time.monotonic()
    followed: dict[str, float] = {}
    while len(followed) < len(others) and time.monotonic() - t0 < 10:
        for r in others:
            if r.name in followed:
                continue
            e = zebra()
            assert await post_event(cluster.http, r.events_url, e) == 200
            t = await _ticket_of(cluster, e)
            if (t["rule_id"], t["ruleset_version"]) == ("zebra-keyboards", version):
                followed[r.name] = time.monotonic() - t0
        await asyncio.sleep(0.1)
    print(f"\nnew version used by the other replicas after {followed} s (watch interval 2 s)")
    assert set(followed) == {r.name for r in others}
    assert max(followed.values()) <= 5.0


async def test_a_page_opened_on_one_replica_is_acknowledged_and_resolved_from_the_others(cluster: Cluster) -> None:
    a, b, c = cluster.replicas[:3]
    event = Event("EvONCALL000001", f"{PAGE_TEXT} (ref EvONCALL000001)", True)
    assert await post_event(cluster.http, a.events_url, event) == 200
    ticket = await _ticket_of(cluster, event)
    key = f"IT-{1000 + int(ticket['id'])}"
    acked = await _slash(cluster, b, f"ack {key}")  # incident state is shared through the database
    assert "acknowledged" in acked.lower(), acked
    resolved = await _slash(cluster, c, f"resolve {key}")
    assert "resolved" in resolved.lower(), resolved
    again = await _slash(cluster, a, f"ack {key}")
    assert "already resolved" in again.lower(), again
