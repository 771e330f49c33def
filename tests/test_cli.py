"""The ``handoff`` command as a newcomer and a script use it."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import main
from tests.helpers import REPO, cli_environment


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return cli_environment(tmp_path, monkeypatch)


def test_classify_text(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["classify", "ransomware note on my screen, files renamed .locked"]) == 0
    out = capsys.readouterr().out
    assert "route:    page" in out and "pages:    yes" in out and "why:" in out and "rules v0" in out


def test_classify_jsonl_is_a_stable_interface(env: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    lines = [
        json.dumps({"id": 1, "text": "printer jammed again"}),
        "",
        json.dumps({"id": "b", "text": "the whole office has no internet"}),
        "not json",
        json.dumps({"id": 3}),
    ]
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(lines) + "\n"))
    assert main(["classify", "--jsonl"]) == 1  # bad lines are reported, good ones still answered
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 4
    first, second, bad, missing = rows
    for row in (first, second):
        assert {"id", "route", "severity", "queue", "rule", "ruleset_version"} <= set(row)
    assert first["id"] == 1 and first["route"] == "msp"
    assert second["id"] == "b" and second["route"] == "page"
    assert bad["line"] == 4 and "error" in bad and missing["line"] == 5


def test_chat_then_outbox(env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(
        "outlook keeps crashing\nransomware note on my screen, files renamed .locked\nmy password is Hunter2!x ok\n"
    ))
    assert main(["chat"]) == 0
    out = capsys.readouterr().out
    assert "IT-1001" in out and "IT-1002" in out and "IT-1003" in out
    assert "-> msp: delivered" in out and "-> internal: delivered" in out
    # No pager configured and nobody on call: the page is not silently lost, the channel and admins are told.
    assert "Nobody is on call right now, so I alerted the in-house IT channel and the admins" in out
    assert "-> sla.check: scheduled for" in out  # the MSP's first-response watchdog, shown to a newcomer
    assert "WARNING: I removed a password" in out and "Hunter2!x" not in out

    assert main(["outbox", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    kinds = sorted(r["kind"] for r in rows)
    assert kinds == ["admin.alert", "internal", "internal", "msp", "msp", "sla.check", "sla.check"]
    assert all(r["status"] == "delivered" for r in rows if r["kind"] != "sla.check")
    assert not any("Hunter2!x" in json.dumps(r) for r in rows)
    assert main(["outbox", "--kind", "admin.alert"]) == 0
    assert "NOBODY on call" in capsys.readouterr().out


def test_config_error_is_reported_not_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "app.yaml"
    bad.write_text("server: {port: -1}\nrouting: {}\n")
    monkeypatch.setenv("HANDOFF_CONFIG", str(bad))
    assert main(["classify", "x"]) == 2
    assert "configuration error" in capsys.readouterr().err


def test_db_upgrade_and_console_script(env: Path) -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "handoff"), "db", "upgrade"], check=False, capture_output=True, text=True,
        cwd=REPO, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "database at head" in result.stdout and (env / "cli.db").exists()


def test_chat_runs_handoff_commands(env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(
        "printer on floor 3 is jammed\n/handoff status IT-1001\n/handoff close IT-1001\n/handoff status\n"
    ))
    assert main(["chat"]) == 0
    out = capsys.readouterr().out
    assert "Ticket IT-1001 is with our IT service desk (MSP)." in out
    assert "*IT-1001* · *open*" in out and "sent to the MSP" in out  # the ticket with its history
    assert "Closed IT-1001" in out
    assert "IT-1002" not in out  # commands open no tickets
    assert main(["outbox", "--json"]) == 0
    events = [json.loads(line)["payload"].get("event") for line in capsys.readouterr().out.splitlines()
              if json.loads(line)["kind"] == "msp"]
    assert sorted(events) == ["ticket.closed", "ticket.created"]


@pytest.mark.parametrize(("url", "said"), [
    ("postgresql://nobody@127.0.0.1:1/x", "ConnectionRefusedError"),  # nothing listens on port 1
    ("/tmp/handoff.db", "not a database URL"),  # no scheme
])
def test_an_unusable_database_url_is_a_message_not_a_traceback(
        env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], url: str, said: str) -> None:
    monkeypatch.setenv("HANDOFF_DATABASE_URL", url)
    for command in (["chat"], ["outbox"], ["db", "upgrade"]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert err.startswith("handoff: cannot open the database") and "HANDOFF_DATABASE_URL" in err and said in err
        assert "Traceback" not in err


def test_the_database_check_loads_no_alembic_when_at_head(env: Path) -> None:
    # Alembic, with Mako and Pygments, stays in a process's memory (~10 MB): only load it to migrate.
    import os

    assert main(["db", "upgrade"]) == 0
    probe = "import sys; from bot.cli import main; main(['outbox']); print('alembic' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], check=False, capture_output=True, text=True, cwd=REPO,
                            env=dict(os.environ), timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False"


def _handoff(*args: str, env: dict[str, str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], check=False, capture_output=True, text=True, cwd=REPO,
                          env=env, timeout=60, **kw)  # type: ignore[call-overload,no-any-return]


def test_a_port_in_use_is_a_message_not_a_traceback(env: Path) -> None:
    import os
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _handoff("serve", env={**os.environ, "HANDOFF_PORT": str(port)})
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and "HANDOFF_PORT" in result.stderr
    assert "Traceback" not in result.stderr


def test_output_into_a_closed_pipe_ends_quietly(env: Path) -> None:
    import os

    lines = "".join(json.dumps({"id": i, "text": "printer jammed again"}) + "\n" for i in range(3000))
    read, write = os.pipe()
    head = subprocess.Popen(["head", "-n", "1"], stdin=read, stdout=subprocess.PIPE, text=True)
    os.close(read)
    with os.fdopen(write, "w") as into_head:  # `handoff classify --jsonl | head -n 1`
        result = subprocess.run([sys.executable, "-m", "bot.cli", "classify", "--jsonl"], check=False, input=lines,
                                stdout=into_head, stderr=subprocess.PIPE, text=True, cwd=REPO, timeout=60)
    first = head.communicate(timeout=30)[0]
    assert json.loads(first)["id"] == 0
    assert "Traceback" not in result.stderr and "BrokenPipeError" not in result.stderr, result.stderr


def test_chat_shows_words_not_slack_emoji_codes(env: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("/handoff report\nmy password is Hunter2!x and outlook crashes\n"))
    assert main(["chat"]) == 0
    out = capsys.readouterr().out
    assert "REFUSED:" in out and "WARNING:" in out
    assert ":no_entry:" not in out and ":warning:" not in out


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://postgres:S3cr@PGpass@127.0.0.1:1/handoff", "postgresql://***@127.0.0.1:1/handoff"),  # "@" unescaped
    ("postgresql://handoff:pw%40x@127.0.0.1:1/handoff", "postgresql://***@127.0.0.1:1/handoff"),
])
def test_database_messages_hide_the_whole_password(env: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str], url: str, shown: str) -> None:
    monkeypatch.setenv("HANDOFF_DATABASE_URL", url)
    assert main(["outbox"]) == 2
    err = capsys.readouterr().err
    assert f"cannot open the database {shown} (" in err
    for secret in ("S3cr", "PGpass", "pw%40x", "pw@x"):
        assert secret not in err


@pytest.mark.parametrize("limit", ["-1", "0", "ten"])
def test_outbox_limit_must_be_one_or_more(env: Path, capsys: pytest.CaptureFixture[str], limit: str) -> None:
    with pytest.raises(SystemExit) as exit_:  # before any query: PostgreSQL refuses LIMIT -1 with a traceback
        main(["outbox", "--limit", limit])
    assert exit_.value.code == 2 and "argument --limit" in capsys.readouterr().err
    assert not (env / "cli.db").exists()


@pytest.mark.parametrize(("host", "shown"), [(" 127.0.0.1", "' 127.0.0.1'"), ("[::1]", "[::1]"),
                                             ("nohost.invalid", "nohost.invalid")])
def test_a_host_that_does_not_resolve_is_a_message_not_a_traceback(env: Path, host: str, shown: str) -> None:
    import os

    result = _handoff("serve", env={**os.environ, "HANDOFF_HOST": host, "HANDOFF_PORT": "3978"})
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]  # after the start-up log line
    assert last.startswith(f"handoff: cannot listen on {shown}:3978: ") and "HANDOFF_HOST" in last
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("argv", "environ", "said"), [
    (["--log-level", "bogus"], {}, "argument --log-level: invalid choice: 'BOGUS'"),
    (["--log-format", "xml"], {}, "argument --log-format: invalid choice: 'xml'"),
    ([], {"HANDOFF_LOG_FORMAT": "xml"}, "HANDOFF_LOG_FORMAT='xml': choose from auto, json, text"),
])
def test_logging_options_are_checked(env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                     argv: list[str], environ: dict[str, str], said: str) -> None:
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "classify", "printer jammed"])
    assert exit_.value.code == 2 and said in capsys.readouterr().err


def test_logging_options_take_any_case(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HANDOFF_LOG_FORMAT", "JSON")
    assert main(["--log-level", "debug", "classify", "printer jammed"]) == 0
    assert main(["--log-level", "warn", "classify", "printer jammed"]) == 0  # logging's own alias


def test_half_set_slack_credentials_are_a_configuration_error(env: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "s")  # and no SLACK_BOT_TOKEN (the fixture removes it)
    assert main(["outbox"]) == 2  # every command loads the same settings; serve used to start without Slack
    assert "SLACK_SIGNING_SECRET is set but SLACK_BOT_TOKEN is not" in capsys.readouterr().err
