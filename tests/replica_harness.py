"""Real ``handoff serve`` processes for the replica, fault and load runs.

A :class:`Replica` is the CLI's ``serve`` command in its own process (``python -m bot.cli serve``),
configured only through the environment and a temporary copy of ``app.yaml``, exactly as a
deployment would be. The third parties are the loopback fakes of ``tests/fakes`` running in the
caller's event loop (:class:`Fakes`); the database is the caller's (SQLite file or PostgreSQL).
:mod:`tests.replica_db` reads what the replicas wrote, for the checks.

Used by ``tests/test_replicas.py``, ``tests/test_faults.py``, ``bench/faults.py`` and
``bench/load.py``; :mod:`tests.pg_cluster` adds private PostgreSQL databases and clusters.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import aiohttp
import yaml
from aiohttp import web

from bot.config import ENV_MAP
from tests.fakes.msp import FakeMsp
from tests.fakes.pagerduty import FakePagerDuty
from tests.fakes.slack_api import FakeSlackApi
from tests.helpers import BOT_TOKEN, SIGNING_SECRET

REPO = Path(__file__).resolve().parent.parent
PD_KEY = "R0123456789abcdef0123456789abcde"
MSP_SECRET = "msp-shared-secret-for-replica-runs"
ADMIN = "U0ADMIN"
ALERT_CHANNEL = "C0ALERTS"
#: Environment variables a replica must not inherit from the caller (it gets its own).
_OWN_ENV = set(ENV_MAP) | {"HANDOFF_CONFIG", "HANDOFF_ADMINS"}


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merge(out.get(key) or {}, value) if isinstance(value, Mapping) else value
    return out


def write_config(directory: Path, overrides: Mapping[str, Any] | None = None) -> Path:
    """A copy of the shipped ``app.yaml`` in ``directory`` with ``overrides`` merged in (by section)."""
    raw = yaml.safe_load((REPO / "app.yaml").read_text(encoding="utf-8"))
    path = directory / "app.yaml"
    path.write_text(yaml.safe_dump(_merge(raw, overrides or {}), sort_keys=False), encoding="utf-8")
    return path


#: Settings of the fault runs: quick retries, short leases, a low MSP timeout.
FAST_DELIVERY: dict[str, Any] = {
    "delivery": {"backoff_base_seconds": 0.1, "backoff_cap_seconds": 1.0, "max_attempts": 100,
                 "poll_interval_seconds": 0.1, "lease_seconds": 5},
    "msp": {"timeout_seconds": 1.0},
    "admins": {"alert_slack_channel": ALERT_CHANNEL},
}


class ScriptedMsp(FakeMsp):
    """The fake MSP with an outage switch and a rejected marker, and a log of its answers.

    ``mode`` is ``ok`` (the PSA answers normally), ``500``, ``429`` (with ``Retry-After``) or
    ``hang`` (the answer waits ``hang_seconds``, then the ticket is created anyway, as a slow PSA
    would: the caller has given up by then and its retry is a replay); ``delay`` slows every
    answer. A ticket whose text holds
    ``reject_marker`` gets a 422 whenever the PSA is up. ``answers`` is ``(key, status, at)``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.mode = "ok"
        self.retry_after = 1
        self.hang_seconds = 3.0
        self.delay = 0.0  # every answer, in every mode
        self.reject_marker: str | None = None
        self.answers: list[tuple[str, int, float]] = []

    async def _create(self, request: web.Request) -> web.Response:
        record = self.record_of(request)
        key = record.header("Idempotency-Key") or ""
        mode = self.mode
        if self.delay:
            await asyncio.sleep(self.delay)
        if mode == "500":
            return self._answer(key, web.json_response({"error": "Internal Server Error"}, status=500))
        if mode == "429":
            return self._answer(key, web.json_response({"error": "rate limited"}, status=429,
                                                       headers={"Retry-After": str(self.retry_after)}))
        if mode == "hang":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self.hang_seconds)
        text = str((record.json or {}).get("text", "")) if isinstance(record.json, dict) else ""
        if self.reject_marker and self.reject_marker in text:
            return self._answer(key, web.json_response({"error": "unprocessable", "message": "queue closed"},
                                                       status=422))
        return self._answer(key, await super()._create(request))

    def _answer(self, key: str, response: web.Response) -> web.Response:
        self.answers.append((key, response.status, time.time()))
        return response


class Fakes:
    """The fake MSP, PagerDuty and Slack Web API on loopback, and the environment that points at them."""

    def __init__(self) -> None:
        self.msp = ScriptedMsp()
        self.pd = FakePagerDuty()
        self.slack = FakeSlackApi(token=BOT_TOKEN)

    async def __aenter__(self) -> Self:
        for fake in (self.msp, self.pd, self.slack):
            await fake.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for fake in (self.msp, self.pd, self.slack):
            await fake.close()

    def env(self) -> dict[str, str]:
        return {
            "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_API_URL": self.slack.api_base, "HANDOFF_MSP_URL": self.msp.tickets_url,
            "HANDOFF_MSP_SECRET": MSP_SECRET, "PAGERDUTY_ROUTING_KEY": PD_KEY,
            "PAGERDUTY_EVENTS_URL": self.pd.enqueue_url, "HANDOFF_ADMINS": ADMIN,
        }


@dataclass
class Replica:
    """One ``handoff serve`` process; ``start`` again after ``kill`` restarts it on the same port."""

    name: str
    config: Path
    database_url: str
    env: dict[str, str]
    log_dir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    #: The CLI's arguments after ``bot.cli``: ``("serve", "--no-worker")`` leaves delivery to a :class:`Worker`.
    command: tuple[str, ...] = ("serve",)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def events_url(self) -> str:
        return self.url + "/slack/events"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"{self.name}.log"

    def spawn(self) -> None:
        """Start the process (does not wait for it to serve)."""
        env = {k: v for k, v in os.environ.items() if k not in _OWN_ENV}
        env.update(self.env, HANDOFF_CONFIG=str(self.config), HANDOFF_DATABASE_URL=self.database_url,
                   HANDOFF_HOST="127.0.0.1", HANDOFF_PORT=str(self.port), PYTHONUNBUFFERED="1")
        self.starts += 1
        log = self.log_path.open("ab")
        log.write(f"--- start {self.starts} ---\n".encode())
        self.proc = subprocess.Popen([sys.executable, "-m", "bot.cli", *self.command], cwd=REPO, env=env,
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        log.close()

    async def wait_ready(self, timeout: float = 60.0) -> float:
        """Wait until ``/readyz`` answers 200; returns the seconds it took. Raises with the log tail."""
        started = time.monotonic()
        async with aiohttp.ClientSession() as http:
            while time.monotonic() - started < timeout:
                if self.proc is None or self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited ({self.proc and self.proc.returncode}):\n{self.tail()}")
                with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                    async with http.get(self.url + "/readyz", timeout=aiohttp.ClientTimeout(total=2)) as resp:
                        if resp.status == 200:
                            return time.monotonic() - started
                await asyncio.sleep(0.1)
        raise TimeoutError(f"{self.name} not ready within {timeout:g} s:\n{self.tail()}")

    async def start(self, timeout: float = 60.0) -> float:
        self.spawn()
        return await self.wait_ready(timeout)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` (default: kill -9) and reap the process."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def stop(self) -> None:
        """Graceful stop (SIGTERM, as a process manager does)."""
        self.kill(signal.SIGTERM)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss_mb(self) -> float:
        """Resident set size of the process in MB (``/proc/<pid>/status`` VmRSS), 0 if gone."""
        with contextlib.suppress(OSError, ValueError, AssertionError):
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


@dataclass
class Worker(Replica):
    """One ``handoff worker`` process (the outbox worker alone, no HTTP): ready once it logs that it started."""

    command: tuple[str, ...] = ("worker",)

    async def wait_ready(self, timeout: float = 60.0) -> float:
        started = time.monotonic()
        mark = f"--- start {self.starts} ---"
        while time.monotonic() - started < timeout:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc and self.proc.returncode}):\n{self.tail()}")
            if re.search(r"outbox worker \S+ started", self.log_text().rpartition(mark)[2]):
                return time.monotonic() - started
            await asyncio.sleep(0.1)
        raise TimeoutError(f"{self.name} not started within {timeout:g} s:\n{self.tail()}")


async def start_all(group: list[Replica], timeout: float = 90.0) -> list[float]:
    """Spawn every replica at once, then wait for each: seconds until each was ready."""
    for r in group:
        r.spawn()
    return list(await asyncio.gather(*(r.wait_ready(timeout) for r in group)))


async def start_first_then_rest(group: list[Replica], timeout: float = 90.0) -> list[float]:
    """The first replica alone (it creates the schema and stores the rules of app.yaml), then the
    others together: the way around the start-up race on an empty database (tests/test_replicas.py)."""
    first = await group[0].start(timeout)
    return [first, *await start_all(group[1:], timeout)] if len(group) > 1 else [first]
