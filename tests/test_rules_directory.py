"""Admin groups: the Slack group directory against the loopback Slack fake, and the access policy."""

from __future__ import annotations

import aiohttp
import pytest

from bot.directory import PlatformDirectory, SlackGroupDirectory
from handlers.ports import GroupLookupError
from handlers.rules_access import AdminAccess, AdminPolicy
from tests.fakes.slack_api import FakeSlackApi

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
