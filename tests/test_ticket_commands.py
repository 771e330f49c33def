"""``/handoff status|close|reopen|comment`` and thread comments, on a real database (SQLite and PostgreSQL).

Tickets are opened by the real intake with the shipped rules; the MSP side of the history is filled by
a real delivery to the fake MSP on loopback and an MSP update.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import aiohttp
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.connectors.msp import MspWebhookConnector
from handlers.commands import CommandRouter
from handlers.delivery import OutboxWorker
from handlers.intake import Intake
from handlers.msp_updates import MspUpdate, MspUpdates
from handlers.ports import ThreadMessage
from handlers.tickets import TicketOptions, Tickets
from storage.models import Incident
from tests.fakes.msp import FakeMsp
from tests.ticket_env import (
    ADMIN,
    EMPLOYEE,
    INTERNAL_TEXT,
    MSP_TEXT,
    OTHER,
    PAGE_TEXT,
    TEAMS_EMPLOYEE,
    Clock,
    admin_access,
    ask,
    events,
    inbound,
    make_intake,
    payloads,
    rows,
    sinks,
    ticket,
)


@dataclass
class Env:
    sm: async_sessionmaker[AsyncSession]
    clock: Clock
    intake: Intake
    tickets: Tickets
    router: CommandRouter

    async def run(self, actor: object, text: str) -> str:
        reply = await self.router.dispatch(actor, text, event_id=f"cmd-{text}")  # type: ignore[arg-type]
        assert reply.intake is None, f"{text!r} went to intake instead of a command"
        return reply.text


@pytest.fixture
async def env(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[Env]:
    clock = Clock()
    intake = await make_intake(sessionmaker, clock)
    uc = Tickets(sessionmaker=sessionmaker, clock=clock, access=admin_access(), options=TicketOptions(list_limit=10))
    router = CommandRouter(intake=intake)
    for command in uc.commands():
        router.register(command)
    yield Env(sessionmaker, clock, intake, uc, router)


async def test_status_lists_only_my_open_tickets_newest_first_and_capped(env: Env) -> None:
    assert "You have no open tickets" in await env.run(EMPLOYEE, "status")
    keys = []
    for i in range(12):
        keys.append(await ask(env.intake, f"{MSP_TEXT} number {i}", event_id=f"Ev{i}"))
        env.clock.advance(minutes=5)
    others = await ask(env.intake, MSP_TEXT, event_id="EvOther", actor=OTHER)
    assert "Closed" in await env.run(EMPLOYEE, f"close {keys[-1]}")
    text = await env.run(EMPLOYEE, "status")
    assert text.startswith("*Your open tickets* (11):")
    listed = [line.split("*")[1] for line in text.splitlines() if line.startswith("• ")]
    assert listed == list(reversed(keys[:-1]))[:10], "newest first, the closed one left out, capped at 10"
    assert others not in text and keys[0] not in text
    assert "…and 1 older" in text
    first = next(line for line in text.splitlines() if keys[-2] in line)
    assert "open · the service desk (MSP) · queue `msp-service-desk` · opened 10 min ago" in first


async def test_one_ticket_shows_its_history_with_delivery_facts(env: Env) -> None:
    key = await ask(env.intake, MSP_TEXT, event_id="EvH")
    async with FakeMsp() as msp, aiohttp.ClientSession() as http:
        worker = OutboxWorker(sessionmaker=env.sm, clock=env.clock,
                              connectors={**sinks(), "msp": MspWebhookConnector(session=http, url=msp.tickets_url)})
        env.clock.advance(seconds=30)
        await worker.run_once()
        await msp.wait_for_requests(1)
    env.clock.advance(minutes=40)
    await MspUpdates(sessionmaker=env.sm, clock=env.clock).apply(MspUpdate(
        event_id="msp-1", ticket=key, type="comment", comment="We are on it", author="Sam"))
    env.clock.advance(minutes=5)
    await env.tickets.comment(ThreadMessage(platform="slack", event_id="EvT", user_id=EMPLOYEE.user_id,
                                            channel_id=EMPLOYEE.channel_id, thread_ref=(await ticket(env.sm, key)).thread_ref or "",
                                            text="it happens on every attachment", user_name="alex"))
    text = await env.run(EMPLOYEE, f"status {key}")
    lines = text.splitlines()
    assert lines[0] == f"*{key}* · *open* · the service desk (MSP) · queue `msp-service-desk`"
    assert "Opened 2026-03-02 09:00 UTC" in lines[1] and MSP_TEXT in lines[1]
    assert "MSP id `MSP-1`" in text and "first response 2026-03-02 09:40 UTC" in text
    history = lines[lines.index("*History* (UTC):") + 1:]
    assert history == [
        "• 02 Mar 09:00 sent to the MSP, MSP id `MSP-1`",
        "• 02 Mar 09:40 the service desk (Sam) wrote: “We are on it”",
        "• 02 Mar 09:45 alex commented: “it happens on every attachment”",
    ]


async def test_others_cannot_tell_a_ticket_exists_admins_can_see_it(env: Env) -> None:
    key = await ask(env.intake, MSP_TEXT, event_id="EvP")
    missing = await env.run(OTHER, "status IT-9999")
    hidden = await env.run(OTHER, f"status {key}")
    assert hidden == missing.replace("IT-9999", key)
    assert "can't find" in hidden and MSP_TEXT not in hidden
    for command in (f"close {key}", f"reopen {key}", f"comment {key} hello"):
        assert await env.run(OTHER, command) == hidden
    assert (await ticket(env.sm, key)).status == "open"
    assert [e.kind for e in await events(env.sm, key)] == []
    assert MSP_TEXT in await env.run(ADMIN, f"status {key}")


async def test_close_and_reopen_an_msp_ticket_are_forwarded_to_the_msp(env: Env) -> None:
    key = await ask(env.intake, MSP_TEXT, event_id="EvC")
    env.clock.advance(hours=1)
    answer = await env.run(EMPLOYEE, f"close {key}")
    assert answer.startswith(f"Closed {key}; I told the service desk (MSP).")
    t = await ticket(env.sm, key)
    assert (t.status, t.closed_at) == ("closed", env.clock.now)
    again = await env.run(EMPLOYEE, f"close {key}")
    assert again == (f"{key} is already closed since 2026-03-02 10:00 UTC. `/handoff reopen {key} <why>` opens it "
                     "again.")
    env.clock.advance(hours=1)
    answer = await env.run(EMPLOYEE, f"reopen {key} still crashing, password is Hunter2Hunter2!")
    assert answer.startswith(f"Reopened {key}; I told the service desk (MSP).") and "change or revoke" in answer
    t = await ticket(env.sm, key)
    assert (t.status, t.closed_at, t.resolved_at) == ("open", None, None)
    assert "not resolved or closed" in await env.run(EMPLOYEE, f"reopen {key}")
    forwarded = [p for p in payloads(await rows(env.sm, key, "msp")) if p.get("event") != "ticket.created"]
    assert [p["event"] for p in forwarded] == ["ticket.closed", "ticket.reopened"]
    assert forwarded[0]["id"] == key and forwarded[0]["author"] == {"platform": "slack", "user_id": "U0EMPLOYEE",
                                                                    "name": "alex"}
    assert forwarded[1]["text"] == "still crashing, password is [redacted:password]"
    assert [(e.kind, e.actor) for e in await events(env.sm, key)] == [("closed", "slack:U0EMPLOYEE"),
                                                                      ("reopened", "slack:U0EMPLOYEE")]
    assert (await events(env.sm, key))[1].text == "still crashing, password is [redacted:password]"


async def test_in_house_tickets_are_forwarded_to_the_in_house_channel_and_admins_tell_the_requester(env: Env) -> None:
    key = await ask(env.intake, INTERNAL_TEXT, event_id="EvI")
    assert (await ticket(env.sm, key)).route == "internal"
    assert f"Closed {key}; I told in-house IT" in await env.run(ADMIN, f"close {key} duplicate of IT-1000")
    [post] = [p for p in payloads(await rows(env.sm, key, "internal")) if p.get("event") == "ticket.closed"]
    assert post["event"] == "ticket.closed" and post["text"] == f"{key} closed by ada: duplicate of IT-1000"
    told = payloads(await rows(env.sm, key, "slack.post"))[-1]
    assert told["text"] == f"{key} was closed by ada: duplicate of IT-1000"
    assert told["channel"] == EMPLOYEE.channel_id and told["thread_ts"] == (await ticket(env.sm, key)).thread_ref
    assert await rows(env.sm, key, "msp") == [], "in-house tickets never reach the MSP"


async def test_refusals_say_what_to_type(env: Env) -> None:
    assert "Which ticket? Type e.g. `/handoff close IT-1042`" in await env.run(EMPLOYEE, "close")
    assert "`IT1042x` is not a ticket id" in await env.run(EMPLOYEE, "reopen IT1042x")
    key = await ask(env.intake, MSP_TEXT, event_id="EvR")
    assert f"What should I add? Type `/handoff comment {key} <your text>`" in await env.run(EMPLOYEE, f"comment {key}")
    assert "Closed" in await env.run(EMPLOYEE, f"close `{key.lower()}`."), "the key as people paste it"


async def test_a_reply_that_echoes_what_was_typed_is_redacted(env: Env) -> None:
    # The first word comes back in "… is not a ticket id"; in Teams that answer is an outbox row.
    text = await env.run(EMPLOYEE, "status pwd:Quokka55$zz")
    assert "`pwd:[redacted:password]` is not a ticket id" in text and "Quokka55" not in text


async def test_a_message_in_the_thread_becomes_a_redacted_comment_once(env: Env) -> None:
    key = await ask(env.intake, MSP_TEXT, event_id="EvTh")
    thread = (await ticket(env.sm, key)).thread_ref or ""
    before = len(await rows(env.sm, key))
    message = ThreadMessage(platform="slack", event_id="EvComment", user_id=EMPLOYEE.user_id,
                            channel_id=EMPLOYEE.channel_id, thread_ref=thread, user_name="alex",
                            text="new token ghp_abcdefghijklmnopqrstuvwxyz0123456789 does not help")
    assert await env.tickets.comment(message) == "comment"
    [comment] = await events(env.sm, key)
    assert (comment.kind, comment.text) == ("comment", "new token [redacted:github-token] does not help")
    added = await rows(env.sm, key)
    assert len(added) == before + 2
    assert added[-2].kind == "msp" and added[-2].payload["event"] == "ticket.comment"
    assert added[-2].payload["text"] == comment.text and "ghp_" not in str(added[-2].payload)
    assert added[-1].kind == "slack.post" and added[-1].payload["thread_ts"] == thread
    assert added[-1].payload["text"].startswith(f"Added to {key} and sent to the service desk (MSP).")
    assert "a GitHub token" in added[-1].payload["text"], "the author is told to rotate what they pasted"
    assert await env.tickets.comment(message) == "comment", "a platform retry is absorbed"
    assert len(await rows(env.sm, key)) == before + 2 and len(await events(env.sm, key)) == 1
    elsewhere = ThreadMessage(platform="slack", event_id="EvNew", user_id=EMPLOYEE.user_id,
                              channel_id=EMPLOYEE.channel_id, thread_ref="999.000", text="new problem")
    assert await env.tickets.comment(elsewhere) == "no-ticket"
    assert "EvNew" not in await inbound(env.sm, "slack"), "left for intake to take as a new request"


async def test_comment_command_works_without_threads_and_reaches_in_house(env: Env) -> None:
    key = await ask(env.intake, PAGE_TEXT, event_id="EvPg", actor=TEAMS_EMPLOYEE, command=True)
    assert (await ticket(env.sm, key)).route == "page"
    answer = await env.run(TEAMS_EMPLOYEE, f"comment {key} the file server share is also encrypted")
    assert answer == f"Added to {key} and sent to in-house IT."
    post = [p for p in payloads(await rows(env.sm, key, "internal")) if p.get("event") == "ticket.comment"]
    assert post == [{"text": f"{key}: comment from kim: the file server share is also encrypted", "ticket": key,
                     "event": "ticket.comment"}]
    assert await rows(env.sm, key, "msp") == []


async def test_help_lists_the_ticket_commands_with_examples(env: Env) -> None:
    text = await env.run(EMPLOYEE, "help")
    for usage in ("status [IT-1042]", "close IT-1042 [note]", "reopen IT-1042 [reason]", "comment IT-1042 <text>"):
        assert f"`/handoff {usage}`" in text
    assert "`/handoff status IT-1042`" in await env.run(EMPLOYEE, "help status")


async def test_a_page_shows_its_incident_steps(env: Env) -> None:
    key = await ask(env.intake, PAGE_TEXT, event_id="EvInc")
    t = await ticket(env.sm, key)
    assert t.route == "page" and t.incident_id is not None
    ack, fixed = env.clock.now + timedelta(minutes=3), env.clock.now + timedelta(minutes=20)
    async with env.sm.begin() as session:
        await session.execute(update(Incident).where(Incident.id == t.incident_id).values(
            status="resolved", acknowledged_at=ack, acknowledged_by="slack:U0ONCALL", resolved_at=fixed,
            resolved_by="slack:U0ONCALL", resolution="not_critical"))
    env.clock.now = fixed + timedelta(minutes=1)
    text = await env.run(EMPLOYEE, f"status {key}")
    history = text.splitlines()[text.splitlines().index("*History* (UTC):") + 1:]
    assert f"• 02 Mar 09:00 part of incident {t.incident_id} (pager: PagerDuty)" in history
    assert "• 02 Mar 09:00 PagerDuty page not delivered yet (0 attempts so far)" in history
    assert history[-2:] == ["• 02 Mar 09:03 page acknowledged by slack:U0ONCALL",
                            "• 02 Mar 09:20 incident resolved as not critical by slack:U0ONCALL"]
    assert "the service desk" not in text.splitlines()[0] and "in-house IT (critical)" in text
