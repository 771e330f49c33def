"""Outbound connectors: deliver outbox rows to third parties (MSP, pagers, Slack, Teams).

Each implements :class:`handlers.ports.Connector`. They share an ``aiohttp.ClientSession`` owned by the
application, never raise for expected failures, and keep secrets out of ``repr`` and ``detail``.
"""

from bot.connectors.local import LocalSink
from bot.connectors.msp import MspWebhookConnector, sign, verify
from bot.connectors.opsgenie import OpsgenieConnector, OpsgenieRequestError
from bot.connectors.pagerduty import (
    PagerDutyConnector,
    PagerDutyEventError,
    build_event,
)
from bot.connectors.slack_web import SlackApiError, SlackWebConnector, auth_test

__all__ = [
    "LocalSink",
    "MspWebhookConnector",
    "OpsgenieConnector",
    "OpsgenieRequestError",
    "PagerDutyConnector",
    "PagerDutyEventError",
    "SlackApiError",
    "SlackWebConnector",
    "auth_test",
    "build_event",
    "sign",
    "verify",
]
