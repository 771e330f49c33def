"""Storm control: one incident and one page per storm, everyone told on resolve; the page cap holds, visibly."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from bot.app import CORE, create_app
from bot.config import load_settings
from handlers.intake import Inbound, Intake
from handlers.paging import PagingOptions
from handlers.paging_group import group_key
from handlers.paging_storm import StormControl
from handlers.ports import Actor
from handlers.rules_state import ActiveRules
from routing.engine import Classifier
from routing.model import Message
from storage import incidents as store_incidents
from storage.db import make_engine, make_sessionmaker, upgrade
from storage.models import Incident, OutboxRow, Ticket
from tests.fakes.pagerduty import FakePagerDuty
from tests.fakes.slack_api import FakeSlackApi
from tests.helpers import APP_YAML, event_body, eventually, signed_headers
from tests.oncall_world import (
    ADMIN,
    ONCALL_CHANNEL,
    ROUTING_KEY,
    Clock,
    command_form,
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
    tickets,
)

OUTAGE = "e-mail is down for everyone"


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier(load_settings(env={}, path=APP_YAML).ruleset())


@pytest.mark.parametrize(("a", "b", "same"), [
    ("e-mail is down for everyone", "E-mail is down for everyone!!", True),
    ("e-mail is down for everyone", "email is down for everyone in the office", True),
    ("e-mail is down for everyone", "Outlook is down for everyone", True),
    ("e-mail is down for everyone", "everyone's e-mail is down", True),
    ("e-mail is down for everyone", "the VPN is down for everyone", False),
    ("e-mail is down for everyone", "e-mail and VPN are down for everyone", False),
    ("internet is down in the Berlin office", "the internet is down in Berlin office!", True),
    ("internet is down in the Berlin office", "internet is down in the Leeds office", False),
    ("we have been hacked", "we have been hacked!!!", True),
])
def test_grouping_key_keeps_services_and_sites_apart(classifier: Classifier, a: str, b: str, same: bool) -> None:
    da, db = classifier.classify(Message(text=a)), classifier.classify(Message(text=b))
    assert da.route == db.route == "page"
    assert (da.rule_id == db.rule_id and group_key(da, a) == group_key(db, b)) is same


def test_grouping_key_examples(classifier: Classifier) -> None:
    def key(text: str) -> str:
        return group_key(classifier.classify(Message(text=text)), text)

    assert key("e-mail is down for everyone") == "email"
    assert key("internet is down in the Berlin office") == "internet+site:berlin"
    assert key("we have been hacked") == "terms:hacked"  # no service named: the matched terms
    assert len(key("down for everyone " + " ".join(f"{w} office" for w in "abcdefghij" * 30))) <= 255


async def test_forty_reports_one_page_forty_told_on_resolve(db_url: str) -> None:
    """The issue's scenario, through the Slack HTTP edge with the fake PagerDuty and fake Slack API."""
    clock = Clock()
    async with FakeSlackApi() as slack, FakePagerDuty() as pd:
        settings = oncall_settings(db_url, slack, PAGERDUTY_ROUTING_KEY=ROUTING_KEY,
                                   PAGERDUTY_EVENTS_URL=pd.enqueue_url)
        app = create_app(settings, clock=clock)
        async with TestClient(TestServer(app)) as client:
            async def send(n: int) -> None:
                body = event_body(OUTAGE, event_id=f"EvStorm{n}", user=f"U{n:04d}", channel=f"D{n:04d}",
                                  ts=f"1726133700.{n:06d}")
                resp = await client.post("/slack/events", data=body,
                                         headers=signed_headers(body, content_type="application/json"))
                assert resp.status == 200

            for wave in range(4):  # 40 people in 2 minutes: 10 at once, every 30 s
                await asyncio.gather(*(send(wave * 10 + i) for i in range(10)))
                clock.advance(seconds=30)
            await eventually(lambda: all(slack.posts_to(f"D{n:04d}") for n in range(40)), timeout=20)
            await eventually(lambda: pd.trigger_count >= 1)
            core = app[CORE]
            [incident] = await incidents(core)
            assert incident.reports == 40 and incident.pager == "pagerduty"
            assert len(await rows(core, "pagerduty")) == 1 and pd.trigger_count == 1 and pd.incidents_opened == 1
            assert pd.accepted[0]["dedup_key"] == incident.dedup_key
            answers = [slack.posts_to(f"D{n:04d}")[0]["text"] for n in range(40)]
            assert sum("has been paged" in a for a in answers) == 1
            assert sum("known issue" in a and "subscribed" in a for a in answers) == 39
            assert len(await events(core, "subscribed")) == 39
            assert await count(core, Ticket, Ticket.incident_id == incident.id) == 40
            assert await count(core, OutboxRow, OutboxRow.kind == "internal") == 1  # no in-house storm either

            first = incident.detail["ticket"]
            body = command_form(f"resolve {first}", user=ADMIN, response_url=slack.url_for("/response/r1"))
            resp = await client.post("/slack/events", data=body, headers=form_headers(body))
            assert resp.status == 200 and "You resolved incident" in (await resp.json())["text"]
            await eventually(lambda: all(len(slack.posts_to(f"D{n:04d}")) == 2 for n in range(40)), timeout=20)
            assert all("resolved" in slack.posts_to(f"D{n:04d}")[1]["text"] for n in range(40))
            await eventually(lambda: (pd.incident(incident.dedup_key) or incident).status == "resolved")
            assert [e["event_action"] for e in pd.accepted] == ["trigger", "resolve"]
            assert await count(core, Ticket, Ticket.status == "resolved") == 40
            again = command_form(f"resolve {first}", user=ADMIN, response_url=slack.url_for("/response/r2"))
            resp = await client.post("/slack/events", data=again, headers=form_headers(again))
            assert "already resolved" in (await resp.json())["text"]


async def test_different_services_and_old_storms_are_separate_incidents(db_url: str) -> None:
    clock = Clock()
    async with FakeSlackApi() as slack, core_of(oncall_settings(db_url, slack, PAGERDUTY_ROUTING_KEY=ROUTING_KEY), clock) as core:
        assert (await report(core, OUTAGE, user="U01")).page == "paged"
        assert (await report(core, "the VPN is down for everyone", user="U02")).page == "paged"
        clock.advance(minutes=50)
        assert (await report(core, "E-mail is down for everyone!", user="U03")).page == "joined"
        clock.advance(minutes=50)  # 100 min after the first, 50 after the last: the window slides
        assert (await report(core, OUTAGE, user="U04")).page == "joined"
        clock.advance(minutes=61)  # a quiet hour later: a new storm
        assert (await report(core, OUTAGE, user="U05")).page == "paged"
        found = await incidents(core)
        assert [(i.group_key, i.reports) for i in found] == [("email", 3), ("vpn", 1), ("email", 1)]
        assert len(await rows(core, "pagerduty")) == 3


async def test_reports_of_one_transaction_join_together_each_with_its_own_number(db_url: str) -> None:
    """Reports committed together (group commit): joins are written per incident, in arrival order."""
    clock = Clock()
    async with FakeSlackApi() as slack, core_of(oncall_settings(db_url, slack, PAGERDUTY_ROUTING_KEY=ROUTING_KEY), clock) as core:
        texts_in = [OUTAGE, "the VPN is down for everyone", "E-mail is down for everyone!", OUTAGE,
                    "VPN is down for everyone here", "email is down for everyone in the office"]
        results = await asyncio.gather(*(report(core, t, user=f"U{i:02d}") for i, t in enumerate(texts_in)))
        assert len({r.ticket for r in results}) == 6
        assert [r.page for r in results] == ["paged", "paged", "joined", "joined", "joined", "joined"]
        email, vpn = await incidents(core)
        assert (email.group_key, email.reports, vpn.group_key, vpn.reports) == ("email", 4, "vpn", 2)
        leads = [r.reply.text.split("\n")[0] for r in results if r.reply is not None]
        assert [lead.split("(")[1].split(" reports")[0] for lead in leads if "known issue" in lead] == ["2", "3", "2", "4"]
        history = sorted((e.ticket_id, e.text) for e in await events(core, "subscribed"))
        assert [text.rsplit("; ", 1)[1] for _, text in history] == ["2 reports.", "3 reports.", "2 reports.", "4 reports."]
        linked = {t.id: t.incident_id for t in await tickets(core)}
        assert sorted(linked.values()) == sorted([email.id] * 4 + [vpn.id] * 2)
        assert len(await rows(core, "pagerduty")) == 2


async def test_reports_of_one_transaction_join_several_open_incidents(db_url: str) -> None:
    """Joins of one transaction are written together for every incident; each reporter keeps their number."""
    clock = Clock()
    async with FakeSlackApi() as slack, core_of(oncall_settings(db_url, slack, PAGERDUTY_ROUTING_KEY=ROUTING_KEY), clock) as core:
        assert (await report(core, OUTAGE, user="U01")).page == "paged"
        assert (await report(core, "the VPN is down for everyone", user="U02")).page == "paged"
        clock.advance(minutes=5)
        texts_in = ["the VPN is down for everyone", OUTAGE, "VPN is down for everyone here", "E-mail is down for everyone!"]
        results = await asyncio.gather(*(report(core, t, user=f"U1{i}") for i, t in enumerate(texts_in)))
        assert [r.page for r in results] == ["joined"] * 4
        numbers = [r.reply.text.split("(")[1].split(" reports")[0] for r in results if r.reply is not None]
        assert numbers == ["2", "2", "3", "3"]
        email, vpn = await incidents(core)
        assert (email.reports, vpn.reports) == (3, 3)
        assert email.last_report_at == vpn.last_report_at == clock.now
        linked = {t.id: t.incident_id for t in await tickets(core)}
        assert sorted(linked.values()) == sorted([email.id] * 3 + [vpn.id] * 3)
        assert len(await rows(core, "pagerduty")) == 2


async def test_a_batch_of_joins_costs_the_same_statements_whatever_its_size(db_url: str) -> None:
    """Set-at-a-time: a transaction with joins to six storms runs the statements one with joins to two
    does (the joins were five statements per incident)."""
    from sqlalchemy import event

    services = ["e-mail", "VPN", "Jira", "Zoom", "Slack", "SharePoint"]
    clock = Clock()
    async with FakeSlackApi() as slack, core_of(oncall_settings(db_url, slack, PAGERDUTY_ROUTING_KEY=ROUTING_KEY), clock) as core:
        for i, service in enumerate(services):
            opened = (await report(core, f"{service} is down for everyone", user=f"U0{i}")).page
            assert opened in ("paged", "held")  # past the hourly page cap the incident is held; joined all the same
        statements: list[str] = []

        def count(conn: object, cursor: object, statement: str, *args: object) -> None:
            statements.append(statement.split()[0])

        async def batch(storms: int, tag: str) -> int:
            statements.clear()
            texts_in = [f"{service} is down for everyone" for service in services[:storms]] * 2
            results = await asyncio.gather(*(report(core, t, user=f"U{tag}{i:02d}") for i, t in enumerate(texts_in)))
            assert [r.page for r in results] == ["joined"] * len(texts_in)
            return len(statements)

        event.listen(core.engine.sync_engine, "before_cursor_execute", count)
        try:
            two, six = await batch(2, "a"), await batch(6, "b")
        finally:
            event.remove(core.engine.sync_engine, "before_cursor_execute", count)
        assert two == six, (two, six)
        assert [i.reports for i in await incidents(core)] == [5, 5, 3, 3, 3, 3]


async def test_reports_whose_incident_is_resolved_meanwhile_open_a_new_one(
        db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """On-call resolves an incident between storm control's lookup and its join (resolve locks the
    incident, not the rule): the reports are not added to the closed incident, where nobody would tell
    them about the fix; they open a new one."""
    from sqlalchemy import update

    lookup = store_incidents.find_open_incidents
    calls = 0

    async def resolved_right_after_lookup(**kwargs: object) -> dict[tuple[str, str], Incident]:
        nonlocal calls
        calls += 1
        found = await lookup(**kwargs)  # type: ignore[arg-type]
        if calls == 1 and found:
            session = kwargs["session"]
            await session.execute(update(Incident).values(status="resolved"))  # type: ignore[attr-defined]
        return found

    clock = Clock()
    async with FakeSlackApi() as slack, core_of(oncall_settings(db_url, slack, PAGERDUTY_ROUTING_KEY=ROUTING_KEY), clock) as core:
        assert (await report(core, OUTAGE, user="U01")).page == "paged"
        monkeypatch.setattr(store_incidents, "find_open_incidents", resolved_right_after_lookup)
        results = await asyncio.gather(*(report(core, OUTAGE, user=f"U1{i}") for i in range(3)))
        assert [r.page for r in results] == ["paged", "joined", "joined"]
        old, new = await incidents(core)
        assert (old.status, old.reports, new.status, new.reports) == ("resolved", 1, "triggered", 3)
        linked = [t.incident_id for t in await tickets(core)]
        assert linked == [old.id, new.id, new.id, new.id]
        assert calls == 2


async def test_lookup_of_open_incidents_matches_rule_and_key_pairs(db_url: str) -> None:
    """One query serves a whole batch; an incident of an asked-for rule with another rule's key is not
    taken, nor a resolved or a stale one; of two open ones the newest wins."""
    clock = Clock()
    async with FakeSlackApi() as slack, core_of(oncall_settings(db_url, slack), clock) as core:
        now = clock.now
        async with core.sessionmaker.begin() as session:
            def make(tag: str, rule: str, key: str, status: str = "triggered", age: timedelta = timedelta()) -> Incident:
                return Incident(rule_id=rule, group_key=key, status=status, pager="none", dedup_key=f"d-{tag}",
                                summary=tag, created_at=now - age, last_report_at=now - age)
            made = [make("a-email-old", "r-a", "email"), make("a-email", "r-a", "email"), make("b-vpn", "r-b", "vpn"),
                    make("a-vpn", "r-a", "vpn"), make("b-email-done", "r-b", "email", status="resolved"),
                    make("b-dns-stale", "r-b", "dns", age=timedelta(hours=3))]
            session.add_all(made)
        async with core.sessionmaker() as session:
            found = await store_incidents.find_open_incidents(
                session=session, keys={("r-a", "email"), ("r-b", "vpn"), ("r-b", "email"), ("r-b", "dns")},
                since=now - timedelta(hours=1))
        assert {k: v.summary for k, v in found.items()} == {("r-a", "email"): "a-email", ("r-b", "vpn"): "b-vpn"}


async def test_a_resolved_incident_is_not_joined(db_url: str) -> None:
    clock = Clock()
    async with FakeSlackApi() as slack, core_of(oncall_settings(db_url, slack, PAGERDUTY_ROUTING_KEY=ROUTING_KEY), clock) as core:
        await report(core, OUTAGE, user="U01")
        [incident] = await incidents(core)
        assert core.page_actions is not None
        assert (await core.page_actions.act(actor=Actor("slack", "U0ALICE", "alice"), action="resolve",
                                            incident_id=incident.id, event_id="r")).ok
        assert (await report(core, OUTAGE, user="U02")).page == "paged"
        assert len(await incidents(core)) == 2


async def test_page_cap_holds_pages_back_visibly(db_url: str) -> None:
    clock = Clock()
    async with FakeSlackApi() as slack:
        settings = oncall_settings(db_url, slack, PAGERDUTY_ROUTING_KEY=ROUTING_KEY)
        settings.storm.max_pages_per_rule_per_hour = 2
        async with core_of(settings, clock) as core:
            assert (await report(core, OUTAGE, user="U01")).page == "paged"
            assert (await report(core, "the VPN is down for everyone", user="U02")).page == "paged"
            held = await report(core, "Teams is down for everyone", user="U03")
            assert held.page == "held" and held.reply is not None and "without paging again" in held.reply.text
            assert (await report(core, "teams is down for everyone!", user="U04")).page == "joined"
            await drain(core)
            assert len(await rows(core, "pagerduty")) == 2
            posts = texts(slack, ONCALL_CHANNEL)
            assert len(posts) == 1 and "held back by the page cap" in posts[0] and "Teams is down" in posts[0]
            listing = await core.commands.dispatch(Actor("slack", ADMIN, "admin"), "incidents", event_id="c1")
            assert "HELD by the page cap" in listing.text and "2 report(s)" in listing.text
            refused = await core.commands.dispatch(Actor("slack", "U0RANDOM", "someone"), "incidents", event_id="c2")
            assert "Only on-call people" in refused.text

            ticket = held.ticket or ""
            released = await core.commands.dispatch(Actor("slack", "U0ALICE", "alice"), f"escalate {ticket}",
                                                    event_id="c3")
            assert "you paged it now" in released.text
            assert len(await rows(core, "pagerduty")) == 3

            clock.advance(minutes=61)  # the cap counts the last hour
            assert (await report(core, "SharePoint is down for everyone", user="U05")).page == "paged"
            held_incidents = [i for i in await incidents(core) if i.pager == "held"]
            assert held_incidents == []  # the held one was paged on request


async def test_a_held_page_acknowledged_then_released_is_acknowledged_at_the_pager_too(db_url: str) -> None:
    clock = Clock()
    async with FakeSlackApi() as slack, FakePagerDuty() as pd:
        settings = oncall_settings(db_url, slack, PAGERDUTY_ROUTING_KEY=ROUTING_KEY, PAGERDUTY_EVENTS_URL=pd.enqueue_url)
        settings.storm.max_pages_per_rule_per_hour = 1
        async with core_of(settings, clock) as core:
            await report(core, OUTAGE, user="U01")
            assert (await report(core, "the VPN is down for everyone", user="U02")).page == "held"
            held = (await incidents(core))[1]
            assert core.page_actions is not None
            alice = Actor("slack", "U0ALICE", "alice")
            assert (await core.page_actions.act(actor=alice, action="acknowledge", incident_id=held.id, event_id="a")).ok
            assert (await core.page_actions.act(actor=alice, action="escalate", incident_id=held.id, event_id="e")).ok
            await drain(core)
            # PagerDuty would otherwise keep paging an incident someone in chat already took.
            assert pd.actions_for(held.dedup_key) == ["trigger", "acknowledge"]
            assert pd.incident(held.dedup_key).status == "acknowledged"  # type: ignore[union-attr]


@pytest.mark.parametrize("round_", range(3))
async def test_two_replicas_open_one_incident(db_url: str, round_: int) -> None:
    """Two processes (engines) take the same storm's first reports at the same moment: one incident."""
    await upgrade(db_url)
    settings = load_settings(env={"HANDOFF_DATABASE_URL": db_url}, path=APP_YAML)
    clock = Clock()
    engines = [make_engine(db_url), make_engine(db_url)]
    try:
        intakes = []
        for engine in engines:
            sm = make_sessionmaker(engine)
            rules = ActiveRules(sessionmaker=sm, clock=clock)
            await rules.sync_from_file(settings.routing)
            intakes.append(Intake(sessionmaker=sm, rules=rules, clock=clock,
                                  storm=StormControl(options=PagingOptions(pager="pagerduty"))))
        results = await asyncio.gather(*(
            intake.handle(Inbound(platform="slack", event_id=f"race-{round_}-{n}", text=OUTAGE, user_id=f"U{n}"))
            for n, intake in enumerate(intakes)))
        assert sorted(r.page or "" for r in results) == ["joined", "paged"]
        async with make_sessionmaker(engines[0])() as session:
            found = list((await session.scalars(select(Incident))).all())
            pages = list((await session.scalars(select(OutboxRow).where(OutboxRow.kind == "pagerduty"))).all())
        assert len(found) == 1 and found[0].reports == 2 and len(pages) == 1
        assert json.dumps(pages[0].payload["dedup_key"]) and pages[0].payload["dedup_key"] == found[0].dedup_key
    finally:
        for engine in engines:
            await engine.dispose()
