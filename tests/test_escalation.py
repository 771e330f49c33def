"""The chat-native pager escalates on schedule: primary, next person, secondary, channel @here.

Driven by an injected clock and the outbox worker run by hand: no sleeping. Messages are counted at
the fake Slack Web API.
"""

from __future__ import annotations

import asyncio

from handlers.ports import Actor
from storage.models import Incident, OutboxRow
from tests.fakes.slack_api import FakeSlackApi
from tests.oncall_world import (
    ADMIN,
    INHOUSE_CHANNEL,
    ONCALL_CHANNEL,
    Clock,
    core_of,
    count,
    drain,
    events,
    incidents,
    oncall_settings,
    report,
    rows,
    texts,
)

OUTAGE = "e-mail is down for everyone"


async def test_unacknowledged_page_escalates_on_schedule(db_url: str) -> None:
    clock = Clock()
    async with FakeSlackApi() as slack, core_of(oncall_settings(db_url, slack), clock) as core:
        result = await report(core, OUTAGE, user="U0EMP")
        assert result.page == "paged" and result.reply is not None
        assert "paged (Alice (on call))" in result.reply.text
        await drain(core)
        [dm] = slack.posts_to("U0ALICE")
        assert "handoff.page.acknowledge" in str(dm["blocks"]) and "e-mail is down" in dm["text"]
        assert len(slack.posts_to(ONCALL_CHANNEL)) == 1 and "<!here>" not in str(slack.posts_to(ONCALL_CHANNEL))
        assert slack.posts_to("DU0EMP")  # the reply in the requester's thread

        clock.advance(minutes=4, seconds=59)  # not before the timeout
        await drain(core)
        assert slack.posts_to("U0BOB") == [] and len(slack.posts_to("DU0EMP")) == 1

        clock.advance(seconds=1)  # level 1: the next person in the rotation
        await drain(core)
        assert len(slack.posts_to("U0BOB")) == 1 and "Escalated to you" in slack.posts_to("U0BOB")[0]["text"]
        told = texts(slack, "DU0EMP")[-1]
        assert "Still not acknowledged after 5 min: escalated to Bob (next in the rotation)" in told
        assert slack.posts_to("U0SAM") == []

        clock.advance(minutes=5)  # level 2: the secondary
        await drain(core)
        assert len(slack.posts_to("U0SAM")) == 1 and "Sam (secondary)" in texts(slack, "DU0EMP")[-1]

        clock.advance(minutes=5)  # level 3: the channel with @here
        await drain(core)
        channel = slack.posts_to(ONCALL_CHANNEL)
        assert len(channel) == 2 and "<!here>" in str(channel[-1])
        assert "on-call channel (@here)" in texts(slack, "DU0EMP")[-1]

        clock.advance(minutes=30)  # nothing after the last step
        await drain(core)
        assert len(slack.posts_to(ONCALL_CHANNEL)) == 2 and len(slack.posts_to("DU0EMP")) == 4
        [incident] = await incidents(core)
        assert incident.escalation_level == 3 and incident.status == "triggered"
        assert len(await events(core, "escalated")) == 3
        assert await count(core, OutboxRow, OutboxRow.kind == "oncall.escalate") == 3
        assert slack.posts_to("U0CAROL") == []  # Carol is neither next nor secondary


async def test_acknowledge_stops_escalation(db_url: str) -> None:
    clock = Clock()
    async with FakeSlackApi() as slack, core_of(oncall_settings(db_url, slack), clock) as core:
        await report(core, OUTAGE, user="U0EMP")
        await drain(core)
        [incident] = await incidents(core)
        clock.advance(minutes=2)
        assert core.page_actions is not None
        outcome = await core.page_actions.act(actor=Actor("slack", "U0ALICE", "alice"), action="acknowledge",
                                              incident_id=incident.id, event_id="a1")
        assert outcome.ok and outcome.card is not None and "acknowledge" not in outcome.card["actions"]
        again = await core.page_actions.act(actor=Actor("slack", "U0BOB", "bob"), action="acknowledge",
                                            incident_id=incident.id, event_id="a2")
        assert not again.ok and "already acknowledged by alice at 10:02" in again.text
        await drain(core)
        assert "on-call alice acknowledged" in texts(slack, "DU0EMP")[-1]
        clock.advance(minutes=30)
        await drain(core)
        assert slack.posts_to("U0BOB") == [] and slack.posts_to("U0SAM") == []
        assert not any("<!here>" in t for t in texts(slack, ONCALL_CHANNEL))
        [escalate_row] = await rows(core, "oncall.escalate")
        assert escalate_row.status == "delivered" and "acknowledged" in (escalate_row.detail or "")


async def test_pending_escalation_survives_a_restart(db_url: str) -> None:
    clock = Clock()
    async with FakeSlackApi() as slack:
        settings = oncall_settings(db_url, slack)
        async with core_of(settings, clock) as core:
            await report(core, OUTAGE, user="U0EMP")
            await drain(core)
        clock.advance(minutes=6)
        async with core_of(settings, clock) as core:  # a new process on the same database
            await drain(core)
            assert len(slack.posts_to("U0BOB")) == 1


async def test_manual_escalate_goes_to_the_next_step_now(db_url: str) -> None:
    clock = Clock()
    async with FakeSlackApi() as slack, core_of(oncall_settings(db_url, slack), clock) as core:
        await report(core, OUTAGE, user="U0EMP")
        await drain(core)
        [incident] = await incidents(core)
        assert core.page_actions is not None
        outcome = await core.page_actions.act(actor=Actor("slack", "U0ALICE", "alice"), action="escalate",
                                              incident_id=incident.id, event_id="e1")
        assert outcome.ok and "Bob" in outcome.text
        await drain(core)
        assert len(slack.posts_to("U0BOB")) == 1 and "alice escalated the page" in texts(slack, "DU0EMP")[-1]
        clock.advance(minutes=5)  # the original level-1 timer finds it done; level 2 is due 5 min after
        await drain(core)
        assert len(slack.posts_to("U0BOB")) == 1 and len(slack.posts_to("U0SAM")) == 1


async def test_two_escalate_presses_at_once_escalate_one_level(db_url: str) -> None:
    clock = Clock()
    async with FakeSlackApi() as slack, core_of(oncall_settings(db_url, slack), clock) as core:
        await report(core, OUTAGE, user="U0EMP")
        [incident] = await incidents(core)
        assert core.page_actions is not None
        presses = await asyncio.gather(*(
            core.page_actions.act(actor=Actor("slack", user, name), action="escalate", incident_id=incident.id,
                                  event_id=f"esc-{user}") for user, name in (("U0ALICE", "alice"), ("U0BOB", "bob"))))
        assert sorted(p.ok for p in presses) == [False, True]
        assert "was just escalated to Bob (next in the rotation)" in next(p.text for p in presses if not p.ok)
        [after] = await incidents(core)
        assert after.escalation_level == 1  # Bob has his turn; the secondary was not paged over his head
        await drain(core)
        assert slack.posts_to("U0SAM") == []
        clock.advance(seconds=61)  # a later press is a new decision
        again = await core.page_actions.act(actor=Actor("slack", "U0ALICE", "alice"), action="escalate",
                                            incident_id=incident.id, event_id="esc-later")
        assert again.ok and "Sam (secondary)" in again.text


async def test_nobody_on_call_and_no_channel_tells_inhouse_and_admins(db_url: str) -> None:
    clock = Clock()
    async with FakeSlackApi() as slack, core_of(oncall_settings(db_url, slack, rotation=False, channel=False), clock) as core:
        result = await report(core, OUTAGE, user="U0EMP")
        assert result.page == "unstaffed" and result.reply is not None
        assert "Nobody is on call right now" in result.reply.text
        await drain(core)
        inhouse = texts(slack, INHOUSE_CHANNEL)
        assert any("reached NOBODY on call" in t for t in inhouse)
        assert any("NOBODY ON CALL" in t for t in inhouse)
        assert any("reached NOBODY" in t for t in texts(slack, "C0ADMINS"))
        [incident] = await incidents(core)
        assert incident.escalation_level == 3
        assert await count(core, OutboxRow, OutboxRow.kind == "oncall.escalate") == 0
        # Nobody was paged, and nothing says so: not the next reporter, the ticket, nor the incident list.
        again = await report(core, "outlook is down for the whole office, e-mail is down", user="U0EMP2")
        assert again.page == "joined" and again.reply is not None
        assert "nobody is on call right now" in again.reply.text and "paged" not in again.reply.text
        assert core.commands is not None
        status = (await core.commands.dispatch(Actor("slack", "U0EMP"), f"status {result.ticket}", event_id="s1")).text
        assert "in-house IT (critical)" in status and "nobody on call: the in-house IT channel and the admins" in status
        assert "paged" not in status
        listing = (await core.commands.dispatch(Actor("slack", ADMIN), "incidents", event_id="i1")).text
        assert "NOBODY on call" in listing and "paged via" not in listing


async def test_nobody_on_call_but_a_channel_goes_to_the_channel_at_once(db_url: str) -> None:
    clock = Clock()
    async with FakeSlackApi() as slack, core_of(oncall_settings(db_url, slack, rotation=False), clock) as core:
        result = await report(core, OUTAGE, user="U0EMP")
        assert result.page == "paged"
        await drain(core)
        [post] = slack.posts_to(ONCALL_CHANNEL)
        assert "<!here>" in str(post) and "handoff.page.acknowledge" in str(post["blocks"])
        assert len(slack.posts_to("DU0EMP")) == 1 and await events(core, "escalated") == []  # only the reply
        assert await count(core, Incident, Incident.escalation_level == 3) == 1
