"""The Slack, Teams and MSP edges configured as a deployment would have them, on loopback fakes.

For the tests that attack or fuzz those edges (``tests/test_forgery.py``, ``tests/test_fuzz.py``,
``tests/test_hostile_input.py``); each signs its MSP callbacks with a secret of its own.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from bot.config import Settings
from tests.fakes.bot_connector import APP_ID, APP_PASSWORD, FakeBotConnector
from tests.fakes.msp import FakeMsp
from tests.fakes.openid import FakeOpenId
from tests.fakes.slack_api import FakeSlackApi
from tests.helpers import BOT_TOKEN, SIGNING_SECRET, make_settings


@dataclass(frozen=True)
class Edges:
    """Settings pointing at the fakes, and the two fakes a test signs Teams requests with."""

    settings: Settings
    idp: FakeOpenId
    connector: FakeBotConnector


@contextlib.asynccontextmanager
async def edge_fakes(db_url: str, *, msp_secret: str) -> AsyncIterator[Edges]:
    """The fake OpenID issuer, Bot Connector, Slack Web API and MSP, and settings that use them."""
    async with FakeOpenId() as idp, FakeBotConnector(app_id=APP_ID, app_password=APP_PASSWORD) as connector, \
            FakeSlackApi(token=BOT_TOKEN) as slack, FakeMsp() as msp:
        settings = make_settings(
            db_url, SLACK_SIGNING_SECRET=SIGNING_SECRET, SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_API_URL=slack.api_base,
            TEAMS_APP_ID=APP_ID, TEAMS_APP_PASSWORD=APP_PASSWORD, TEAMS_OPENID_URL=idp.metadata_url,
            TEAMS_OAUTH_URL=connector.token_url(), TEAMS_CONNECTOR_URL=connector.service_url,
            HANDOFF_MSP_URL=msp.tickets_url, HANDOFF_MSP_SECRET=msp_secret,
        )
        yield Edges(settings, idp, connector)
