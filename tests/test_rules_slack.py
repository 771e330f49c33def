"""Rule editing end to end through signed Slack slash commands against the real app (fakes for Slack,
the MSP and PagerDuty), on SQLite and PostgreSQL: refusal and audit, add → test → replay → publish →
the next DM routes by the new rule, rollback, and a second replica following the new version."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from bot.app import CORE, create_app
from bot.config import Settings
from storage import rules_admin
from storage.models import AuditEntry, Ticket
from tests.fakes.msp import FakeMsp
from tests.fakes.pagerduty import FakePagerDuty
from tests.fakes.slack_api import FakeSlackApi
from tests.helpers import BOT_TOKEN, SIGNING_SECRET, command_body, event_body, eventually, make_settings, signed_headers

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
ADMIN = "U0ADMIN"
_IDS = itertools.count(1)


@dataclass
class Replica:
    client: TestClient

    @property
    def core(self) -> Any:
        return self.client.app[CORE]

    async def slash(self, text: str, *, user: str = ADMIN) -> dict[str, Any]:
        n = next(_IDS)
        form = dict(parse_qsl(command_body(text, trigger_id=f"trig.{n}"), keep_blank_values=True))
        form.update(user_id=user, user_name=user.lower())
        body = urlencode(form)
        resp = await self.client.post("/slack/events", data=body, headers=signed_headers(body, content_type=FORM))
        assert resp.status == 200, await resp.text()
        answer: dict[str, Any] = await resp.json()
        assert answer["response_type"] == "ephemeral"
        blocks = answer.get("blocks") or []
        assert len(blocks) <= 50 and all(len(b["text"]["text"]) <= 3000 for b in blocks if b["type"] == "section")
        return answer

    async def dm(self, text: str) -> Ticket:
        n = next(_IDS)
        body = event_body(text, event_id=f"Ev{n}", ts=f"1700000000.{n:06d}")
        resp = await self.client.post("/slack/events", data=body, headers=signed_headers(body, content_type=JSON))
        assert resp.status == 200
        async with self.core.sessionmaker() as session:
            return (await session.scalars(select(Ticket).order_by(Ticket.id.desc()).limit(1))).one()

    async def audit(self) -> list[AuditEntry]:
        async with self.core.sessionmaker() as session:
            rows = (await session.scalars(select(AuditEntry).order_by(AuditEntry.id))).all()
        return [r for r in rows if r.action.startswith("rules.") and r.action != "rules.import-file"]


@dataclass
class World:
    a: Replica
    msp: FakeMsp
    pd: FakePagerDuty
    slack: FakeSlackApi
    settings: Settings


def _settings(db_url: str, slack: FakeSlackApi, msp: FakeMsp, pd: FakePagerDuty) -> Settings:
    settings = make_settings(
        db_url, SLACK_SIGNING_SECRET=SIGNING_SECRET, SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_API_URL=slack.api_base,
        HANDOFF_MSP_URL=msp.tickets_url, PAGERDUTY_ROUTING_KEY="R0123456789abcdef0123456789abcde",
        PAGERDUTY_EVENTS_URL=pd.enqueue_url,
    )
    settings.admins.slack = [ADMIN]
    settings.admins.slack_groups = ["it-admins"]
    settings.rules_admin.watch_interval_seconds = 0.1
    settings.rules_admin.replay_budget_seconds = 60
    settings.delivery.poll_interval_seconds = 0.05
    settings.delivery.backoff_base_seconds = 0.01
    return settings


@pytest.fixture
async def world(db_url: str) -> AsyncIterator[World]:
    async with FakeMsp() as msp, FakePagerDuty() as pd, FakeSlackApi(token=BOT_TOKEN) as slack:
        slack.add_usergroup("S0ITADMIN", handle="it-admins", users=["U0GROUPIE"])
        settings = _settings(db_url, slack, msp, pd)
        async with TestClient(TestServer(create_app(settings))) as client:
            yield World(Replica(client), msp, pd, slack, settings)


FIRE = 'rules add datacenter-fire --route page --any “sprinkler alarm, sprinklers went off” --note "facilities"'
TEXT = "the sprinkler alarm is going off in the archive"


async def test_a_non_admin_is_refused_and_audited(world: World) -> None:
    answer = await world.a.slash(FIRE, user="U0EMPLOYEE")
    assert "Only rule admins may `rules add`" in answer["text"]
    [entry] = await world.a.audit()
    assert entry.actor == "slack:U0EMPLOYEE (u0employee)" and entry.action == "rules.add" and not entry.allowed
    assert "sprinkler alarm" in entry.detail["command"]
    anyone = await world.a.slash(f'rules test "{TEXT}"', user="U0EMPLOYEE")
    assert "live v1" in anyone["text"]
    group = await world.a.slash(FIRE, user="U0GROUPIE")  # a member of the it-admins Slack user group
    assert "Draft: added `datacenter-fire`" in group["text"]
    assert [(c.form or {}).get("usergroup") for c in world.slack.calls("usergroups.users.list")] == ["S0ITADMIN"]


async def test_add_test_replay_publish_then_the_next_dm_routes_by_the_new_rule(world: World) -> None:
    before = await world.a.dm(TEXT)
    assert before.route != "page"
    await world.msp.wait_for_requests(1, timeout=5)

    assert "Draft: added `datacenter-fire`" in (await world.a.slash(FIRE))["text"]
    test = await world.a.slash(f'rules test "{TEXT}"')
    assert "your draft (based on v1), DIFFERENT" in test["text"] and "via `datacenter-fire`" in test["text"]
    replay = await world.a.slash("rules replay --days 1")
    assert "newly page: *1*" in replay["text"] and before.key in replay["text"]
    refused = await world.a.slash("rules publish")
    assert "needs --confirm" in refused["text"] and before.key in refused["text"]
    published = await world.a.slash('rules publish --confirm --note "fire alarms page"')
    assert "Published *v2*" in published["text"]

    after = await world.a.dm("SPRINKLERS WENT OFF in the archive!!")
    assert (after.route, after.rule_id, after.ruleset_version) == ("page", "datacenter-fire", 2)
    [page] = await world.pd.wait_for_requests(1, timeout=5)
    assert isinstance(page.json, dict) and page.json["payload"]["custom_details"]["rule"] == "datacenter-fire"
    actions = [(e.action, e.allowed) for e in await world.a.audit()]
    assert actions == [("rules.add", True), ("rules.replay", True), ("rules.publish", True), ("rules.publish", True)]


async def test_rollback_restores_the_exact_previous_behaviour(world: World) -> None:
    texts = [TEXT, "outlook keeps crashing", "ransomware note on my screen", "whole office has no internet"]
    first = [await world.a.dm(t) for t in texts]
    await world.a.slash(FIRE)
    await world.a.slash("rules edit default --severity low")
    await world.a.slash("rules publish --confirm")
    changed = await world.a.dm(TEXT)
    assert changed.rule_id == "datacenter-fire"
    rolled = await world.a.slash("rules rollback 1 --confirm")
    assert "Published *v3* (rollback; was v2)" in rolled["text"]
    again = [await world.a.dm(t) for t in texts]
    assert [(t.route, t.rule_id, t.severity, t.queue) for t in again] == [(t.route, t.rule_id, t.severity, t.queue)
                                                                          for t in first]
    assert {t.ruleset_version for t in again} == {3}
    history = await world.a.slash("rules history", user="U0EMPLOYEE")
    for v in ("*v3* *(live)*", "*v2*", "*v1*", "rollback to v1"):
        assert v in history["text"]


async def test_a_second_replica_follows_the_new_version(world: World, db_url: str) -> None:
    settings = _settings(db_url, world.slack, world.msp, world.pd)
    async with TestClient(TestServer(create_app(settings))) as other:
        b = Replica(other)
        assert b.core.rules.version == 1
        await world.a.slash(FIRE)
        await world.a.slash("rules publish --confirm")
        await eventually(lambda: b.core.rules.version == 2, timeout=5)
        ticket = await b.dm(TEXT)
        assert (ticket.route, ticket.rule_id, ticket.ruleset_version) == ("page", "datacenter-fire", 2)
        await b.slash("rules rollback 1 --confirm")
        await eventually(lambda: world.a.core.rules.version == 3, timeout=5)
        assert (await world.a.dm(TEXT)).rule_id != "datacenter-fire"


async def test_slack_escaping_and_help(world: World) -> None:
    # Slack sends &, < and > escaped; a regex typed with them must be stored as typed.
    answer = await world.a.slash('rules add disk-alert --route internal --regex "disk (usage|use) &gt; 9\\d%" '
                                 '--none "&amp;co"')
    assert "Draft: added `disk-alert`" in answer["text"], answer["text"]
    async with world.a.core.sessionmaker() as session:
        draft = await rules_admin.get_draft(session=session, owner=f"slack:{ADMIN}")
    assert draft is not None
    rule = next(r for r in draft.content["rules"] if r["id"] == "disk-alert")
    assert rule["when"] == {"none": ["&co"], "regex": ["disk (usage|use) > 9\\d%"]}
    # unescaped exactly once: "&amp;" typed literally arrives as "&amp;amp;" and is stored as typed
    literal = await world.a.slash('rules add entity-typed --route msp --any "r&amp;amp;d"')
    assert "Draft: added `entity-typed`" in literal["text"], literal["text"]
    async with world.a.core.sessionmaker() as session:
        draft = await rules_admin.get_draft(session=session, owner=f"slack:{ADMIN}")
    assert draft is not None
    assert next(r for r in draft.content["rules"] if r["id"] == "entity-typed")["when"] == {"any": ["r&amp;d"]}
    shown = await world.a.slash("rules show disk-alert --draft")
    assert "&gt; 9" in shown["text"] and "> 9" not in shown["text"], "shown escaped, as Slack needs"
    helped = await world.a.slash("help rules", user="U0EMPLOYEE")
    for sub in ("list", "show", "test", "add", "edit", "rm", "move", "enable", "diff", "replay", "publish", "history",
                "rollback", "export"):
        assert f"/handoff rules {sub}" in helped["text"], sub
    full = await world.a.slash("rules help", user="U0EMPLOYEE")
    assert "cannot carry files" in full["text"] and "`/handoff rules import` then a ```yaml code block" in full["text"]
