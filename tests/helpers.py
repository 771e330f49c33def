"""Test helpers: settings for a test app, Slack request signing, waiting for an outcome."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from bot.config import Settings, load_settings
from bot.config_oncall import WEEKDAYS

REPO = Path(__file__).resolve().parent.parent
APP_YAML = REPO / "app.yaml"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BOT_TOKEN = "xoxb-fake-token"


def make_settings(db_url: str, **env: str) -> Settings:
    """Settings from the shipped app.yaml, with a test database and the given environment.

    In-house IT works round the clock here, so a test that does not set business hours behaves the
    same on a Saturday night as on a Tuesday morning (tests that need hours set them, with a clock).
    """
    base = {"HANDOFF_DATABASE_URL": db_url}
    settings = load_settings(env={**base, **env}, path=APP_YAML)
    hours = settings.business_hours
    hours.weekdays, hours.open, hours.close, hours.holidays = list(WEEKDAYS), "00:00", "24:00", []
    return settings


def cli_environment(tmp_path: Path, monkeypatch: Any) -> Path:
    """The environment of a ``handoff`` command run in a test: the shipped app.yaml, a SQLite file in
    ``tmp_path``, and no MSP, pager or Slack credentials from the caller's shell."""
    monkeypatch.setenv("HANDOFF_CONFIG", str(APP_YAML))
    monkeypatch.setenv("HANDOFF_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    for var in ("HANDOFF_MSP_URL", "PAGERDUTY_ROUTING_KEY", "SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def slack_signature(secret: str, timestamp: str, body: str) -> str:
    """Sign exactly as Slack does: v0=HMAC-SHA256(secret, "v0:{ts}:{body}")."""
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def signed_headers(body: str, *, content_type: str, secret: str = SIGNING_SECRET,
                   timestamp: int | None = None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": slack_signature(secret, ts, body),
        **(extra or {}),
    }


def event_body(text: str, *, event_id: str, user: str = "U0EMPLOYEE", channel: str = "D0DM",
               channel_type: str = "im", event_type: str = "message", ts: str = "1726133700.887259",
               **event_extra: Any) -> str:
    """An Events API message body shaped like Slack's (see the events_api fixtures)."""
    return json.dumps({
        "token": "verification_token", "team_id": "T111", "api_app_id": "A111",
        "event": {"type": event_type, "user": user, "text": text, "ts": ts, "channel": channel,
                  "channel_type": channel_type, "event_ts": ts, **event_extra},
        "type": "event_callback", "event_id": event_id, "event_time": int(time.time()),
        "authorizations": [{"team_id": "T111", "user_id": "UBOT", "is_bot": True}],
    })


def command_body(text: str, *, trigger_id: str = "13345224609.738474920.8088930838d88f008e0",
                 response_url: str = "https://hooks.slack.com/commands/T111/1/abc") -> str:
    """A slash-command form body shaped like Slack's."""
    return urlencode({
        "token": "verification_token", "team_id": "T111", "team_domain": "example",
        "channel_id": "C0GENERAL", "channel_name": "general", "user_id": "U0EMPLOYEE", "user_name": "alex",
        "command": "/handoff", "text": text, "api_app_id": "A111", "response_url": response_url,
        "trigger_id": trigger_id,
    })


async def eventually(check: Callable[[], Any], *, timeout: float = 5.0, interval: float = 0.02) -> Any:
    """Wait until ``check()`` is truthy; return its value or fail with the last one."""
    deadline = time.monotonic() + timeout
    value = check()
    while not value:
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value {value!r})")
        await asyncio.sleep(interval)
        value = check()
    return value


async def pg_execute(dsn: str, *statements: str) -> None:
    """Run ``statements`` on a PostgreSQL server outside any transaction (CREATE/DROP DATABASE)."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()
