"""The ``rules`` use case on a real database (SQLite and PostgreSQL): drafts, audit, publish, rollback,
import, permissions. The Slack path end to end is in test_rules_slack.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.slack_shape import plain_text
from handlers.admin_rules import RulesAdmin, RulesAdminOptions
from handlers.commands import Actor, CommandReply
from handlers.ports import GroupLookupError
from handlers.rules_access import AdminAccess, AdminPolicy
from handlers.rules_state import ActiveRules
from routing.rules import ruleset_from_dict, ruleset_to_dict
from storage import rules_admin, service
from storage.db import make_engine, make_sessionmaker, upgrade
from storage.models import AuditEntry, RulesetVersion

APP_YAML = Path(__file__).resolve().parent.parent / "app.yaml"
ALICE = Actor("slack", "U0ALICE", "alice", "C0GEN")
BOB = Actor("slack", "U0BOB", "bob", "C0GEN")
EVE = Actor("slack", "U0EVE", "eve", "C0GEN")
CAROL = Actor("teams", "aad-carol", "carol")


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


class Groups:
    """A group directory as the port describes it (a real implementation, in memory)."""

    def __init__(self, groups: dict[str, set[str]], broken: bool = False) -> None:
        self.groups, self.broken, self.calls = groups, broken, 0

    async def members(self, *, platform: str, group: str) -> frozenset[str]:
        self.calls += 1
        if self.broken:
            raise GroupLookupError("usergroups.users.list: missing_scope")
        return frozenset(self.groups.get(group, set()))


@dataclass
class Env:
    admin: RulesAdmin
    rules: ActiveRules
    sessionmaker: async_sessionmaker[AsyncSession]
    clock: Clock
    groups: Groups

    async def run(self, actor: Actor, text: str) -> CommandReply:
        answer = await self.admin.handle(actor, text)
        for block in answer.blocks or []:
            if block["type"] == "section":
                assert len(block["text"]["text"]) <= 3000
        assert len(answer.blocks or []) <= 50
        return answer

    async def audit(self) -> list[AuditEntry]:
        async with self.sessionmaker() as session:
            entries = (await session.scalars(select(AuditEntry).order_by(AuditEntry.id))).all()
        return [e for e in entries if e.action.startswith("rules.") and e.action != "rules.import-file"]

    async def versions(self) -> list[RulesetVersion]:
        async with self.sessionmaker() as session:
            return list((await session.scalars(select(RulesetVersion).order_by(RulesetVersion.version))).all())

    async def draft(self, actor: Actor) -> Any:
        async with self.sessionmaker() as session:
            return await rules_admin.get_draft(session=session, owner=f"{actor.platform}:{actor.user_id}")

    async def store(self, text: str, *, age: timedelta = timedelta(hours=1)) -> str:
        async with self.sessionmaker.begin() as session:
            t = await service.create_ticket(session=session, now=self.clock.now - age, platform="slack", user_id="U1",
                                            user_name="", channel_id="D1", thread_ref=None, text=text, route="msp",
                                            severity="normal", queue="msp-service-desk", rule_id="x", ruleset_version=1,
                                            why="", terms=[], redactions=[], fail_closed=False, conversation=None)
            return t.key


@pytest.fixture
async def env(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[Env]:
    clock = Clock()
    rules = ActiveRules(sessionmaker=sessionmaker, clock=clock)
    await rules.sync_from_file(yaml.safe_load(APP_YAML.read_text(encoding="utf-8"))["routing"])
    groups = Groups({"S0ADMINS": {"U0BOB"}})
    policy = AdminPolicy.build(slack=["U0ALICE"], slack_groups=["S0ADMINS"], env_admins=["teams:aad-carol"])
    admin = RulesAdmin(sessionmaker=sessionmaker, rules=rules, clock=clock,
                       access=AdminAccess(policy=policy, directory=groups),
                       options=RulesAdminOptions(replay_budget_seconds=None))
    yield Env(admin, rules, sessionmaker, clock, groups)


FIRE = 'add datacenter-fire --route page --any "sprinkler alarm, sprinklers went off" --note "facilities asked"'


async def test_non_admin_is_refused_and_audited_but_may_look(env: Env) -> None:
    answer = await env.run(EVE, FIRE)
    assert "Only rule admins may `rules add`" in answer.text and "admins.slack" in answer.text
    [entry] = await env.audit()
    assert (entry.actor, entry.action, entry.allowed) == ("slack:U0EVE (eve)", "rules.add", False)
    assert entry.detail["command"].startswith("add datacenter-fire") and entry.detail["reason"] == "not a rule admin"
    for text in ("list", "show ransomware", 'test "my files are encrypted"', "history", "help", "help publish"):
        assert ":no_entry:" not in (await env.run(EVE, text)).text, text
    assert len(await env.audit()) == 1, "read-only commands are open and not audited"
    for text in ("publish", "replay", "export", "diff", "import ```x```", "rollback 1"):
        assert "Only rule admins" in (await env.run(EVE, text)).text
    assert [e.allowed for e in await env.audit()] == [False] * 7
    assert await env.draft(EVE) is None


async def test_group_members_and_env_admins_may_edit(env: Env) -> None:
    assert "Draft: added" in (await env.run(BOB, FIRE)).text  # member of S0ADMINS
    assert "Draft: added" in (await env.run(CAROL, FIRE)).text  # HANDOFF_ADMINS teams:aad-carol
    env.groups.broken = True
    answer = await env.run(BOB, "rm datacenter-fire")
    assert "Only rule admins" in answer.text
    refused = (await env.audit())[-1]
    assert not refused.allowed and "missing_scope" in refused.detail["reason"], "why membership failed is audited"


async def test_edit_builds_a_private_draft_and_every_step_is_audited(env: Env) -> None:
    answer = await env.run(ALICE, FIRE)
    assert "Draft: added `datacenter-fire`" in answer.text and "based on v1" in answer.text
    assert "+ added `datacenter-fire`" in answer.text
    draft = await env.draft(ALICE)
    assert draft.base_version == 1 and draft.origin == "chat"
    assert any(r["id"] == "datacenter-fire" for r in draft.content["rules"])
    assert "no draft" in (await env.run(BOB, "list --draft")).text, "drafts are per admin"
    assert "datacenter-fire" not in (await env.run(BOB, "list")).text

    before = dict(draft.content)
    answer = await env.run(ALICE, "edit datacenter-fire --queue it-security")
    assert ":x:" in answer.text and "add `--route internal`" in answer.text and "Usage: `/handoff rules edit" in answer.text
    assert (await env.draft(ALICE)).content == before, "a refused edit leaves the draft as it was"

    test = await env.run(ALICE, 'test "the sprinkler alarm is ringing on floor 2"')
    assert "live v1" in test.text and "your draft (based on v1), DIFFERENT" in test.text
    assert "via `datacenter-fire`" in test.text and "pages the on-call" in test.text

    diff = await env.run(ALICE, "diff")
    assert "+ added `datacenter-fire`" in diff.text and "against *live v1*" in diff.text

    entries = await env.audit()
    assert [(e.action, e.allowed, e.detail["outcome"]) for e in entries] == [
        ("rules.add", True, "ok"), ("rules.edit", True, "error"), ("rules.diff", True, "ok")]
    assert entries[0].detail["diff"] == ["+ added `datacenter-fire` at position " + entries[0].detail["diff"][0].rsplit(" ", 1)[1]]
    assert "belongs to route" in entries[1].detail["error"]


async def test_publish_needs_confirm_when_stored_requests_change_paging(env: Env) -> None:
    paging_now = await env.store("the sprinkler alarm is ringing in the warehouse")
    await env.store("the sprinkler alarm test is scheduled", age=timedelta(days=30))  # outside the 7-day window
    await env.run(ALICE, FIRE)
    replay = await env.run(ALICE, "replay")
    assert "newly page: *1*" in replay.text and paging_now in replay.text

    refused = await env.run(ALICE, 'publish --note "fire alarms page"')
    assert "needs --confirm" in refused.text and paging_now in refused.text and "1 newly page" in refused.text
    assert [v.version for v in await env.versions()] == [1]

    done = await env.run(ALICE, 'publish --confirm --note "fire alarms page"')
    assert "Published *v2*" in done.text and "rollback 1" in done.text
    [v1, v2] = await env.versions()
    assert (v2.source, v2.author, v2.note) == ("chat", "slack:U0ALICE (alice)", "fire alarms page")
    assert await env.draft(ALICE) is None, "publishing consumes the draft"
    assert env.rules.version == 2, "this replica switched at once"
    entry = (await env.audit())[-1]
    assert entry.action == "rules.publish" and entry.target == "v2" and entry.detail["confirm"] is True
    assert entry.detail["replay"]["newly_paging"] == [paging_now] and entry.detail["diff"]


async def test_publish_refused_by_the_linter_changes_nothing(env: Env) -> None:
    routing = (await env.versions())[0].content
    outage = next(r["id"] for r in routing["rules"] if "outage" in r["id"] and r["route"] == "page")
    await env.run(ALICE, f"disable {outage}")
    answer = await env.run(ALICE, "publish --confirm")
    assert "publish refused by the linter" in answer.text and "would no longer page" in answer.text
    assert len(await env.versions()) == 1 and await env.draft(ALICE) is not None
    assert (await env.audit())[-1].detail["outcome"] == "error"


async def test_publish_when_live_moved_says_what_it_would_undo(env: Env) -> None:
    await env.run(ALICE, FIRE)
    await env.run(BOB, "edit hardware --add-any 'docking station'")
    await env.run(BOB, "publish --confirm")  # live is now v2, Alice's draft is based on v1
    diff = await env.run(ALICE, "diff")
    assert "moved from v1 to v2" in diff.text
    answer = await env.run(ALICE, "publish")
    assert "needs --confirm" in answer.text and "moved from v1 to v2" in answer.text and "`hardware`" in answer.text
    done = await env.run(ALICE, "publish --confirm")
    assert "Published *v3*" in done.text


def _import(content: dict[str, Any]) -> str:
    return "import ```yaml\n" + yaml.safe_dump({"routing": content}, sort_keys=False, allow_unicode=True) + "```"


async def test_publish_when_live_moved_names_a_timezone_or_queue_it_would_undo(env: Env) -> None:
    await env.run(ALICE, 'add sprinkler --route internal --any "sprinkler alarm"')  # Alice's draft, on v1
    v1 = (await env.versions())[0].content
    v2 = dict(v1, timezone="Europe/Berlin", queues=[*v1["queues"], {"name": "facilities", "route": "internal"}])
    assert "imported" in (await env.run(BOB, _import(v2))).text
    assert "Published *v2*" in (await env.run(BOB, "publish --confirm")).text
    answer = await env.run(ALICE, "publish")  # her draft still has v1's zone and queues
    assert "needs --confirm" in answer.text, answer.text
    assert "timezone Europe/Berlin (set in v2) back to UTC" in answer.text
    assert "queue `facilities` (added in v2)" in answer.text
    assert len(await env.versions()) == 2


async def test_two_first_edits_at_once_are_both_kept(env: Env) -> None:
    # No draft row yet: locking it locked nothing, both edits started from live, the second overwrote the first.
    first, second = await asyncio.gather(env.run(ALICE, 'add sprinkler --route internal --any "sprinkler alarm"'),
                                         env.run(ALICE, 'add elevator --route internal --any "elevator stuck"'))
    assert "Draft: added" in first.text and "Draft: added" in second.text
    assert {"sprinkler", "elevator"} <= {r["id"] for r in (await env.draft(ALICE)).content["rules"]}


async def test_an_edit_arriving_during_a_publish_is_never_lost(env: Env) -> None:
    for i in range(300):  # stored requests: the publish's replay takes a while
        await env.store(f"my laptop fan is loud {i}")
    await env.run(ALICE, 'add sprinkler --route internal --any "sprinkler alarm"')
    published, edited = await asyncio.gather(env.run(ALICE, "publish --confirm"),
                                             env.run(ALICE, 'add elevator --route internal --any "elevator stuck"'))
    live = {r["id"] for r in (await env.versions())[-1].content["rules"]}
    draft = await env.draft(ALICE)
    kept = "elevator" in live or (draft is not None and "elevator" in {r["id"] for r in draft.content["rules"]})
    assert kept or "Draft: added" not in edited.text, (published.text[:200], edited.text[:200])


async def test_rollback_publishes_an_exact_copy_and_keeps_history(env: Env) -> None:
    await env.run(ALICE, FIRE)
    await env.run(ALICE, "publish --confirm")
    answer = await env.run(ALICE, "rollback v1")
    assert "Published *v3* (rollback; was v2)" in answer.text and "- removed `datacenter-fire`" in answer.text
    v1, v2, v3 = await env.versions()
    assert v3.source == "rollback" and v3.content == v1.content and v3.content_hash == v1.content_hash
    assert v3.note == "rollback to v1" and env.rules.version == 3
    history = await env.run(EVE, "history")
    assert "*v3* *(live)*" in history.text and "*v2*" in history.text and "*v1*" in history.text
    assert "what is live already" in (await env.run(ALICE, "rollback 3")).text
    assert "no version 9" in (await env.run(ALICE, "rollback 9")).text


async def test_notes_and_descriptions_are_redacted_before_they_are_stored(env: Env) -> None:
    """Only the audit copy used to be redacted: the draft, the version, rulesets.note and what
    `rules show` and `rules history` show to anyone kept the password."""
    pw = "Hunter22!xq"
    await env.run(ALICE, 'add plotter --route msp --queue msp-service-desk --any "plotter" '
                         f'--note "svc password is {pw}" --description "plotter, pw: {pw}"')
    await env.run(ALICE, f'edit ransomware --note "{"x" * 475} password: {pw}"')  # 497 chars, 505 redacted
    assert pw not in str((await env.draft(ALICE)).content)
    await env.run(ALICE, f'publish --confirm --note "rotated the svc account, password is {pw}"')
    await env.run(ALICE, f"rollback v1 --confirm --note \"back: pw {pw}\"")
    *_, v2, v3 = await env.versions()
    assert "[redacted:password]" in v2.note and "[redacted:password]" in v3.note
    plotter = next(r for r in v2.content["rules"] if r["id"] == "plotter")
    assert plotter["note"] == "svc password is [redacted:password]"
    assert plotter["description"] == "plotter, pw: [redacted:password]"
    long_note = next(r for r in v2.content["rules"] if r["id"] == "ransomware")["note"]
    assert long_note.startswith("x" * 475) and len(long_note) <= 500, "clipped to the field's limit"
    await env.run(ALICE, f"import ```yaml\nrouting:\n  queues: {v2.content['queues']}\n  rules:\n"
                         f"  - {{id: default, route: msp, queue: msp-service-desk, description: 'pw: {pw}'}}\n```")
    imported = str((await env.draft(ALICE)).content)
    assert pw not in imported and "pw: [redacted:password]" in imported
    shown = [(await env.run(EVE, c)).text for c in ("history", "show plotter --version 2", "show ransomware --version 2")]
    assert "[redacted:password]" in shown[0] and not any(pw in t for t in shown)
    assert not any(pw in str(v.content) or pw in v.note for v in await env.versions())


async def test_test_at_a_time_uses_the_version_live_then(env: Env) -> None:
    first = (await env.versions())[0].created_at
    await env.run(ALICE, FIRE)
    await env.run(ALICE, "publish --confirm")
    now = await env.run(EVE, 'test "sprinkler alarm in the lobby"')
    assert "live v2" in now.text and "`datacenter-fire`" in now.text
    then = await env.run(EVE, f'test "sprinkler alarm in the lobby" --at {first.isoformat()}')
    assert "v1, live at" in then.text and "`datacenter-fire`" not in then.text
    early = await env.run(EVE, 'test "x" --at 2001-01-01T00:00Z')
    assert "no rules were live" in early.text
    for edge in ("0001-01-01T00:00+01:00", "9999-12-31T23:59-01:00", "1900-01-01T00:00Z"):  # OverflowError at the ends
        assert "out of range: give a time between 1970 and 2999" in (await env.run(EVE, f'test "x" --at {edge}')).text


async def test_import_replaces_the_draft_or_changes_nothing(env: Env) -> None:
    await env.run(ALICE, FIRE)
    draft_before = (await env.draft(ALICE)).content
    bad = await env.run(ALICE, "import ```yaml\nrouting:\n  queues: []\n  rules: [{id: Bad!, route: pager}]\n```")
    assert ":x:" in bad.text and "not a valid id" in bad.text and "at least 1 item" in bad.text
    assert (await env.draft(ALICE)).content == draft_before
    assert (await env.audit())[-1].detail["outcome"] == "error"

    exported = await env.run(ALICE, "export")
    assert "```" in exported.text
    live = (await env.versions())[0].content
    live["rules"][-1]["severity"] = "low"
    text = yaml.safe_dump({"routing": live}, sort_keys=False, allow_unicode=True)
    good = await env.run(ALICE, f"import ```yaml\n{text}```")
    assert "imported a rule set" in good.text and "`default`: severity" in good.text
    draft = await env.draft(ALICE)
    assert draft.origin == "import" and draft.content["rules"][-1]["severity"] == "low"
    assert not any(r["id"] == "datacenter-fire" for r in draft.content["rules"]), "import replaces the draft"
    await env.run(ALICE, "publish --confirm")
    assert (await env.versions())[-1].source == "import"


async def test_export_then_import_is_the_same_rule_set(env: Env) -> None:
    pages: list[str] = []
    page = 1
    while True:
        answer = await env.run(ALICE, f"export --page {page}")
        body = answer.text.split("```\n", 1)[1].rsplit("\n```", 1)[0]
        pages.append(body)
        if "next:" not in answer.text:
            break
        page += 1
    text = "\n".join(pages)
    # pasted back in Slack, the export (escaped for Slack) arrives escaped and the edge undoes it once
    await env.run(ALICE, plain_text(f"import ```yaml\n{text}\n```", keep_mentions=True))
    assert "nothing to publish" in (await env.run(ALICE, "publish")).text
    assert ruleset_to_dict(env.rules.classifier.ruleset) == (await env.draft(ALICE)).content


async def test_discard_and_nothing_to_do(env: Env) -> None:
    assert "no draft to discard" in (await env.run(ALICE, "discard")).text
    assert "no draft to publish" in (await env.run(ALICE, "publish")).text
    await env.run(ALICE, "disable patching")
    assert "nothing changed" in (await env.run(ALICE, "disable patching")).text
    assert "Your draft is gone" in (await env.run(ALICE, "discard")).text
    assert await env.draft(ALICE) is None


async def test_long_answers_are_paged_within_slack_limits(env: Env) -> None:
    for i in range(25):
        await env.run(ALICE, f"edit default --severity {'low' if i % 2 == 0 else 'normal'}")
        await env.run(ALICE, f"publish --note 'round {i}'")
    history = await env.run(EVE, "history")
    assert "Page 1 of 3" in history.text and "rules history --page 2" in history.text
    last = await env.run(EVE, "history --page 3")
    assert "*v1*" in last.text and "next:" not in last.text
    listing = await env.run(EVE, "list")
    assert "rules list --page 2" in listing.text


async def test_unknown_subcommand_and_help(env: Env) -> None:
    answer = await env.run(EVE, "pubish")
    assert "did you mean `rules publish`" in answer.text and "/handoff rules help" in answer.text
    assert "cannot carry files" in (await env.run(EVE, "help import")).text
    assert await env.audit() == []


# --- property: a failed import leaves the draft untouched ---------------------------------------

_IMPORTS = st.one_of(
    st.text(max_size=200),
    st.builds(lambda body: f"```yaml\n{body}\n```", st.text(max_size=200)),
    st.sampled_from(["```yaml\nrouting: {queues: [], rules: []}\n```", "```\na: &x 1\nb: *x\n```", "```yaml\n[[[[[[[[[[[[[[1]]]]]]]]]]]]]]\n```",
                     "```yaml\nqueues: [{name: q, route: internal}]\nrules: [{id: d, route: internal, queue: q}]\n```",
                     "```yaml\nqueues: [{name: q, route: internal}]\nrules: [{id: a, route: internal, queue: q, when: {regex: ['(?=x)']}}, {id: d, route: internal, queue: q}]\n```"]),
)


def test_a_failed_import_never_touches_the_draft(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'import.db'}"
    loop = asyncio.new_event_loop()  # one loop for every example, so the engine is opened once
    engine = make_engine(url)

    async def build() -> RulesAdmin:
        await upgrade(url)
        sm = make_sessionmaker(engine)
        rules = ActiveRules(sessionmaker=sm, clock=Clock())
        await rules.sync_from_file(yaml.safe_load(APP_YAML.read_text(encoding="utf-8"))["routing"])
        return RulesAdmin(sessionmaker=sm, rules=rules, clock=Clock(),
                          access=AdminAccess(policy=AdminPolicy.build(slack=["U0ALICE"])))

    async def attempt(admin: RulesAdmin, text: str) -> tuple[Any, Any, str]:
        sm = make_sessionmaker(engine)
        async with sm() as session:
            before = await rules_admin.get_draft(session=session, owner="slack:U0ALICE")
        answer = await admin.handle(ALICE, "import " + text)
        async with sm() as session:
            after = await rules_admin.get_draft(session=session, owner="slack:U0ALICE")
        return (before.content if before else None), (after.content if after else None), answer.text

    try:
        admin = loop.run_until_complete(build())

        @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
        @given(_IMPORTS)
        def check(text: str) -> None:
            before, after, answer = loop.run_until_complete(attempt(admin, text))
            if answer.startswith(":x:"):
                assert after == before, answer
            else:
                assert "imported a rule set" in answer and after is not None
                assert ruleset_from_dict(after) is not None

        check()
    finally:
        loop.run_until_complete(engine.dispose())
        loop.close()
