"""``handoff classify``: reads only, and decides as the bot does."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bot.cli import main
from tests.helpers import APP_YAML, REPO, cli_environment


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return cli_environment(tmp_path, monkeypatch)


def local_copy(tmp_path: Path, *rules: dict[str, object], **server: object) -> Path:
    """A copy of the shipped app.yaml with ``rules`` first and ``server`` keys changed, as an operator edits one."""
    data = yaml.safe_load(APP_YAML.read_text(encoding="utf-8"))
    data["routing"]["rules"][:0] = list(rules)
    data["server"].update(server)
    path = tmp_path / "copy" / "app.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def stored(db: Path) -> tuple[list[tuple[int, str]], int]:
    """(version, source) of every stored rule set, and the number of audit rows."""
    with sqlite3.connect(db) as conn:
        versions = conn.execute("SELECT version, source FROM ruleset_versions ORDER BY version").fetchall()
        return versions, conn.execute("SELECT count(*) FROM audit_log").fetchone()[0]


def test_classify_uses_the_local_copy_and_stores_nothing(env: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert main(["chat"]) == 0  # the bot's own start: app.yaml stored as version 1
    before = stored(env / "cli.db")
    assert before[0] == [(1, "file")]
    capsys.readouterr()

    copy = local_copy(env, {"id": "kettle", "route": "internal", "queue": "it-security", "when": {"any": ["kettle"]}})
    monkeypatch.setenv("HANDOFF_CONFIG", str(copy))
    monkeypatch.setenv("HANDOFF_DATABASE_URL", f"sqlite:///{env / 'cli.db'}")
    assert main(["classify", "the kettle smells odd"]) == 0
    out = capsys.readouterr().out
    assert "rule:     kettle (rules v0: " in out and str(copy) in out  # the copy as it is on disk
    assert stored(env / "cli.db") == before  # no new live version, no audit row


def test_classify_live_reads_the_stored_version_and_writes_nothing(env: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert main(["chat"]) == 0  # the bot's own start: app.yaml stored as version 1
    before = stored(env / "cli.db")
    capsys.readouterr()
    copy = local_copy(env, {"id": "kettle", "route": "internal", "queue": "it-security", "when": {"any": ["kettle"]}})
    monkeypatch.setenv("HANDOFF_CONFIG", str(copy))
    assert main(["classify", "--live", "the kettle smells odd"]) == 0
    out = capsys.readouterr().out
    assert "(rules v1: stored" in out and "kettle" not in out.split("rule:")[1].split("(")[0]  # not the local copy
    monkeypatch.setattr(sys, "stdin", io.StringIO('{"id": "a", "text": "the kettle smells odd"}\n'))
    assert main(["classify", "--live", "--jsonl"]) == 0
    assert json.loads(capsys.readouterr().out)["ruleset_version"] == 1
    assert stored(env / "cli.db") == before


def test_classify_live_without_a_database_is_a_clear_error(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["classify", "--live", "printer jammed"]) == 2
    err = capsys.readouterr().err
    assert "cannot read the stored rules from" in err and "handoff db upgrade" in err and "Traceback" not in err
    assert not (env / "cli.db").exists()  # not even an empty database file


def test_classify_opens_no_database(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["classify", "need excel installed"]) == 0
    assert main(["classify", "--rules-file", "need excel installed"]) == 0  # the old flag still works
    assert capsys.readouterr().out.count("rules v0") == 2
    assert not (env / "cli.db").exists()


def test_classify_help_says_which_rules(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["classify", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "rules of app.yaml as they are on disk" in text and "stores nothing" in text


def test_classify_decides_as_intake_does(env: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    def rule(rule_id: str, terms: list[str], **extra: object) -> dict[str, object]:
        return {"id": rule_id, "route": "internal", "queue": "it-security", "when": {"any": terms}, **extra}

    monkeypatch.setenv("HANDOFF_CONFIG", str(local_copy(
        env,
        rule("typed-secret", ["hunter2"]),  # only the unredacted text says this
        rule("kettle", ["kettle"]),
        rule("always-muted", ["toaster"], mute=[{"from": "00:00", "to": "24:00"}]),
        rule("weekend-fax", ["fax"], mute=[{"days": ["sat", "sun"], "from": "00:00", "to": "24:00"}]),
    )))

    def rule_of(*args: str) -> str:
        assert main(["classify", *args]) == 0
        return next(line.split()[1] for line in capsys.readouterr().out.splitlines() if line.startswith("rule:"))

    assert rule_of("my password is Hunter2!x") != "typed-secret"  # redacted before it is classified
    assert rule_of("ket\x00tle on fire") == "kettle"  # cleaned as intake cleans it (NUL dropped)
    assert rule_of("the toaster again") != "always-muted"  # the message has a time: windows apply
    assert rule_of("fax broken", "--at", "2026-11-30T10:00Z") == "weekend-fax"  # a Monday
    assert rule_of("fax broken", "--at", "2026-11-28T10:00Z") != "weekend-fax"  # a Saturday: muted


def test_classify_at_must_be_a_time(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["classify", "--at", "tuesday", "x"])
    assert exit_.value.code == 2 and "is not an ISO time" in capsys.readouterr().err


def strict_json(line: str) -> dict[str, object]:
    """``line`` read as standard JSON: NaN and Infinity are refused."""
    def refuse(name: str) -> object:
        raise ValueError(f"not standard JSON: {name}")

    value = json.loads(line, parse_constant=refuse)
    assert isinstance(value, dict)
    return value


@pytest.mark.parametrize("encoding", ["utf-8:strict", "latin-1"])  # stdio as under en_US.UTF-8, and a Latin-1 locale
def test_jsonl_bad_bytes_and_surrogates_are_error_lines(env: Path, encoding: str) -> None:
    lines = [
        b'{"id": 1, "text": "printer jammed"}',
        b'{"id": 2, "text": "caf\xe9 wifi \xff down"}',  # Latin-1, not UTF-8
        b'{"id": "\\ud800", "text": "printer jammed"}',  # a lone surrogate cannot be written as UTF-8
        b'{"id": 4, "text": "printer \\udc80 jammed"}',  # in the text it is cleaned, as intake cleans it
        b'{"id": 5, "text": "outlook crashes"}',
    ]
    result = subprocess.run([sys.executable, "-m", "bot.cli", "classify", "--jsonl"], input=b"\n".join(lines) + b"\n",
                            capture_output=True, cwd=REPO, timeout=60, check=False,
                            env={**os.environ, "PYTHONIOENCODING": encoding})
    assert result.returncode == 1 and b"Traceback" not in result.stderr, result.stderr
    rows = [strict_json(line) for line in result.stdout.decode("utf-8").splitlines()]  # strict UTF-8
    assert [r.get("id", r.get("line")) for r in rows] == [1, 2, 3, 4, 5]
    assert rows[1] == {"line": 2, "error": "not valid UTF-8"}
    assert rows[2]["line"] == 3 and "id" in str(rows[2]["error"])
    assert rows[3]["route"] == "msp" and rows[4]["route"] == "msp"


@pytest.mark.parametrize("item", [
    '{"text": "printer jammed"}', '{"id": null, "text": "printer jammed"}', '{"id": NaN, "text": "printer jammed"}',
    '{"id": 1e999, "text": "printer jammed"}', '{"id": -Infinity, "text": "printer jammed"}',
    '{"id": true, "text": "printer jammed"}', '{"id": [1], "text": "printer jammed"}',
])
def test_jsonl_needs_an_id_that_is_standard_json(env: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str], item: str) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(item + '\n{"id": 1.5, "text": "printer jammed"}\n'))
    assert main(["classify", "--jsonl"]) == 1
    bad, good = (strict_json(line) for line in capsys.readouterr().out.splitlines())
    assert bad["line"] == 1 and '"id"' in str(bad["error"])
    assert good["id"] == 1.5 and good["route"] == "msp"
