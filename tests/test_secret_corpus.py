"""Planted credentials through the real edges: none reaches a third party, the database or the logs.

Every message of :func:`tests.secret_corpus.corpus` (fake credentials of every kind redaction
supports, in help-desk phrasing) is sent as a Slack DM event (signed, with Slack's ``&amp;``
escaping and ``<url>`` links) and as a Teams 1:1 message (with a valid token), with the fake MSP,
PagerDuty, Slack Web API and Bot Connector running and the outbox worker delivering. Afterwards
no planted value may appear in any request the fakes received (bodies, decoded forms and
headers), in any column of any table, in the records logged (caplog at DEBUG, before any scrubbing)
or in the JSON log lines of :func:`bot.logs.setup_logging`.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote_plus

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import inspect, select, text

from bot.app import CLOCK, CORE, create_app
from bot.core import Clock
from bot.logs import setup_logging
from routing.redact import KINDS, redact
from storage.models import OutboxRow, Ticket
from tests.fakes.base import FakeService, RecordedRequest
from tests.fakes.bot_connector import (
    APP_ID,
    APP_PASSWORD,
    FakeBotConnector,
    personal_message,
)
from tests.fakes.msp import FakeMsp
from tests.fakes.openid import FakeOpenId
from tests.fakes.pagerduty import FakePagerDuty
from tests.fakes.slack_api import FakeSlackApi
from tests.helpers import (
    BOT_TOKEN,
    SIGNING_SECRET,
    event_body,
    make_settings,
    signed_headers,
)
from tests.secret_corpus import Planted, corpus, families

ROUTING_KEY = "R0123456789abcdef0123456789abcde"
MSP_SECRET = "msp-shared-secret-for-tests"
INTERNAL_CHANNEL = "C0INTERNAL"
CORPUS = corpus()
_URL = re.compile(r"(?:https?|ftp)://[^\s<>|]+")


def slack_escape(message: str) -> str:
    """The text as Slack delivers it: ``& < >`` escaped, URLs wrapped in ``<…>``."""
    escaped = message.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _URL.sub(lambda m: f"<{m.group(0)}>", escaped)


def needles(p: Planted) -> set[str]:
    """What must not appear downstream: each needle as typed and as Slack escapes it."""
    out = set(p.needles)
    out |= {n.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") for n in p.needles}
    return out


# --- detection on the pure function --------------------------------------------------------------

def test_corpus_is_large_varied_and_deterministic() -> None:
    assert len(CORPUS) >= 200
    assert corpus() == CORPUS  # seeded: the same list every run
    assert {p.kind for p in CORPUS} == set(KINDS)  # every kind the detectors support
    assert len({p.secret for p in CORPUS}) == len(CORPUS)
    groups = families(CORPUS)
    assert {"github-classic", "github-pat", "aws-access-key-id", "aws-secret-key", "slack-token", "slack-webhook",
            "password-intl", "pin", "basic-auth"} <= set(groups)
    assert all(len(g) >= 2 for g in groups.values())
    assert sum(p.pages for p in CORPUS) >= 4


def test_detection_rate_per_kind_on_redact(capsys: pytest.CaptureFixture[str]) -> None:
    """Every planted value is removed and named; the figures are printed per family and per kind."""
    by_kind: Counter[str] = Counter()
    hidden: Counter[str] = Counter()
    named: Counter[str] = Counter()
    lines, leaks = [], []
    for family, group in families(CORPUS).items():
        h = n = 0
        for p in group:
            r = redact(p.message)
            ok = not any(x in r.text for x in p.needles)
            h += ok
            n += p.kind in r.kinds
            by_kind[p.kind] += 1
            hidden[p.kind] += ok
            named[p.kind] += p.kind in r.kinds
            if not ok:
                leaks.append(f"{family}: {p.message!r} -> {r.text!r}")
        lines.append(f"  {family:22} {len(group):3}  hidden {h / len(group):6.1%}  kind named {n / len(group):6.1%}")
    with capsys.disabled():
        print(f"\nsecret corpus: {len(CORPUS)} planted credentials")
        print("\n".join(lines))
        for kind in KINDS:
            print(f"  kind {kind:16} {by_kind[kind]:3}  hidden {hidden[kind] / by_kind[kind]:6.1%}"
                  f"  named {named[kind] / by_kind[kind]:6.1%}")
    assert not leaks, "\n".join(leaks)
    assert named == by_kind


# What the corpus made us add to routing/secret_finders.py, and what must stay untouched.
ADDED = [
    ("la mia password è Lobexwen7071+", "la mia password è [redacted:password]"),
    ("a minha senha é ulb49$GOYeYU pls", "a minha senha é [redacted:password] pls"),
    ("the password I use for SAP is Dungramo2248-", "the password I use for SAP is [redacted:password]"),
    ("my passcode is Orchid_8194 thanks", "my passcode is [redacted:password] thanks"),
    ("| user | jdoe |\n| password | Rikfalrik4822- |", "| user | jdoe |\n| password | [redacted:password] |"),
    ("phone unlock pin 1117 ty", "phone unlock pin [redacted:password] ty"),
    ("I reset it to Velvet@76652 and the VPN still refuses me",
     "I reset it to [redacted:password] and the VPN still refuses me"),
    ("I reset it to Welcome1.", "I reset it to [redacted:password]"),  # the "." may be the password's
    ("https://a.blob.core.windows.net/c/b?sv=2022-11-02&amp;sp=r&amp;sig=AbCdEf123%2BgHiJk%3D&amp;x=1",
     "https://a.blob.core.windows.net/c/b?sv=2022-11-02&amp;sp=r&amp;sig=[redacted:azure-key]&amp;x=1"),
    ("password=Hunter22&amp;user=bob", "password=[redacted:password]&amp;user=bob"),
]
UNTOUCHED = [
    "set it to 1920x1080 please", "changed it to Office2019", "reset it to default", "change it back to 0027.",
    "set it to 50%", "changed it to v2.1.3", "pin 2 of the connector is bent", "| password | reset |",
    "la password è scaduta", "a senha é inválida", "la contraseña es incorrecta", "le mot de passe est expiré",
    "mi contraseña es nueva", "la password è bloccata",
]


@pytest.mark.parametrize(("text", "expected"), ADDED)
def test_detections_added_for_the_corpus(text: str, expected: str) -> None:
    assert redact(text).text == expected


@pytest.mark.parametrize("text", UNTOUCHED)
def test_false_friends_of_the_added_detections_stay(text: str) -> None:
    assert redact(text).text == text


# --- the whole path ------------------------------------------------------------------------------

def office_hours_clock() -> Clock:
    """Real time moved to a Wednesday 11:00 UTC, so in-house posts are not held until business hours."""
    offset = datetime(2025, 1, 15, 11, 0, tzinfo=UTC) - datetime.now(UTC)
    return lambda: datetime.now(UTC) + offset


@dataclass
class World:
    client: TestClient
    fakes: dict[str, FakeService]
    idp: FakeOpenId
    connector: FakeBotConnector
    log_stream: io.StringIO

    @property
    def core(self) -> Any:
        return self.client.server.app[CORE]


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """The production JSON handler (request ids, scrubber) on a StringIO, after caplog's handler."""
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    quiet = {name: logging.getLogger(name).level for name in ("alembic", "aiohttp.access")}
    stream = io.StringIO()
    setup_logging("DEBUG", fmt="json", stream=stream)
    ours = root.handlers[:]
    root.handlers = saved + ours  # caplog first: it sees each record before the scrubber touches it
    try:
        yield stream
    finally:
        root.handlers = saved
        root.setLevel(level)
        for name, value in quiet.items():
            logging.getLogger(name).setLevel(value)


@pytest.fixture
async def world(db_url: str, json_logs: io.StringIO, caplog: pytest.LogCaptureFixture) -> AsyncIterator[World]:
    caplog.set_level(logging.DEBUG)
    async with FakeMsp() as msp, FakePagerDuty() as pd, FakeSlackApi(token=BOT_TOKEN) as slack, FakeOpenId() as idp, \
            FakeBotConnector(app_id=APP_ID, app_password=APP_PASSWORD) as connector:
        settings = make_settings(
            db_url,
            SLACK_SIGNING_SECRET=SIGNING_SECRET, SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_API_URL=slack.api_base,
            HANDOFF_MSP_URL=msp.tickets_url, HANDOFF_MSP_SECRET=MSP_SECRET,
            PAGERDUTY_ROUTING_KEY=ROUTING_KEY, PAGERDUTY_EVENTS_URL=pd.enqueue_url,
            TEAMS_APP_ID=APP_ID, TEAMS_APP_PASSWORD=APP_PASSWORD, TEAMS_OPENID_URL=idp.metadata_url,
            TEAMS_OAUTH_URL=connector.token_url(), TEAMS_CONNECTOR_URL=connector.service_url,
        )
        settings.internal.slack_channel = INTERNAL_CHANNEL
        settings.delivery.backoff_base_seconds = 0.01
        settings.delivery.poll_interval_seconds = 0.02
        async with TestClient(TestServer(create_app(settings, clock=office_hours_clock()))) as client:
            fakes: dict[str, FakeService] = {"msp": msp, "pagerduty": pd, "slack": slack, "teams": connector,
                                             "openid": idp}
            yield World(client, fakes, idp, connector, json_logs)


async def _send_all(world: World) -> None:
    token = world.idp.token(app_id=APP_ID, service_url=world.connector.service_url)

    async def slack(i: int, p: Planted) -> None:
        body = event_body(slack_escape(p.message), event_id=f"EvCorpus{i}", ts=f"1726133700.{i:06d}")
        resp = await world.client.post("/slack/events", data=body,
                                       headers=signed_headers(body, content_type="application/json"))
        assert resp.status == 200, await resp.text()

    async def teams(i: int, p: Planted) -> None:
        activity = personal_message(world.connector.service_url, p.message, activity_id=f"corpus-{i}")
        resp = await world.client.post("/api/messages", data=json.dumps(activity),
                                       headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        assert resp.status == 200, await resp.text()

    jobs = [slack(i, p) for i, p in enumerate(CORPUS)] + [teams(i, p) for i, p in enumerate(CORPUS)]
    for start in range(0, len(jobs), 32):
        await asyncio.gather(*jobs[start:start + 32])


async def _drained(world: World, timeout: float = 60.0) -> dict[str, Counter[str]]:
    """Wait until no outbox row is due (timers such as SLA checks wait for later); {kind: Counter(status)}."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    clock = world.client.server.app[CLOCK]
    while True:
        async with world.core.sessionmaker() as session:
            rows = (await session.execute(select(OutboxRow.kind, OutboxRow.status, OutboxRow.next_attempt_at))).all()
        due = [kind for kind, status, at in rows if status == "pending" and at <= clock() + timedelta(minutes=5)]
        if rows and not due:
            out: dict[str, Counter[str]] = {}
            for kind, status, _ in rows:
                out.setdefault(kind, Counter())[status] += 1
            return out
        if loop.time() > deadline:
            raise AssertionError(f"outbox not drained: {Counter(due)} due")
        await asyncio.sleep(0.1)


def _haystack(r: RecordedRequest) -> str:
    raw = r.body.decode("utf-8", "replace")
    parts = [raw, unquote_plus(raw), json.dumps(dict(r.headers)), r.path, json.dumps(r.query)]
    if r.json is not None:
        parts.append(json.dumps(r.json, ensure_ascii=False))
    return "\n".join(parts)


async def _database_dump(world: World) -> dict[str, str]:
    """Every row of every table in the database, as text, by table name."""
    async with world.core.engine.connect() as conn:
        names = await conn.run_sync(lambda c: inspect(c).get_table_names())
        dump = {}
        for name in names:
            rows = (await conn.execute(text(f'SELECT * FROM "{name}"'))).all()
            dump[name] = "\n".join(json.dumps([str(v) for v in row], ensure_ascii=False) for row in rows)
            dump[name] += "\n" + "\n".join(str(tuple(row)) for row in rows)
    return dump


def _leaks(places: dict[str, str]) -> list[str]:
    found = []
    for p in CORPUS:
        for needle in needles(p):
            for where, hay in places.items():
                if needle in hay:
                    found.append(f"{p.family} ({p.kind}) {needle[:40]!r} in {where}")
    return found


async def test_no_planted_secret_reaches_fakes_database_or_logs(world: World, caplog: pytest.LogCaptureFixture,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    await _send_all(world)
    outbox = await _drained(world)
    await asyncio.sleep(0.3)  # the Teams conversation references are written in the background

    # The paths were exercised: tickets at the MSP, pages, internal posts, replies on both platforms.
    msp, pd, slack = (world.fakes[k] for k in ("msp", "pagerduty", "slack"))
    assert all(c.get("dead", 0) == 0 for c in outbox.values()), outbox
    for kind in ("msp", "pagerduty", "internal", "slack.post", "teams.post"):
        assert outbox[kind]["delivered"] > 0 and outbox[kind]["pending"] == 0, outbox
    pages = sum(p.pages for p in CORPUS)
    assert len(msp.requests) >= len(CORPUS) // 2
    assert pd.requests  # the pager was reached (pages of one kind may share an incident: storm control)
    assert len(slack.posts_to(INTERNAL_CHANNEL)) >= 2 * pages  # type: ignore[attr-defined]
    assert len(slack.posts_to("D0DM")) == len(CORPUS)  # type: ignore[attr-defined]
    assert len(world.connector.replies) == len(CORPUS)

    # Every ticket knows a secret was removed, and of which kind.
    async with world.core.sessionmaker() as session:
        tickets = (await session.execute(select(Ticket))).scalars().all()
    assert len(tickets) == 2 * len(CORPUS)
    by_ref = {t.thread_ref: t for t in tickets}
    for i, p in enumerate(CORPUS):
        for ref in (f"1726133700.{i:06d}", f"corpus-{i}"):
            assert p.kind in (by_ref[ref].redactions or []), (p.family, by_ref[ref].text)
    paged = {t.thread_ref for t in tickets if t.route == "page"}
    assert {f"corpus-{i}" for i, p in enumerate(CORPUS) if p.pages} <= paged, paged

    places: dict[str, str] = {}
    for name, fake in world.fakes.items():
        places[f"requests to fake {name}"] = "\n".join(_haystack(r) for r in fake.requests)
    for table, dump in (await _database_dump(world)).items():
        places[f"table {table}"] = dump
    records = caplog.records
    assert len(records) > 100  # DEBUG logging was on
    places["caplog records"] = "\n".join(
        [r.getMessage() for r in records] + [caplog.text] + [json.dumps(r.__dict__, default=str) for r in records])
    places["JSON log lines"] = world.log_stream.getvalue()
    assert places["JSON log lines"].count("\n") > 100
    leaks = _leaks(places)
    with capsys.disabled():
        print(f"\nsent {len(CORPUS)} planted credentials via Slack and via Teams: {len(msp.requests)} MSP tickets, "
              f"{len(pd.requests)} PagerDuty events, {len(slack.requests)} Slack API calls, "
              f"{len(world.connector.replies)} Teams replies, {len(places) - 2} tables, {len(records)} log records; "
              f"{len(leaks)} leaks")
    assert not leaks, "\n".join(leaks[:50])
