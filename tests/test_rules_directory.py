"""Admin groups: the Slack and Graph (Teams) group directories against loopback fakes, and the access policy."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
import yaml
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.core import rules_admin
from bot.config import load_settings
from bot.connectors.teams import BotTokenProvider
from bot.directory import GRAPH_SCOPE, GraphGroupDirectory, PlatformDirectory, SlackGroupDirectory
from handlers.commands import Actor
from handlers.ports import GroupLookupError
from handlers.rules_access import AdminAccess, AdminPolicy
from handlers.rules_state import ActiveRules
from storage.models import AuditEntry
from tests.fakes.base import Scripted
from tests.fakes.graph import FakeGraph
from tests.fakes.slack_api import FakeSlackApi

APP_YAML = Path(__file__).resolve().parent.parent / "app.yaml"
FIRE = 'add datacenter-fire --route page --any "sprinkler alarm, sprinklers went off" --note "facilities asked"'

TOKEN = "xoxb-fake-token"


class Tick:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


async def test_members_by_id_and_by_handle_are_cached() -> None:
    clock = Tick()
    async with FakeSlackApi(token=TOKEN) as slack, aiohttp.ClientSession() as http:
        slack.add_usergroup("S0ADMINS", handle="it-admins", users=["U1", "U2"])
        directory = SlackGroupDirectory(session=http, token=TOKEN, base_url=slack.api_base, ttl=60, clock=clock)
        assert await directory.members(platform="slack", group="S0ADMINS") == {"U1", "U2"}
        assert await directory.members(platform="slack", group="@it-admins") == {"U1", "U2"}
        assert len(slack.calls("usergroups.list")) == 1 and len(slack.calls("usergroups.users.list")) == 2
        request = slack.calls("usergroups.users.list")[0]
        assert request.header("Authorization") == f"Bearer {TOKEN}" and request.form == {"usergroup": "S0ADMINS"}

        slack.usergroups["S0ADMINS"]["users"] = ["U3"]
        clock.t = 59
        assert await directory.members(platform="slack", group="S0ADMINS") == {"U1", "U2"}  # cached
        clock.t = 61
        assert await directory.members(platform="slack", group="S0ADMINS") == {"U3"}
        assert len(slack.calls("usergroups.users.list")) == 3


@pytest.mark.parametrize(("setup", "group", "says"), [
    ("none", "S0NOPE", "no_such_subteam"),
    ("none", "it-admins", "no Slack user group with handle"),
    ("revoked", "S0ADMINS", "token_revoked"),
    ("ratelimited", "S0ADMINS", "ratelimited"),
])
async def test_failures_raise_and_are_not_cached(setup: str, group: str, says: str) -> None:
    async with FakeSlackApi(token=TOKEN) as slack, aiohttp.ClientSession() as http:
        slack.add_usergroup("S0ADMINS", handle="ops", users=["U1"])
        slack.revoked = setup == "revoked"
        if setup == "ratelimited":
            slack.ratelimit_next(1)
        directory = SlackGroupDirectory(session=http, token=TOKEN, base_url=slack.api_base)
        with pytest.raises(GroupLookupError, match=says):
            await directory.members(platform="slack", group=group)
        if setup in ("revoked", "ratelimited"):
            slack.revoked = False
            assert await directory.members(platform="slack", group=group) == {"U1"}


async def test_unreachable_slack_and_other_platforms() -> None:
    async with aiohttp.ClientSession() as http:
        directory = SlackGroupDirectory(session=http, token=TOKEN, base_url="http://127.0.0.1:9/api/", timeout=2)
        with pytest.raises(GroupLookupError, match="unreachable"):
            await directory.members(platform="slack", group="S0ADMINS")
        with pytest.raises(GroupLookupError, match="cannot read teams"):
            await directory.members(platform="teams", group="x")
        platforms = PlatformDirectory({"slack": directory})
        with pytest.raises(GroupLookupError, match="Microsoft Graph"):
            await platforms.members(platform="teams", group="IT admins")


async def test_access_through_a_real_slack_group() -> None:
    async with FakeSlackApi(token=TOKEN) as slack, aiohttp.ClientSession() as http:
        slack.add_usergroup("S0ADMINS", handle="it-admins", users=["U0BOB"])
        directory = PlatformDirectory({"slack": SlackGroupDirectory(session=http, token=TOKEN, base_url=slack.api_base)})
        access = AdminAccess(policy=AdminPolicy.build(slack=["U0ALICE"], slack_groups=["it-admins"],
                                                      teams_groups=["IT admins"], env_admins=["U0ENV", "teams:aad-1"]),
                             directory=directory)
        assert (await access.check("slack", "U0ALICE")).reason == "listed in admins.slack"
        assert (await access.check("slack", "U0BOB")).reason == "member of slack group it-admins"
        assert (await access.check("slack", "U0ENV")).reason == "listed in HANDOFF_ADMINS"
        assert (await access.check("teams", "aad-1")).allowed
        assert not (await access.check("slack", "aad-1")).allowed, "platform:id only counts on that platform"
        refused = await access.check("teams", "aad-2")
        assert not refused.allowed and "Microsoft Graph" in refused.reason
        assert not (await access.check("slack", "")).allowed
        assert "admins.slack" in access.how_to_become("slack") and "it-admins" in access.how_to_become("slack")
        console = access.how_to_become("console")  # `handoff chat`: app.yaml has no admins.console
        assert "HANDOFF_ADMINS=console-user" in console and "admins.console" not in console


# --- Teams groups through Microsoft Graph ----------------------------------------------------------

GRAPH_APP_ID = "eac5e5c6-ab14-4f50-80cb-49213fe51b1a"
GRAPH_SECRET = "teams-client-secret-for-tests"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
ADMINS_GID = "0d1c7e5a-6a1f-4c3e-9f6b-2b1f0c9d8e71"
NESTED_GID = "5e2f9a40-3b7d-4e1c-8a6f-9c0b1d2e3f45"
CAROL_AAD = "6d415fdd-f97e-4f70-ac45-e69601e4ecb2"  # what Teams sends as from.aadObjectId
DAVE_AAD = "6b703ce3-6d14-4fe6-b90c-dc5f03657ae4"


def graph_directory(http: aiohttp.ClientSession, graph: FakeGraph, *, clock: Tick | None = None,
                    secret: str = GRAPH_SECRET) -> GraphGroupDirectory:
    tokens = BotTokenProvider(session=http, app_id=GRAPH_APP_ID, app_password=SecretStr(secret),
                              token_url=graph.token_url(TENANT), scope=GRAPH_SCOPE)
    return GraphGroupDirectory(session=http, tokens=tokens, base_url=graph.url, ttl=60, timeout=5,
                               clock=clock if clock is not None else Tick())


async def test_graph_member_allowed_and_non_member_refused() -> None:
    async with FakeGraph(app_id=GRAPH_APP_ID, app_password=GRAPH_SECRET) as graph, aiohttp.ClientSession() as http:
        graph.add_group(ADMINS_GID, [CAROL_AAD])
        directory = PlatformDirectory({"teams": graph_directory(http, graph)})
        access = AdminAccess(policy=AdminPolicy.build(teams_groups=[ADMINS_GID]), directory=directory)
        allowed = await access.check("teams", CAROL_AAD)
        assert allowed.allowed and allowed.reason == f"member of teams group {ADMINS_GID}"
        refused = await access.check("teams", DAVE_AAD)
        assert not refused.allowed and refused.reason == "not a rule admin", "a clean no, nothing failed"
        assert not (await access.check("slack", CAROL_AAD)).allowed, "Teams groups only admit Teams actors"

        [token_request] = graph.token_requests()
        assert token_request.path == f"/{TENANT}/oauth2/v2.0/token"
        assert token_request.form == {"grant_type": "client_credentials", "client_id": GRAPH_APP_ID,
                                      "client_secret": GRAPH_SECRET, "scope": "https://graph.microsoft.com/.default"}
        [request] = graph.member_requests()  # the second check was answered from the cache
        assert request.method == "GET"
        assert request.path == f"/v1.0/groups/{ADMINS_GID}/transitiveMembers/microsoft.graph.user"
        assert request.query == {"$select": "id", "$top": "999"}
        assert request.header("Authorization") == f"Bearer {graph.issued[0]}"


async def test_graph_paging_is_followed_and_nested_groups_count() -> None:
    async with FakeGraph(app_id=GRAPH_APP_ID, app_password=GRAPH_SECRET, page_size=2) as graph, \
            aiohttp.ClientSession() as http:
        others = [f"00000000-0000-4000-8000-00000000000{i}" for i in range(4)]
        graph.add_group(NESTED_GID, [others[3], DAVE_AAD])
        graph.add_group(ADMINS_GID, [*others[:3], NESTED_GID])
        directory = graph_directory(http, graph)
        assert await directory.members(platform="teams", group=ADMINS_GID) == {*others, DAVE_AAD}
        pages = graph.member_requests()
        assert len(pages) == 3 and "$skiptoken" not in pages[0].query
        assert all("$skiptoken" in p.query for p in pages[1:]) and len(graph.token_requests()) == 1


async def test_graph_cache_is_honoured() -> None:
    clock = Tick()
    async with FakeGraph(app_id=GRAPH_APP_ID, app_password=GRAPH_SECRET) as graph, aiohttp.ClientSession() as http:
        graph.add_group(ADMINS_GID, [CAROL_AAD])
        directory = graph_directory(http, graph, clock=clock)
        assert await directory.members(platform="teams", group=ADMINS_GID) == {CAROL_AAD}
        graph.add_group(ADMINS_GID, [DAVE_AAD])
        clock.t = 59
        assert await directory.members(platform="teams", group=ADMINS_GID.upper()) == {CAROL_AAD}, "cached"
        assert len(graph.member_requests()) == 1
        clock.t = 61
        assert await directory.members(platform="teams", group=ADMINS_GID) == {DAVE_AAD}
        assert len(graph.member_requests()) == 2


@pytest.mark.parametrize(("setup", "group", "says"), [
    ("forbidden", ADMINS_GID, "HTTP 403 Authorization_RequestDenied: .*GroupMember.Read.All"),
    ("none", NESTED_GID, "HTTP 404 Request_ResourceNotFound: no such group"),
    ("throttled", ADMINS_GID, "HTTP 429 TooManyRequests"),
    ("down", ADMINS_GID, "HTTP 503 .*Graph is unavailable"),
    ("none", "IT admins", "Entra ID object id"),
])
async def test_graph_failures_refuse_and_are_not_cached(setup: str, group: str, says: str) -> None:
    async with FakeGraph(app_id=GRAPH_APP_ID, app_password=GRAPH_SECRET) as graph, aiohttp.ClientSession() as http:
        graph.add_group(ADMINS_GID, [CAROL_AAD])
        directory = graph_directory(http, graph)
        await directory._tokens.token()  # fetched and cached: the scripts below hit Graph itself
        graph.granted = setup != "forbidden"
        if setup == "throttled":
            graph.fail_next(1, status=429, headers={"Retry-After": "3"})
        if setup == "down":
            graph.fail_next(1, status=503)
        with pytest.raises(GroupLookupError, match=says):
            await directory.members(platform="teams", group=group)
        if setup in ("forbidden", "throttled", "down"):
            graph.granted = True
            assert await directory.members(platform="teams", group=group) == {CAROL_AAD}


async def test_graph_token_and_network_failures_refuse() -> None:
    async with FakeGraph(app_id=GRAPH_APP_ID, app_password=GRAPH_SECRET) as graph, aiohttp.ClientSession() as http:
        graph.add_group(ADMINS_GID, [CAROL_AAD])
        with pytest.raises(GroupLookupError, match="Graph token: token endpoint refused: HTTP 401 invalid_client"):
            await graph_directory(http, graph, secret="wrong").members(platform="teams", group=ADMINS_GID)
        assert graph.member_requests() == [], "no Graph call without a token"
        directory = graph_directory(http, graph)
        await directory.members(platform="teams", group=ADMINS_GID)
        graph.issued.clear()  # Graph no longer accepts the token the directory has cached
        directory._cache.clear()
        with pytest.raises(GroupLookupError, match="HTTP 401 InvalidAuthenticationToken"):
            await directory.members(platform="teams", group=ADMINS_GID)
        assert await directory.members(platform="teams", group=ADMINS_GID) == {CAROL_AAD}, "a refused token is dropped"
        with pytest.raises(GroupLookupError, match="cannot read slack"):
            await directory.members(platform="slack", group="S0ADMINS")
    async with aiohttp.ClientSession() as http:
        tokens = BotTokenProvider(session=http, app_id=GRAPH_APP_ID, app_password=SecretStr(GRAPH_SECRET),
                                  token_url="http://127.0.0.1:9/t/oauth2/v2.0/token", scope=GRAPH_SCOPE, timeout=2)
        with pytest.raises(GroupLookupError, match="unreachable"):
            await GraphGroupDirectory(session=http, tokens=tokens, base_url="http://127.0.0.1:9").members(
                platform="teams", group=ADMINS_GID)


async def test_graph_next_link_outside_graph_is_refused() -> None:
    async with FakeGraph(app_id=GRAPH_APP_ID, app_password=GRAPH_SECRET) as graph, aiohttp.ClientSession() as http:
        directory = graph_directory(http, graph)
        await directory._tokens.token()
        graph.script(Scripted(status=200, body={"value": [{"id": CAROL_AAD}],
                                                "@odata.nextLink": "https://evil.example/steal?$skiptoken=x"}))
        with pytest.raises(GroupLookupError, match="outside the Graph base URL"):
            await directory.members(platform="teams", group=ADMINS_GID)
        assert len(graph.member_requests()) == 1


async def test_teams_group_admin_through_app_wiring_and_graph_403_is_audited(
        sessionmaker: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HANDOFF_ADMINS", raising=False)
    async with FakeGraph(app_id=GRAPH_APP_ID, app_password=GRAPH_SECRET) as graph, aiohttp.ClientSession() as http:
        graph.add_group(ADMINS_GID, [CAROL_AAD])
        settings = load_settings(env={"TEAMS_APP_ID": GRAPH_APP_ID, "TEAMS_APP_PASSWORD": GRAPH_SECRET,
                                      "TEAMS_APP_TYPE": "SingleTenant", "TEAMS_TENANT_ID": TENANT,
                                      "TEAMS_OAUTH_URL": graph.token_url(TENANT), "TEAMS_GRAPH_URL": graph.url},
                                 path=APP_YAML)
        admins = settings.admins.model_copy(update={"teams_groups": [ADMINS_GID]})
        settings = settings.model_copy(update={"admins": admins})
        clock = lambda: datetime(2026, 11, 28, 12, 0, tzinfo=UTC)  # noqa: E731
        rules = ActiveRules(sessionmaker=sessionmaker, clock=clock)
        await rules.sync_from_file(yaml.safe_load(APP_YAML.read_text(encoding="utf-8"))["routing"])
        admin = rules_admin(settings, sessionmaker=sessionmaker, rules=rules, http=http, clock=clock)

        carol = Actor("teams", CAROL_AAD, "carol")
        graph.granted = False  # the app has no GroupMember.Read.All yet: even a member is refused
        answer = await admin.handle(carol, FIRE)
        assert "Only rule admins" in answer.text
        async with sessionmaker() as session:
            entries = (await session.scalars(select(AuditEntry).order_by(AuditEntry.id))).all()
        rules_entries = [e for e in entries if e.action.startswith("rules.") and e.action != "rules.import-file"]
        [refused] = rules_entries
        assert not refused.allowed and refused.actor.startswith(f"teams:{CAROL_AAD}")
        assert "HTTP 403" in refused.detail["reason"] and "GroupMember.Read.All" in refused.detail["reason"]
        assert GRAPH_SECRET not in str(refused.detail) and graph.issued[0] not in str(refused.detail)

        graph.granted = True  # consent given: the failure was not cached
        assert "Draft: added" in (await admin.handle(carol, FIRE)).text
        assert "Only rule admins" in (await admin.handle(Actor("teams", DAVE_AAD, "dave"), "rm datacenter-fire")).text
        async with sessionmaker() as session:
            entries = (await session.scalars(select(AuditEntry).order_by(AuditEntry.id))).all()
        rules_entries = [e for e in entries if e.action.startswith("rules.") and e.action != "rules.import-file"]
        assert [(e.actor.split(" ")[0], e.allowed) for e in rules_entries[1:]] == [
            (f"teams:{CAROL_AAD}", True), (f"teams:{DAVE_AAD}", False)]
