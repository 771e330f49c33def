"""``handoff classify``: reads only, and decides as the bot does."""

from __future__ import annotations

import io
import sqlite3
import sys
from pathlib import Path

import pytest
import yaml

from bot.cli import main
from tests.helpers import APP_YAML


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HANDOFF_CONFIG", str(APP_YAML))
    monkeypatch.setenv("HANDOFF_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    for var in ("HANDOFF_MSP_URL", "PAGERDUTY_ROUTING_KEY", "SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


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
