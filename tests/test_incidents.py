"""Page actions: acknowledge, resolve, escalate, not critical; idempotent, recorded, told to every requester."""

from __future__ import annotations

import asyncio

from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from bot.app import CORE, create_app
from handlers.ports import Actor
from storage.models import AuditEntry, Incident, Ticket
from tests.fakes.opsgenie import FakeOpsgenie
from tests.fakes.pagerduty import FakePagerDuty
from tests.fakes.slack_api import FakeSlackApi, block_actions_body
from tests.helpers import event_body, eventually, signed_headers
from tests.oncall_world import (
    ROUTING_KEY,
    Clock,
    core_of,
    count,
    drain,
    events,
    form_headers,
    incidents,
    oncall_settings,
    report,
    rows,
    texts,
)

OUTAGE = "e-mail is down for everyone"
ALICE = Actor("slack", "U0ALICE", "alice")
BOB = Actor("slack", "U0BOB", "bob")


async def test_buttons_through_the_slack_edge(db_url: str) -> None:
    """A DM page's buttons pressed in Slack: acknowledged once, resolved, requesters told, card updated."""
    clock = Clock()
    async with FakeSlackApi() as slack:
        app = create_app(oncall_settings(db_url, slack), clock=clock)
        async with TestClient(TestServer(app)) as client:
            for n, user in enumerate(("U0EMP1", "U0EMP2")):
                body = event_body(OUTAGE, event_id=f"EvB{n}", user=user, channel=f"D{user}")
                assert (await client.post("/slack/events", data=body,
                                          headers=signed_headers(body, content_type="application/json"))).status == 200
            [dm] = await eventually(lambda: slack.posts_to("U0ALICE"))
            assert len(await eventually(lambda: slack.posts_to("DU0EMP2"))) == 1
            [incident] = await incidents(app[CORE])

            async def press(action: str, user: str, rid: str) -> list[dict[str, object]]:
                body = block_actions_body(f"handoff.page.{action}", str(incident.id), user=user, user_name=user.lower(),
                                          channel="DU0ALICE", response_url=slack.response_url(rid))
                assert (await client.post("/slack/events", data=body, headers=form_headers(body))).status == 200
                return list(await eventually(lambda: slack.responses.get(rid)))

            # Someone not on call and not an admin: refused and audited, as `/handoff ack` refuses them.
            for action in ("acknowledge", "escalate", "resolve"):
                refused = await press(action, "U0STRANGER", f"r0-{action}")
                assert "Only on-call people" in str(refused[0])
            assert (await incidents(app[CORE]))[0].status == "triggered" and slack.posts_to("U0BOB") == []
            async with app[CORE].sessionmaker() as session:
                audit = (await session.scalars(select(AuditEntry).where(AuditEntry.actor == "slack:U0STRANGER"))).all()
            assert sorted((a.action, a.allowed) for a in audit) == [
                ("page.acknowledge", False), ("page.escalate", False), ("page.resolve", False)]

            acked = await press("acknowledge", "U0ALICE", "r1")
            assert acked[0]["replace_original"] is True and "Acknowledged by u0alice" in str(acked[0])
            assert "handoff.page.acknowledge" not in str(acked[0]) and "handoff.page.resolve" in str(acked[0])
            again = await press("acknowledge", "U0BOB", "r2")
            assert any("already acknowledged by u0alice" in str(b) for b in again)
            for user in ("DU0EMP1", "DU0EMP2"):
                await eventually(lambda user=user: any("acknowledged" in t for t in texts(slack, user)))
            resolved = await press("resolve", "U0ALICE", "r3")
            assert "Resolved by u0alice" in str(resolved[0]) and "handoff.page." not in str(resolved[0])
            for user in ("DU0EMP1", "DU0EMP2"):
                await eventually(lambda user=user: any("is fixed" in t for t in texts(slack, user)))
            core = app[CORE]
            assert await count(core, Ticket, Ticket.status == "resolved") == 2
            assert len(await events(core, "acknowledged")) == 2 and len(await events(core, "resolved")) == 2
            [done] = await incidents(core)
            assert (done.status, done.acknowledged_by, done.resolved_by, done.resolution) == (
                "resolved", "slack:U0ALICE", "slack:U0ALICE", "fixed")
            assert dm["channel"] == "U0ALICE"


async def test_pagerduty_hears_acknowledge_and_resolve_with_the_same_dedup_key(db_url: str) -> None:
    clock = Clock()
    async with FakeSlackApi() as slack, FakePagerDuty() as pd:
        settings = oncall_settings(db_url, slack, PAGERDUTY_ROUTING_KEY=ROUTING_KEY, PAGERDUTY_EVENTS_URL=pd.enqueue_url)
        async with core_of(settings, clock) as core:
            await report(core, OUTAGE, user="U0EMP")
            [incident] = await incidents(core)
            assert core.page_actions is not None
            assert (await core.page_actions.act(actor=ALICE, action="acknowledge", incident_id=incident.id,
                                                event_id="1")).ok
            clock.advance(minutes=3)
            outcome = await core.page_actions.act(actor=ALICE, action="resolve", incident_id=incident.id, event_id="2")
            assert outcome.ok and outcome.card is not None and "actions" not in outcome.card
            await drain(core)
            assert [(e["event_action"], e["dedup_key"]) for e in pd.accepted] == [
                ("trigger", incident.dedup_key), ("acknowledge", incident.dedup_key), ("resolve", incident.dedup_key)]
            assert pd.incident(incident.dedup_key) is not None
            assert pd.incident(incident.dedup_key).status == "resolved"  # type: ignore[union-attr]
            escalate = await core.page_actions.act(actor=ALICE, action="escalate", incident_id=incident.id,
                                                   event_id="3")
            assert not escalate.ok and "already resolved by alice at 10:03" in escalate.text
            assert slack.posts_to("U0ALICE") == []  # PagerDuty decides who is paged, not the rotation


async def test_opsgenie_hears_create_acknowledge_close(db_url: str) -> None:
    clock = Clock()
    async with FakeSlackApi() as slack, FakeOpsgenie() as og:
        key = next(iter(og.api_keys))
        settings = oncall_settings(db_url, slack, OPSGENIE_API_KEY=key, OPSGENIE_API_URL=og.api_url)
        assert settings.pager == "opsgenie"
        async with core_of(settings, clock) as core:
            await report(core, OUTAGE, user="U0EMP")
            [incident] = await incidents(core)
            assert core.page_actions is not None
            for action in ("acknowledge", "resolve"):
                assert (await core.page_actions.act(actor=ALICE, action=action, incident_id=incident.id,
                                                    event_id=action)).ok
            assert [r.payload["action"] for r in await rows(core, "opsgenie")] == ["create", "acknowledge", "close"]
            await drain(core)
            assert og.actions_for(incident.dedup_key)[:3] == ["create", "acknowledge", "close"]


async def test_not_critical_closes_the_page_as_false(db_url: str) -> None:
    clock = Clock()
    async with FakeSlackApi() as slack, core_of(oncall_settings(db_url, slack), clock) as core:
        await report(core, OUTAGE, user="U0EMP")
        [incident] = await incidents(core)
        assert core.page_actions is not None
        outcome = await core.page_actions.act(actor=ALICE, action="not_critical", incident_id=incident.id,
                                              event_id="n")
        assert outcome.ok and "not critical" in outcome.text
        again = await core.page_actions.act(actor=BOB, action="resolve", incident_id=incident.id, event_id="r")
        assert not again.ok and "already resolved as not critical by alice" in again.text
        await drain(core)
        assert "not a critical incident" in texts(slack, "DU0EMP")[-1]
        assert await count(core, Incident, Incident.resolution == "not_critical") == 1
        clock.advance(minutes=20)
        await drain(core)
        assert slack.posts_to("U0BOB") == []  # a resolved page does not escalate


async def test_bad_requests_are_answered_not_raised(db_url: str) -> None:
    async with FakeSlackApi() as slack, core_of(oncall_settings(db_url, slack), Clock()) as core:
        assert core.page_actions is not None
        missing = await core.page_actions.act(actor=ALICE, action="acknowledge", incident_id=999, event_id="x")
        assert not missing.ok and "no incident #999" in missing.text
        unknown = await core.page_actions.act(actor=ALICE, action="snooze", incident_id=1, event_id="y")
        assert not unknown.ok and "Unknown action" in unknown.text


async def test_two_people_pressing_at_once_act_once(db_url: str) -> None:
    async with FakeSlackApi() as slack, core_of(oncall_settings(db_url, slack), Clock()) as core:
        await report(core, OUTAGE, user="U0EMP")
        [incident] = await incidents(core)
        assert core.page_actions is not None
        outcomes = await asyncio.gather(*(
            core.page_actions.act(actor=who, action="acknowledge", incident_id=incident.id, event_id=who.user_id)
            for who in (ALICE, BOB)))
        assert sorted(o.ok for o in outcomes) == [False, True]
        assert len(await events(core, "acknowledged")) == 1
        assert len([r for r in await rows(core) if "acknowledged the problem" in str(r.payload)]) == 1
