"""Faults under load, with real ``handoff serve`` processes (issue 6, "Faults"); reduced sizes.

* kill -9 of replicas at random moments, each restarted: every acknowledged event is exactly one
  ticket at the fake MSP (or part of exactly one page), none lost, none doubled;
* the MSP answers 500, then 429 with Retry-After, then hangs past the connector timeout, then
  recovers: everything delivered, in order per ticket, once; dead letters exactly for the 4xx,
  each reported to admins;
* PostgreSQL (a private throwaway cluster, never the shared one) stopped and restarted under
  load: clean 503s meanwhile, nothing acknowledged lost, the replica recovers by itself.

Each test prints what it counted. ``bench/faults.py`` runs the same scenarios bigger.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.pg_cluster import PrivateCluster, private_database
from tests.scenario_crash import kill9_run, pg_restart_run
from tests.scenario_msp import msp_outage_run

PG_ENV = "HANDOFF_TEST_DATABASE_URL"
needs_pg = pytest.mark.skipif(not os.environ.get(PG_ENV), reason=f"{PG_ENV} not set: replicas share PostgreSQL")


@needs_pg
async def test_kill_9_of_replicas_under_load_loses_nothing_and_doubles_nothing(tmp_path: Path) -> None:
    async with private_database(os.environ[PG_ENV], label="kill") as url:
        report = await kill9_run(url, tmp_path, replicas=2, events=240, rate=40.0, kills=3, seed=7)
    print("\n" + "\n".join(report.lines()))
    assert report.faults  # at least one kill happened (a planned one is skipped while no replica is up)
    assert report.acked == report.events == 240
    assert report.lost == [] and report.doubled == []
    assert report.pending_after == 0 and report.server_errors == 0
    assert report.msp_tickets == report.msp_distinct_keys  # every key delivered made one ticket, no more


async def test_msp_500_then_429_then_hang_then_recovery(db_url: str, tmp_path: Path) -> None:
    replicas = 2 if db_url.startswith("postgresql") else 1  # several replicas: PostgreSQL only
    report = await msp_outage_run(db_url, tmp_path, replicas=replicas, events=30)
    print("\n" + "\n".join(report.lines()))
    assert report.problems == []
    assert report.acked == report.events and report.max_ack_seconds < 1.0  # the MSP is not on the ack path
    assert report.dead == report.rejected_rows == report.alerts_posted == 2
    assert report.followups == 15 and report.msp_tickets == 26


@needs_pg
@pytest.mark.skipif(PrivateCluster.unavailable_reason() is not None,
                    reason=f"no private PostgreSQL cluster here: {PrivateCluster.unavailable_reason()}")
async def test_postgres_restart_under_load_answers_503_and_loses_nothing(tmp_path: Path) -> None:
    report = await pg_restart_run(tmp_path, events=200, rate=40.0, down=2.0, mode="fast")
    print("\n" + "\n".join(report.lines()))
    facts = report.facts
    assert facts["during"][503] > 0 and set(facts["during"]) <= {200, 503}  # 200s: answered before the stop
    assert facts["probes"] == [503, 503] and facts["after"] == 200
    assert facts["alive"] and facts["starts"] == 1  # recovered by itself, never restarted
    assert report.acked == report.events and report.lost == [] and report.doubled == []
    assert report.server_errors == 0 and report.pending_after == 0
