"""Authorisation: every privileged command tried by someone who may not is refused, audited, and changes nothing.

Commands come from the application's own registry (``Core.commands``), so a command registered later
must be classified here (open to everyone, or privileged with the invocations to try) before this
suite passes again. ``rules`` subcommands come from :data:`handlers.rules_help.SUBCOMMANDS`: every one
not in ``PUBLIC`` is tried. Each is sent as a real Slack slash command (signed) by a user who is no
admin and not on call; a Teams subset goes through ``POST /api/messages``. Every refusal is audited
(``report``, ``ack``, ``resolve``, ``escalate`` and ``incidents`` were not until handlers/report.py and
handlers/oncall.py did it), and the audit log keeps what was typed only with secrets redacted.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlencode

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from bot.app import CORE, create_app
from handlers.rules_help import EXAMPLES, PUBLIC, SUBCOMMANDS
from storage.models import AuditEntry, OncallOverride, RuleDraft, RulesetVersion
from tests.fakes.bot_connector import (
    APP_ID,
    APP_PASSWORD,
    FakeBotConnector,
    next_id,
    personal_message,
)
from tests.fakes.openid import FakeOpenId
from tests.fakes.slack_api import FakeSlackApi
from tests.helpers import (
    BOT_TOKEN,
    SIGNING_SECRET,
    eventually,
    make_settings,
    signed_headers,
)

ADMIN, STRANGER = "U0ADMIN", "U0STRANGER"
FORM = "application/x-www-form-urlencoded"

#: Commands anyone may run (tickets are scoped to their requester by the commands themselves).
OPEN = {"help", "status", "close", "reopen", "comment"}
#: Privileged command -> (arguments, audit action) pairs a stranger tries.
PRIVILEGED: dict[str, list[tuple[str, str]]] = {
    "rules": [(EXAMPLES[sub][0].removeprefix("rules "), f"rules.{sub}") for sub in SUBCOMMANDS if sub not in PUBLIC],
    "oncall": [("override <@U0STRANGER|me> --until tomorrow 09:00", "oncall.override"), ("clear 1", "oncall.clear")],
    "report": [("", "report"), ("--days 7", "report")],
    "ack": [("IT-1000", "ack")],
    "resolve": [("IT-1000", "resolve")],
    "escalate": [("IT-1000", "escalate")],
    "incidents": [("", "incidents")],
}
CASES = [(name, args, action) for name, tries in PRIVILEGED.items() for args, action in tries]


def _ids(case: tuple[str, str, str]) -> str:
    return f"{case[0]} {case[1][:30]}".strip()


@dataclass
class World:
    client: TestClient
    idp: FakeOpenId
    connector: FakeBotConnector

    async def command(self, text: str, *, user: str = STRANGER, user_name: str = "mallory") -> str:
        body = urlencode({"token": "t", "team_id": "T111", "channel_id": "C0GENERAL", "user_id": user,
                          "user_name": user_name, "command": "/handoff", "text": text, "api_app_id": "A111",
                          "trigger_id": f"{next_id()}.{user}", "response_url": "https://hooks.slack.com/commands/T1/1/x"})
        resp = await self.client.post("/slack/events", data=body, headers=signed_headers(body, content_type=FORM))
        assert resp.status == 200, await resp.text()
        return str((await resp.json())["text"])

    async def teams_command(self, text: str, user: dict[str, str]) -> None:
        token = self.idp.token(app_id=APP_ID, service_url=self.connector.service_url)
        activity = personal_message(self.connector.service_url, f"/handoff {text}", activity_id=next_id(), user=user)
        resp = await self.client.post("/api/messages", data=json.dumps(activity),
                                      headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
        assert resp.status == 200, await resp.text()

    async def audit(self) -> list[AuditEntry]:
        async with self.client.server.app[CORE].sessionmaker() as session:
            return list((await session.execute(select(AuditEntry).order_by(AuditEntry.id))).scalars())

    async def state(self) -> tuple[int, int, int]:
        """(rule set versions, drafts, on-call overrides): what a privileged command could change."""
        async with self.client.server.app[CORE].sessionmaker() as session:
            return tuple([int((await session.execute(select(func.count()).select_from(m))).scalar_one())  # type: ignore[return-value]
                          for m in (RulesetVersion, RuleDraft, OncallOverride)])


@pytest.fixture
async def world(db_url: str) -> AsyncIterator[World]:
    async with FakeOpenId() as idp, FakeBotConnector(app_id=APP_ID, app_password=APP_PASSWORD) as connector, \
            FakeSlackApi(token=BOT_TOKEN) as slack:
        settings = make_settings(
            db_url, SLACK_SIGNING_SECRET=SIGNING_SECRET, SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_API_URL=slack.api_base,
            TEAMS_APP_ID=APP_ID, TEAMS_APP_PASSWORD=APP_PASSWORD, TEAMS_OPENID_URL=idp.metadata_url,
            TEAMS_OAUTH_URL=connector.token_url(), TEAMS_CONNECTOR_URL=connector.service_url,
        )
        settings.admins.slack = [ADMIN]  # (HANDOFF_ADMINS is read from the process environment)
        settings.delivery.poll_interval_seconds = 0.05
        async with TestClient(TestServer(create_app(settings))) as client:
            yield World(client, idp, connector)


async def test_every_registered_command_is_classified(world: World) -> None:
    """A command added to the registry must be listed here as open or privileged (with what to try)."""
    registered = {c.name for c in world.client.server.app[CORE].commands.commands}
    assert registered == OPEN | set(PRIVILEGED), (
        f"classify new commands in tests/test_authz.py: {sorted(registered - OPEN - set(PRIVILEGED))}; "
        f"gone: {sorted(OPEN | set(PRIVILEGED) - registered)}")
    assert {a.removeprefix("rules.") for _, _, a in CASES if a.startswith("rules.")} == set(SUBCOMMANDS) - PUBLIC


async def test_privileged_commands_are_refused_for_a_stranger_and_change_nothing(world: World) -> None:
    state = await world.state()
    answers = {}
    for name, args, _ in CASES:
        answers[f"{name} {args}"] = await world.command(f"{name} {args}".strip(), user_name=ADMIN)  # a name is no id
    not_refused = {cmd: text[:120] for cmd, text in answers.items() if ":no_entry:" not in text or "Only" not in text}
    assert not not_refused
    assert await world.state() == state


@pytest.mark.parametrize("case", [pytest.param(c, id=_ids(c)) for c in CASES])
async def test_each_refusal_is_audited(world: World, case: tuple[str, str, str]) -> None:
    name, args, action = case
    before = len(await world.audit())
    await world.command(f"{name} {args}".strip())
    new = (await world.audit())[before:]
    refused = [e for e in new if e.action == action and not e.allowed and e.actor.startswith(f"slack:{STRANGER}")]
    assert len(refused) == 1, [(e.action, e.allowed, e.actor) for e in new]
    assert refused[0].detail.get("outcome") == "refused"


async def test_the_gate_lets_the_admin_through(world: World) -> None:
    """The control: the same commands by the admin are not refused (and are audited as allowed)."""
    for text in ("rules discard", "rules diff", "oncall clear 99", "report"):
        answer = await world.command(text, user=ADMIN)
        assert ":no_entry:" not in answer, (text, answer)
    allowed = [e for e in await world.audit() if e.allowed and e.actor.startswith(f"slack:{ADMIN}")]
    assert {"rules.discard", "rules.diff", "oncall.clear"} <= {e.action for e in allowed}


async def test_teams_strangers_are_refused_and_audited(world: World) -> None:
    stranger = {"id": "29:stranger", "name": "Mallory", "aadObjectId": "00000000-0000-0000-0000-00000000bad0"}
    state = await world.state()
    tries = [("rules publish --confirm", "rules.publish"), ("rules import ```yaml\nqueues: []\n```", "rules.import"),
             ("oncall override Mallory --until tomorrow 09:00", "oncall.override")]
    for text, _ in tries:
        await world.teams_command(text, stranger)
    replies = await eventually(lambda: len(world.connector.replies) >= len(tries) and world.connector.replies)
    assert all("Only" in json.dumps(r.activity) for r in replies)
    refused = [(e.action, e.actor) for e in await world.audit() if not e.allowed]
    for _, action in tries:
        assert (action, f"teams:{stranger['aadObjectId']}") in {(a, actor.split(" ")[0]) for a, actor in refused}
    assert await world.state() == state


async def test_a_refused_command_does_not_store_a_secret_in_the_audit_log(world: World) -> None:
    """handlers/admin_rules.py and handlers/oncall.py stored a refused command's raw text (the secret with it)."""
    secret = "Tr0ub4dor&3xyzzy"
    await world.command(f'rules add vpn-issue --route msp --any "vpn" --note "my password is {secret}"')
    await world.command(f"oncall override me --until tomorrow, my password is {secret}")
    await world.command(f"report --days 7 my password is {secret}")
    await world.command(f"ack IT-1000 my password is {secret}")
    await world.command(f"incidents my password is {secret}")
    entries = await world.audit()
    details = json.dumps([e.detail for e in entries], ensure_ascii=False)
    assert {"rules.add", "oncall.override", "report", "ack", "incidents"} <= {e.action for e in entries}
    assert secret not in details and secret not in json.dumps([e.target for e in entries])
    assert details.count("my password is [redacted:password]") == 5  # the command is kept, its secret is not


async def test_an_admins_audited_commands_do_not_store_a_secret_either(world: World) -> None:
    """Allowed commands are audited with what was typed (and a diff): redacted the same way."""
    secret = "Tr0ub4dor&3xyzzy"
    answer = await world.command(f'rules add vpn-issue --route msp --any "vpn" --note "my password is {secret}"',
                                 user=ADMIN)
    assert ":pencil2:" in answer, answer
    await world.command(f"rules publish --note \"my password is {secret}\" --confirm", user=ADMIN)
    await world.command(f"oncall override nobody-known --until tomorrow, my password is {secret}", user=ADMIN)
    await world.command(f"rules show no-such-rule my password is {secret}", user=ADMIN)
    entries = [e for e in await world.audit() if e.allowed and e.actor.startswith(f"slack:{ADMIN}")]
    assert {"rules.add", "rules.publish", "oncall.override"} <= {e.action for e in entries}
    assert secret not in json.dumps([(e.target, e.detail) for e in entries], ensure_ascii=False)
    assert "[redacted:password]" in json.dumps([e.detail for e in entries if e.action == "rules.add"])


async def test_a_secret_at_the_audit_clip_is_redacted_whole(world: World) -> None:
    """The audit keeps the first 1,000 characters of a command: redaction happens before that cut."""
    secret = "AKIAIOSFODNN7EXAMPLE"  # an AWS key id: cut in half it no longer looks like one
    n = 0  # as many --any terms as leave 8 characters of the secret before character 1,000 of the command
    while len(f'add long-one --route msp --any "{",".join(f"word{i:03d}" for i in range(n + 1))}" '
              '--note "the key is ') <= 992:
        n += 1
    words = ",".join(f"word{i:03d}" for i in range(n))
    command = f'rules add long-one --route msp --any "{words}" --note "the key is {secret}"'
    start = command.index(secret) - len("rules ")
    assert start < 1000 < start + len(secret), "the secret must straddle the clip"
    await world.command(command, user=ADMIN)
    details = json.dumps([e.detail for e in await world.audit() if e.action == "rules.add"], ensure_ascii=False)
    assert "AKIAIOSF" not in details
    assert not re.search(r"\[redacted:[a-z-]*…", details)  # the clip never cuts a placeholder in half either
