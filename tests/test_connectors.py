"""Outbound connectors against loopback fakes of MSP, PagerDuty and Slack (real HTTP on 127.0.0.1)."""

from __future__ import annotations

import email.utils
import hashlib
import hmac
import inspect
import json
import re
import socket
import time
from pathlib import Path

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.connectors import (
    LocalSink,
    MspWebhookConnector,
    PagerDutyConnector,
    SlackApiError,
    SlackWebConnector,
    auth_test,
    build_event,
    sign,
    verify,
)
from bot.connectors.http import parse_retry_after
from handlers.ports import DeliveryResult
from tests.fakes import FakeMsp, FakePagerDuty, FakeSlackApi, Scripted
from tests.fakes.pagerduty import validate_event

NOW = 1_700_000_000.0
SECRET = "whsec-msp-signing-secret-0001"
ROUTING_KEY = "R0UT1NGKEY0123456789abcdefABCDEF"  # 32 alphanumerics, like a real integration key
TOKEN = "xoxb-1111-2222-secret-token"
DOCS = Path(__file__).resolve().parent.parent / "docs" / "msp-webhook.md"

ROW = {
    "id": "tkt-1", "text": "Outlook keeps crashing \u00e9", "queue": "msp-desktop", "severity": "normal",
    "route": "msp", "rule": "desktop-apps", "ruleset_version": 3,
    "requester": {"platform": "slack", "user_id": "W111"}, "created_at": "2024-05-02T09:14:07Z",
}
PAGE = {
    "event_action": "trigger", "dedup_key": "handoff-req-42", "summary": "Ransomware note on FS01",
    "source": "handoff", "severity": "critical", "custom_details": {"queue": "security", "rule": "r1"},
    "links": [{"href": "https://handoff.example.com/r/42", "text": "Request"}],
}


def clock() -> float:
    return NOW


def http_date(offset: float) -> str:
    return email.utils.formatdate(NOW + offset, usegmt=True)


def assert_clean(result: DeliveryResult, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in result.detail


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def refused_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/x"  # nobody listens there any more


# --- Retry-After -------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("value", "expected"),
    [("120", 120.0), (" 7 ", 7.0), ("1.5", 1.5), ("0", 0.0), (http_date(30), 30.0), (http_date(-60), 0.0),
     ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0), (None, None), ("", None), ("soon", None), ("-5", None),
     ("1e400", None), ("12abc", None)],
)
def test_parse_retry_after(value, expected):
    assert parse_retry_after(value, NOW) == expected


@given(st.integers(min_value=0, max_value=10**9))
def test_parse_retry_after_seconds_roundtrip(n):
    assert parse_retry_after(str(n), NOW) == float(n)


@given(st.integers(min_value=-10**6, max_value=10**8))
def test_parse_retry_after_date_roundtrip(offset):
    assert parse_retry_after(http_date(offset), NOW) == float(max(0, offset))


@given(st.text(max_size=40))
def test_parse_retry_after_never_raises(text):
    value = parse_retry_after(text, NOW)
    assert value is None or value >= 0.0


# --- contract ----------------------------------------------------------------------------------

@pytest.mark.parametrize("cls", [MspWebhookConnector, PagerDutyConnector, SlackWebConnector, LocalSink])
def test_connectors_follow_the_port(cls):
    deliver = cls.deliver
    assert inspect.iscoroutinefunction(deliver)
    params = inspect.signature(deliver).parameters
    assert {n: p.kind for n, p in params.items() if n != "self"} == {
        "payload": inspect.Parameter.KEYWORD_ONLY, "idempotency_key": inspect.Parameter.KEYWORD_ONLY}


async def test_local_sink_accepts_everything():
    sink = LocalSink("msp")
    result = await sink.deliver(payload=ROW, idempotency_key="k")
    assert sink.kind == "msp"
    assert result == DeliveryResult(ok=True, detail="recorded locally (no msp configured)")
    assert vars(sink) == {"kind": "msp"}  # keeps nothing


# --- MSP: signing ------------------------------------------------------------------------------

def test_sign_matches_documented_scheme():
    body = b'{"a":1}'
    expected = hmac.new(SECRET.encode(), b"v1:1700000000:" + body, hashlib.sha256).hexdigest()
    assert sign(SECRET, 1_700_000_000, body) == "v1=" + expected


@pytest.mark.parametrize(
    ("secret", "ts", "body", "now", "ok"),
    [(SECRET, 1_700_000_000, b"{}", NOW, True), (SECRET, 1_700_000_000, b"{}", NOW + 300, True),
     ("wrong", 1_700_000_000, b"{}", NOW, False), (SECRET, 1_700_000_000, b"{}", NOW + 301, False),
     (SECRET, 1_700_000_000, b"{}", NOW - 301, False), (SECRET, 1_700_000_000, b"{ }", NOW, False)],
)
def test_verify(secret, ts, body, now, ok):
    signature = sign(SECRET, 1_700_000_000, b"{}")
    assert verify(secret, ts, body, signature, now=now) is ok


@pytest.mark.parametrize(("ts", "sig"), [("abc", None), ("1700000000", "v1=\u00e9"), ("1700000000", "v0=00")])
def test_verify_rejects_malformed(ts, sig):
    signature = sig or sign(SECRET, 1_700_000_000, b"{}")
    assert verify(SECRET, ts, b"{}", signature, now=NOW) is False


# --- MSP: delivery -----------------------------------------------------------------------------

async def test_msp_success_sends_row_signed_and_idempotent(session):
    async with FakeMsp() as fake:
        msp = MspWebhookConnector(session=session, url=fake.tickets_url, secret=SECRET, clock=clock)
        result = await msp.deliver(payload=ROW, idempotency_key="req-1:msp")
        assert result.ok and result.remote_id == "MSP-1" and not result.retryable
        req = fake.received[0]
        assert (req.method, req.path, req.json) == ("POST", "/tickets", ROW)
        assert req.header("Content-Type") == "application/json"
        assert req.header("Idempotency-Key") == "req-1:msp"
        assert req.header("X-Handoff-Timestamp") == "1700000000"
        assert re.fullmatch(r"handoff/\S+", req.header("User-Agent"))
        assert fake.verify_signature(req, SECRET, now=NOW)
        assert not fake.verify_signature(req, "not-the-secret", now=NOW)
        assert not fake.verify_signature(req, SECRET, now=NOW + 301)
        assert verify(SECRET, req.header("X-Handoff-Timestamp"), req.body, req.header("X-Handoff-Signature"), now=NOW)

        again = await msp.deliver(payload=ROW, idempotency_key="req-1:msp")  # retry after unknown outcome
        other = await msp.deliver(payload={**ROW, "id": "tkt-2"}, idempotency_key="req-2:msp")
        assert (again.ok, again.remote_id, other.remote_id) == (True, "MSP-1", "MSP-2")
        assert fake.unique_tickets == 2 and len(fake.received) == 3


async def test_msp_without_secret_sends_no_signature(session):
    async with FakeMsp() as fake:
        msp = MspWebhookConnector(session=session, url=fake.tickets_url, secret="")
        assert (await msp.deliver(payload=ROW, idempotency_key="k")).ok
        headers = fake.received[0].headers
        assert "X-Handoff-Signature" not in headers and "X-Handoff-Timestamp" not in headers


def test_msp_doc_example_verifies_a_real_signature():
    code = re.search(r"```python\n(.*?)```", DOCS.read_text(), re.S).group(1)
    assert len(code.strip().splitlines()) <= 10
    namespace: dict = {}
    exec(code, namespace)  # noqa: S102 - the documented snippet, run as an MSP would
    check = namespace["verify_handoff"]
    ts, body = str(int(time.time())), json.dumps(ROW).encode()
    assert check(SECRET, body, ts, sign(SECRET, int(ts), body))
    assert not check("other", body, ts, sign(SECRET, int(ts), body))
    assert not check(SECRET, body, "1000", sign(SECRET, 1000, body))


@pytest.mark.parametrize(
    ("status", "headers", "retryable", "retry_after"),
    [(500, None, True, None), (502, None, True, None), (429, {"Retry-After": "7"}, True, 7.0),
     (503, {"Retry-After": http_date(30)}, True, 30.0), (408, None, True, None),
     (301, {"Location": "/elsewhere"}, False, None), (400, None, False, None), (401, None, False, None), (404, None, False, None), (422, None, False, None)],
)
async def test_msp_failures_are_classified(session, status, headers, retryable, retry_after):
    async with FakeMsp() as fake:
        msp = MspWebhookConnector(session=session, url=fake.tickets_url, secret=SECRET, clock=clock)
        fake.fail_next(1, status=status, headers=headers, body={"error": "nope", "echo": ROW["text"]})
        result = await msp.deliver(payload=ROW, idempotency_key="k")
        assert (result.ok, result.retryable, result.retry_after) == (False, retryable, retry_after)
        assert str(status) in result.detail and ROW["text"] not in result.detail
        assert_clean(result, SECRET)
        assert (await msp.deliver(payload=ROW, idempotency_key="k")).ok  # next attempt: default answer


async def test_msp_non_json_success_is_still_delivered(session):
    async with FakeMsp() as fake:
        fake.script(Scripted(status=201, body="<html>created</html>"))
        msp = MspWebhookConnector(session=session, url=fake.tickets_url)
        result = await msp.deliver(payload=ROW, idempotency_key="k")
        assert result.ok and result.remote_id is None


async def test_msp_ticket_id_field(session):
    async with FakeMsp() as fake:
        fake.script(Scripted(status=200, body={"ticket_id": 4711}))
        msp = MspWebhookConnector(session=session, url=fake.tickets_url)
        assert (await msp.deliver(payload=ROW, idempotency_key="k")).remote_id == "4711"


async def test_msp_timeout_is_retryable(session):
    async with FakeMsp() as fake:
        fake.delay_next(1, 5.0)
        msp = MspWebhookConnector(session=session, url=fake.tickets_url, timeout=0.2)
        started = time.monotonic()
        result = await msp.deliver(payload=ROW, idempotency_key="k")
        assert time.monotonic() - started < 2.0
        assert (result.ok, result.retryable) == (False, True) and "timeout" in result.detail


async def test_msp_connection_refused_is_retryable(session, refused_url):
    msp = MspWebhookConnector(session=session, url=refused_url, secret=SECRET)
    result = await msp.deliver(payload=ROW, idempotency_key="k")
    assert (result.ok, result.retryable) == (False, True) and "connection" in result.detail


async def test_msp_secrets_and_url_stay_out_of_repr_and_detail(session, refused_url):
    url = refused_url + "?code=url-embedded-credential"
    msp = MspWebhookConnector(session=session, url=url, secret=SECRET)
    result = await msp.deliver(payload=ROW, idempotency_key="k")
    for text in (repr(msp), str(msp), result.detail):
        assert SECRET not in text and "url-embedded-credential" not in text and ROW["text"] not in text


# --- PagerDuty ---------------------------------------------------------------------------------

async def test_pagerduty_trigger_body_per_spec(session):
    async with FakePagerDuty(routing_keys=[ROUTING_KEY]) as fake:
        pd = PagerDutyConnector(session=session, routing_key=ROUTING_KEY, url=fake.enqueue_url)
        result = await pd.deliver(payload=PAGE, idempotency_key="req-42:page")
        assert result.ok and result.remote_id == "handoff-req-42"
        body = fake.requests[0].json
        assert body == {
            "routing_key": ROUTING_KEY, "event_action": "trigger", "dedup_key": "handoff-req-42",
            "client": "handoff", "links": PAGE["links"],
            "payload": {"summary": PAGE["summary"], "source": "handoff", "severity": "critical",
                        "custom_details": PAGE["custom_details"]},
        }
        assert fake.requests[0].header("Content-Type") == "application/json"
        assert "Authorization" not in fake.requests[0].headers  # the Events API has no auth header
        assert fake.incident("handoff-req-42").status == "triggered"


async def test_pagerduty_summary_truncated_and_severity_mapped(session):
    async with FakePagerDuty() as fake:
        pd = PagerDutyConnector(session=session, routing_key=ROUTING_KEY, url=fake.enqueue_url)
        row = {**PAGE, "summary": "x" * 5000, "severity": "high"}
        assert (await pd.deliver(payload=row, idempotency_key="k")).ok
        payload = fake.requests[0].json["payload"]
        assert len(payload["summary"]) == 1024 and payload["summary"].endswith("\u2026")
        assert payload["severity"] == "error"


async def test_pagerduty_lifecycle_and_dedup(session):
    async with FakePagerDuty() as fake:
        pd = PagerDutyConnector(session=session, routing_key=ROUTING_KEY, url=fake.enqueue_url)
        row = {k: v for k, v in PAGE.items() if k != "dedup_key"}
        first = await pd.deliver(payload=row, idempotency_key="req-7:page")
        retry = await pd.deliver(payload=row, idempotency_key="req-7:page")
        assert first.remote_id == retry.remote_id == "req-7:page"
        assert (fake.trigger_count, fake.incidents_opened) == (2, 1)
        for action, status in (("acknowledge", "acknowledged"), ("resolve", "resolved")):
            result = await pd.deliver(payload={"event_action": action, "dedup_key": "req-7:page"},
                                      idempotency_key=f"req-7:{action}")
            assert result.ok
            assert set(fake.requests[-1].json) == {"routing_key", "dedup_key", "event_action"}
            assert fake.incident("req-7:page").status == status


async def test_pagerduty_invalid_row_is_dead_without_sending(session):
    async with FakePagerDuty() as fake:
        pd = PagerDutyConnector(session=session, routing_key=ROUTING_KEY, url=fake.enqueue_url)
        for row in ({**PAGE, "severity": "apocalyptic"}, {**PAGE, "summary": " "},
                    {"event_action": "resolve"}, {**PAGE, "event_action": "snooze"}):
            result = await pd.deliver(payload=row, idempotency_key="k")
            assert (result.ok, result.retryable) == (False, False) and "invalid event" in result.detail
        assert fake.requests == []


async def test_pagerduty_400_is_dead_and_key_not_leaked(session):
    bad_key = "short-secret-key"
    async with FakePagerDuty() as fake:
        pd = PagerDutyConnector(session=session, routing_key=bad_key, url=fake.enqueue_url)
        result = await pd.deliver(payload=PAGE, idempotency_key="k")
        assert (result.ok, result.retryable) == (False, False)
        assert "HTTP 400" in result.detail and "Length of 'routing_key' is incorrect" in result.detail
        assert_clean(result, bad_key)
        assert bad_key not in repr(pd) and ROUTING_KEY not in repr(
            PagerDutyConnector(session=session, routing_key=ROUTING_KEY))


@pytest.mark.parametrize(
    ("status", "headers", "retry_after"),
    [(429, None, None), (429, {"Retry-After": "12"}, 12.0), (500, None, None), (503, {"Retry-After": http_date(5)}, 5.0)],
)
async def test_pagerduty_retryable_statuses(session, status, headers, retry_after):
    async with FakePagerDuty() as fake:
        fake.fail_next(1, status=status, headers=headers)
        pd = PagerDutyConnector(session=session, routing_key=ROUTING_KEY, url=fake.enqueue_url, clock=clock)
        result = await pd.deliver(payload=PAGE, idempotency_key="k")
        assert (result.ok, result.retryable, result.retry_after) == (False, True, retry_after)
        assert_clean(result, ROUTING_KEY)


async def test_pagerduty_timeout_and_refused(session, refused_url):
    async with FakePagerDuty() as fake:
        fake.delay_next(1, 5.0)
        pd = PagerDutyConnector(session=session, routing_key=ROUTING_KEY, url=fake.enqueue_url, timeout=0.2)
        slow = await pd.deliver(payload=PAGE, idempotency_key="k")
    refused = await PagerDutyConnector(session=session, routing_key=ROUTING_KEY, url=refused_url).deliver(
        payload=PAGE, idempotency_key="k")
    for result in (slow, refused):
        assert (result.ok, result.retryable) == (False, True)
        assert_clean(result, ROUTING_KEY)


def test_build_event_only_documented_fields():
    event = build_event({**PAGE, "component": "fs", "junk": 1}, routing_key=ROUTING_KEY, idempotency_key="k")
    assert set(event) <= {"routing_key", "event_action", "dedup_key", "payload", "client", "client_url",
                          "links", "images"}
    assert set(event["payload"]) <= {"summary", "timestamp", "severity", "source", "component", "group",
                                     "class", "custom_details"}
    assert validate_event(event) == []


def test_fake_pagerduty_validation_matches_real_messages():
    errors = validate_event({"routing_key": "abc-def", "event_action": "trigger", "payload": {"summary": "s"}})
    assert "Length of 'routing_key' is incorrect (should be 32 characters)" in errors
    assert "'routing_key' cannot contain non-alphanumeric characters." in errors
    assert "'payload.source' is missing or blank" in errors and "'payload.severity' is missing or blank" in errors


async def test_fake_pagerduty_rejects_non_json_and_drops_foreign_resolve(session):
    async with FakePagerDuty() as fake:
        async with session.post(fake.enqueue_url, data=b"{not json") as resp:
            assert resp.status == 400 and (await resp.json())["status"] == "Unrecognized object"
        pd = PagerDutyConnector(session=session, routing_key=ROUTING_KEY, url=fake.enqueue_url)
        other = PagerDutyConnector(session=session, routing_key="Z" * 32, url=fake.enqueue_url)
        await pd.deliver(payload=PAGE, idempotency_key="k")
        assert (await other.deliver(payload={"event_action": "resolve", "dedup_key": PAGE["dedup_key"]},
                                    idempotency_key="r")).ok  # 202, but PagerDuty ignores it
        assert fake.incident(PAGE["dedup_key"]).status == "triggered"


# --- Slack -------------------------------------------------------------------------------------

def slack(session, fake, **kw) -> SlackWebConnector:
    kw.setdefault("response_url_prefixes", (fake.url_for("/response/"),))
    return SlackWebConnector(session=session, token=kw.pop("token", TOKEN), base_url=fake.api_base, **kw)


async def test_slack_post_message(session):
    async with FakeSlackApi(token=TOKEN) as fake:
        result = await slack(session, fake).deliver(
            payload={"channel": "C111", "text": "Ticket MSP-1 created", "thread_ts": "1.000001", "ignored": 1},
            idempotency_key="k")
        assert result.ok and result.remote_id == fake.posts[0]["ts"]
        req = fake.calls("chat.postMessage")[0]
        assert req.header("Authorization") == f"Bearer {TOKEN}"
        assert req.header("Content-Type") == "application/json; charset=utf-8"
        assert req.json == {"channel": "C111", "text": "Ticket MSP-1 created", "thread_ts": "1.000001"}
        assert fake.posts_to("C111")[0]["text"] == "Ticket MSP-1 created"
        assert TOKEN not in result.detail and "Ticket MSP-1" not in result.detail


@pytest.mark.parametrize(
    ("error", "retryable"),
    [(e, False) for e in ("channel_not_found", "not_in_channel", "is_archived", "invalid_auth", "not_authed",
                          "account_inactive", "token_revoked", "msg_too_long", "no_text", "invalid_blocks")]
    + [(e, True) for e in ("ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout")],
)
async def test_slack_ok_false_mapping(session, error, retryable):
    async with FakeSlackApi(token=TOKEN) as fake:
        fake.error_next(error)
        result = await slack(session, fake).deliver(payload={"channel": "C111", "text": "hi"}, idempotency_key="k")
        assert (result.ok, result.retryable) == (False, retryable) and error in result.detail


async def test_slack_real_errors_from_fake(session):
    async with FakeSlackApi(token=TOKEN, channels={"C111"}) as fake:
        fake.not_in_channels.add("C111")
        cases = [({"channel": "C999", "text": "x"}, TOKEN, "channel_not_found"),
                 ({"channel": "C111", "text": "x"}, TOKEN, "not_in_channel"),
                 ({"channel": "C111", "text": "x"}, "xoxb-wrong", "invalid_auth")]
        for payload, token, error in cases:
            result = await slack(session, fake, token=token).deliver(payload=payload, idempotency_key="k")
            assert (result.ok, result.retryable) == (False, False) and error in result.detail
            assert_clean(result, token)
        fake.not_in_channels.clear()
        for payload, error in (({"channel": "C111", "text": "y" * 40_001}, "msg_too_long"),
                               ({"channel": "C111", "text": ""}, "no_text")):
            result = await slack(session, fake).deliver(payload=payload, idempotency_key="k")
            assert error in result.detail and not result.retryable
        assert fake.posts == []


@pytest.mark.parametrize(
    ("status", "headers", "retry_after"),
    [(429, {"Retry-After": "3"}, 3.0), (429, {"Retry-After": http_date(20)}, 20.0), (500, None, None), (503, None, None)],
)
async def test_slack_http_failures_retry(session, status, headers, retry_after):
    async with FakeSlackApi(token=TOKEN) as fake:
        fake.fail_next(1, status=status, headers=headers)
        result = await slack(session, fake, clock=clock).deliver(payload={"channel": "C1", "text": "x"},
                                                                 idempotency_key="k")
        assert (result.ok, result.retryable, result.retry_after) == (False, True, retry_after)


async def test_slack_ratelimit_helper_and_non_json_200(session):
    async with FakeSlackApi(token=TOKEN) as fake:
        fake.ratelimit_next(retry_after=9)
        fake.script(Scripted(status=200, body="<html>proxy</html>"))
        connector = slack(session, fake)
        limited = await connector.deliver(payload={"channel": "C1", "text": "x"}, idempotency_key="k")
        proxied = await connector.deliver(payload={"channel": "C1", "text": "x"}, idempotency_key="k")
        assert (limited.retryable, limited.retry_after, "ratelimited" in limited.detail) == (True, 9.0, True)
        assert (proxied.ok, proxied.retryable) == (False, True)
        assert (await connector.deliver(payload={"channel": "C1", "text": "x"}, idempotency_key="k")).ok


async def test_slack_timeout_and_refused(session, refused_url):
    async with FakeSlackApi(token=TOKEN) as fake:
        fake.delay_next(1, 5.0)
        slow = await slack(session, fake, timeout=0.2).deliver(payload={"channel": "C1", "text": "x"},
                                                               idempotency_key="k")
    refused = await SlackWebConnector(session=session, token=TOKEN, base_url=refused_url).deliver(
        payload={"channel": "C1", "text": "x"}, idempotency_key="k")
    for result in (slow, refused):
        assert (result.ok, result.retryable) == (False, True)
        assert_clean(result, TOKEN)


async def test_slack_response_url(session):
    async with FakeSlackApi(token=TOKEN) as fake:
        connector = slack(session, fake)
        payload = {"response_url": fake.response_url("abc"), "text": "Routed to MSP", "response_type": "ephemeral",
                   "channel": "C111"}
        result = await connector.deliver(payload=payload, idempotency_key="k")
        assert result.ok and fake.responses["abc"] == [{"text": "Routed to MSP", "response_type": "ephemeral"}]
        assert "Authorization" not in fake.requests[0].headers  # the bot token never goes to a response_url
        assert fake.posts == []
        fake.expire_response_url("abc")
        expired = await connector.deliver(payload=payload, idempotency_key="k")
        assert (expired.ok, expired.retryable) == (False, False) and "expired_url" in expired.detail
        assert "abc" not in expired.detail  # the URL is a credential
        elsewhere = await connector.deliver(payload={**payload, "response_url": "https://evil.example/x"},
                                            idempotency_key="k")
        assert (elsewhere.ok, elsewhere.retryable) == (False, False) and len(fake.requests) == 2


async def test_slack_default_prefixes_refuse_foreign_response_url(session):
    connector = SlackWebConnector(session=session, token=TOKEN)
    result = await connector.deliver(payload={"response_url": "http://127.0.0.1:1/response/1", "text": "x"},
                                     idempotency_key="k")
    assert (result.ok, result.retryable) == (False, False)
    assert TOKEN not in repr(connector) and TOKEN not in str(connector)


async def test_auth_test_helper(session, refused_url):
    async with FakeSlackApi(token=TOKEN) as fake:
        good = await auth_test(session, fake.api_base, TOKEN)
        bad = await auth_test(session, fake.api_base, "xoxb-wrong")
        assert good["ok"] and good["user_id"] == "U0HANDOFF" and good["team_id"] == "T111"
        assert bad == {"ok": False, "error": "invalid_auth"}
        assert len(fake.calls("auth.test")) == 2
    with pytest.raises(SlackApiError) as excinfo:
        await auth_test(session, refused_url, TOKEN)
    assert TOKEN not in str(excinfo.value)


async def test_fake_slack_auth_and_body_rules(session):
    async with FakeSlackApi(token=TOKEN) as fake:
        api = fake.api_base

        async def call(method, **kw):
            async with session.post(api + method, **kw) as resp:
                return resp.status, await resp.json()

        assert (await call("chat.postMessage", data={"token": TOKEN, "channel": "C1", "text": "f"}))[1]["ok"]
        _, no_auth = await call("chat.postMessage", json={"token": TOKEN, "channel": "C1", "text": "j"})
        assert no_auth == {"ok": False, "error": "not_authed"}
        _, warned = await call("chat.postMessage", data=b'{"channel":"C1","text":"w"}',
                               headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
        assert warned["ok"] and warned["warning"] == "missing_charset"
        auth = {"Authorization": f"Bearer {TOKEN}"}
        _, opened = await call("conversations.open", json={"users": "W111"}, headers=auth)
        _, reopened = await call("conversations.open", json={"users": "W111"}, headers=auth)
        assert opened["channel"]["id"].startswith("D") and reopened["already_open"]
        _, user = await call("users.info", data={"user": "W111"}, headers=auth)
        _, missing = await call("users.info", data={"user": "W999"}, headers=auth)
        assert user["user"]["name"] == "primary-owner" and missing["error"] == "user_not_found"
        _, eph = await call("chat.postEphemeral", json={"channel": "C1", "user": "W111", "text": "e"}, headers=auth)
        assert eph["ok"] and fake.ephemerals[0]["message_ts"] == eph["message_ts"]
        status, unknown = await call("foo.bar", headers=auth)
        assert status == 404 and unknown["error"] == "unknown_method"
        assert [p["text"] for p in fake.posts] == ["f", "w"]
