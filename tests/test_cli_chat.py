"""``handoff chat`` in a real terminal (a pty) and on a pipe: bad bytes, Ctrl-C, Ctrl-D."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import APP_YAML, REPO


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "TEAMS_", "HANDOFF_", "PAGERDUTY_"))}
    return {**environ, "HANDOFF_CONFIG": str(APP_YAML), "HANDOFF_DATABASE_URL": f"sqlite:///{tmp_path / 'chat.db'}",
            "PYTHONIOENCODING": "utf-8:strict"}  # stdio as under en_US.UTF-8 (C.UTF-8 would forgive bad bytes)


@pytest.fixture
def terminal(env: dict[str, str]) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """``handoff chat`` on a pty (so it is interactive), and the pty's master end."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "chat"], stdin=slave, stdout=slave,
                            stderr=subprocess.PIPE, cwd=REPO, env=env, start_new_session=True)
    os.close(slave)
    try:
        yield proc, master
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        os.close(master)


def read_until(master: int, marker: bytes, timeout: float = 60) -> bytes:
    out, deadline = b"", time.monotonic() + timeout
    while marker not in out:
        ready, _, _ = select.select([master], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            raise AssertionError(f"{marker!r} not seen in {out!r}")
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            chunk = b""
        if not chunk:
            raise AssertionError(f"{marker!r} not seen in {out!r} before the end")
        out += chunk
    return out


def test_ctrl_c_ends_chat_at_once(terminal: tuple[subprocess.Popen[bytes], int]) -> None:
    proc, master = terminal
    read_until(master, b"you> ")
    proc.send_signal(signal.SIGINT)  # what Ctrl-C does; no Enter follows
    assert proc.wait(timeout=15) == 130
    assert read_until(master, b"\n", timeout=5)
    assert b"Traceback" not in proc.stderr.read()  # type: ignore[union-attr]


def test_ctrl_d_ends_the_prompt_line(terminal: tuple[subprocess.Popen[bytes], int]) -> None:
    proc, master = terminal
    read_until(master, b"you> ")
    os.write(master, b"\x04")  # Ctrl-D at the start of a line: end of input
    assert proc.wait(timeout=30) == 0
    assert read_until(master, b"\n", timeout=5).endswith(b"\r\n")  # the shell's prompt starts on a new line


@pytest.mark.parametrize("via", ["pipe", "file"])
def test_bytes_that_are_not_utf8_do_not_end_chat(env: dict[str, str], tmp_path: Path, via: str) -> None:
    data = b"printer jammed \xff\xfe again\noutlook keeps crashing\n"
    if via == "pipe":
        result = subprocess.run([sys.executable, "-m", "bot.cli", "chat"], input=data, capture_output=True, cwd=REPO,
                                env=env, timeout=60, check=False)
    else:
        (tmp_path / "in.txt").write_bytes(data)
        with (tmp_path / "in.txt").open("rb") as stdin:
            result = subprocess.run([sys.executable, "-m", "bot.cli", "chat"], stdin=stdin, capture_output=True,
                                    cwd=REPO, env=env, timeout=60, check=False)
    assert result.returncode == 0 and b"Traceback" not in result.stderr, result.stderr
    out = result.stdout.decode("utf-8")
    assert "Ticket IT-1001" in out and "Ticket IT-1002" in out  # the line is taken, and the next one too
