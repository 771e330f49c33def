"""Loopback fakes of the third parties handoff talks to (real aiohttp servers on 127.0.0.1:0)."""

from tests.fakes.base import FakeService, RecordedRequest, Scripted
from tests.fakes.msp import FakeMsp
from tests.fakes.opsgenie import Alert, FakeOpsgenie
from tests.fakes.pagerduty import FakePagerDuty, Incident
from tests.fakes.slack_api import FakeSlackApi

__all__ = [
    "Alert",
    "FakeMsp",
    "FakeOpsgenie",
    "FakePagerDuty",
    "FakeService",
    "FakeSlackApi",
    "Incident",
    "RecordedRequest",
    "Scripted",
]
