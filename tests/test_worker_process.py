"""The web + worker split: ``handoff serve --no-worker`` takes the requests, ``handoff worker`` delivers.

Both are real CLI processes (``tests/replica_harness.py``) on one database (a SQLite file, and
PostgreSQL when ``HANDOFF_TEST_DATABASE_URL`` is set), configured by environment variables and a
temporary ``app.yaml``; the MSP, PagerDuty and the Slack Web API are loopback fakes in this process.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import time
from pathlib import Path

import aiohttp
import pytest

from tests.replica_db import snapshot
from tests.replica_harness import Fakes, Replica, Worker, write_config
from tests.replica_traffic import Event, marker, post_event

pytestmark = pytest.mark.asyncio


async def _readyz(http: aiohttp.ClientSession, replica: Replica) -> tuple[int, dict[str, object]]:
    async with http.get(replica.url + "/readyz") as resp:
        return resp.status, await resp.json()


async def _msp_markers(fakes: Fakes, want: str, timeout: float) -> float | None:
    """Seconds until the fake MSP received the ticket marked ``want``; None if it did not in time."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if any(marker((r.json or {}).get("text") if isinstance(r.json, dict) else None) == want
               for r in fakes.msp.requests):
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    return None


async def test_serve_without_worker_and_a_worker_process_deliver(db_url: str, tmp_path: Path) -> None:
    config = write_config(tmp_path)  # the shipped app.yaml: delivery.worker is in-process, the flag overrides it
    async with Fakes() as fakes, aiohttp.ClientSession() as http:
        web = Replica("web", config, db_url, fakes.env(), tmp_path, command=("serve", "--no-worker"))
        worker = Worker("worker", config, db_url, fakes.env(), tmp_path)
        try:
            await web.start()
            status, body = await _readyz(http, web)
            assert status == 200, body
            assert body["ok"] is True
            assert body["checks"] == {"database": "ok", "worker": "separate"}

            # Without a worker anywhere the row is stored, acknowledged and not delivered.
            first = Event("EvSplitFirst01", "outlook keeps crashing on start (ref EvSplitFirst01)")
            assert await post_event(http, web.events_url, first) == 200
            assert await _msp_markers(fakes, "EvSplitFirst01", timeout=1.5) is None  # in-process poll is 0.5 s
            snap = await snapshot(db_url)
            assert [r["status"] for r in snap.rows("msp")] == ["pending"]

            await worker.start()
            # The shipped delivery.separate_worker_nice: the worker yields the CPU to `serve`.
            nice = max(10, os.getpriority(os.PRIO_PROCESS, 0))  # never below the runner's own
            assert os.getpriority(os.PRIO_PROCESS, worker.pid) == nice
            assert os.getpriority(os.PRIO_PROCESS, web.pid) == os.getpriority(os.PRIO_PROCESS, 0)
            assert f"nice {nice})" in worker.log_text()
            assert await _msp_markers(fakes, "EvSplitFirst01", timeout=15) is not None, worker.tail()
            # Intake cannot wake the other process: the worker's short poll bounds the delay.
            second = Event("EvSplitSecond1", "my laptop battery drains in an hour (ref EvSplitSecond1)")
            assert await post_event(http, web.events_url, second) == 200
            lag = await _msp_markers(fakes, "EvSplitSecond1", timeout=15)
            assert lag is not None and lag < 2.0, (lag, worker.tail())
            snap = await snapshot(db_url)
            assert sorted(r["status"] for r in snap.rows("msp")) == ["delivered", "delivered"]
            assert len(fakes.msp.requests) == 2  # once each: the web process never delivered
            assert (await _readyz(http, web))[0] == 200

            worker.kill(signal.SIGTERM)
            assert worker.proc is not None and worker.proc.returncode == 0, worker.tail()
            assert "stopped" in worker.log_text().splitlines()[-1], worker.tail()
            assert "Traceback" not in worker.log_text() + web.log_text()
        finally:
            worker.stop()
            web.stop()


async def test_app_yaml_delivery_worker_separate_is_reported_by_readyz(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"delivery": {"worker": "separate"}})
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'handoff.db'}"
    async with Fakes() as fakes, aiohttp.ClientSession() as http:
        web = Replica("web", config, db_url, fakes.env(), tmp_path)
        try:
            await web.start()
            status, body = await _readyz(http, web)
            assert (status, body["checks"]) == (200, {"database": "ok", "worker": "separate"})
            assert "outbox worker: separate" in web.log_text()
        finally:
            web.stop()


async def test_worker_nice_zero_leaves_the_priority_alone(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"delivery": {"separate_worker_nice": 0}})
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'handoff.db'}"
    async with Fakes() as fakes:
        worker = Worker("worker", config, db_url, fakes.env(), tmp_path)
        try:
            await worker.start()
            assert os.getpriority(os.PRIO_PROCESS, worker.pid) == os.getpriority(os.PRIO_PROCESS, 0)
            # A worker classifies nothing: it leaves app.yaml's rules to `serve` (and their memory).
            with sqlite3.connect(tmp_path / "handoff.db") as db:
                assert db.execute("SELECT count(*) FROM ruleset_versions").fetchone() == (0,)
        finally:
            worker.stop()
