"""Private PostgreSQL for the replica runs: a throwaway database, or a whole throwaway cluster.

:func:`private_database` creates a database next to the one ``HANDOFF_TEST_DATABASE_URL`` names
(as ``tests/conftest.py`` does) and drops it afterwards. :class:`PrivateCluster` runs ``initdb`` and
``pg_ctl`` in a temporary directory on a free port, so a test may stop and restart *its own*
server without touching the machine's shared one. As root, the binaries run as the ``postgres``
user (``runuser``), since PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from sqlalchemy.engine import make_url

from tests.helpers import pg_execute
from tests.replica_harness import free_port


@contextlib.asynccontextmanager
async def private_database(base_url: str, *, label: str = "replicas") -> AsyncIterator[str]:
    """A new empty database on the server of ``base_url``; yields its SQLAlchemy URL (asyncpg)."""
    url = make_url(base_url)
    name = f"handoff_{label}_{os.getpid()}_{secrets.token_hex(3)}"
    admin = url.set(drivername="postgresql").render_as_string(hide_password=False)
    await pg_execute(admin, f'CREATE DATABASE "{name}"')
    try:
        yield url.set(drivername="postgresql+asyncpg", database=name).render_as_string(hide_password=False)
    finally:
        await pg_execute(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _bin_dir() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(os.path.realpath(found)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(candidates[-1]).parent if candidates else None


class PrivateCluster:
    """A PostgreSQL server of our own in a temporary directory (``available()`` says if it can run)."""

    def __init__(self) -> None:
        self.bin = _bin_dir()
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="handoff-pg-"))
        self.data = self.dir / "data"
        self._as_postgres = os.geteuid() == 0

    @staticmethod
    def unavailable_reason() -> str | None:
        """Why a private cluster cannot run here, or None."""
        bin_dir = _bin_dir()
        if bin_dir is None or not (bin_dir / "initdb").exists():
            return "initdb/pg_ctl not installed"
        if os.geteuid() == 0 and (shutil.which("runuser") is None or _uid("postgres") is None):
            return "running as root without a 'postgres' user (or runuser) to run PostgreSQL as"
        return None

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        assert self.bin is not None
        cmd = [str(self.bin / args[0]), *args[1:]]
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=60)

    def init(self) -> None:
        if self._as_postgres:
            uid = _uid("postgres")
            assert uid is not None
            os.chown(self.dir, uid, -1)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c max_connections=200"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.dir / "server.log"), "-w", "-o", options, "start")

    def stop(self, mode: str = "fast") -> None:
        """``fast`` (connections terminated, clean shutdown) or ``immediate`` (like a crash)."""
        self._run("pg_ctl", "-D", str(self.data), "-w", "-m", mode, "stop", check=False)

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


def _uid(user: str) -> int | None:
    import pwd

    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        return None
