"""Bot Framework token validation against a loopback OpenID metadata + JWKS endpoint."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import jwt
import pytest
from botbuilder.schema import Activity
from botframework.connector.auth import ClaimsIdentity

from bot.teams_auth import AuthUnavailable, SigningKeys, TeamsAuthError, TokenValidator
from bot.teams_botframework import InlineSendRefused, ValidatedAuthentication
from tests.fakes.base import Scripted
from tests.fakes.openid import METADATA_PATH, FakeOpenId, SigningKey

APP_ID = "11111111-2222-3333-4444-555555555555"
SERVICE_URL = "https://smba.trafficmanager.net/amer/"


@dataclass
class Setup:
    idp: FakeOpenId
    http: aiohttp.ClientSession
    keys: SigningKeys
    validator: TokenValidator

    def token(self, **overrides: object) -> str:
        return self.idp.token(app_id=APP_ID, service_url=SERVICE_URL, **overrides)  # type: ignore[arg-type]


@pytest.fixture
async def setup() -> AsyncIterator[Setup]:
    async with FakeOpenId() as idp, aiohttp.ClientSession() as http:
        keys = SigningKeys(session=http, metadata_url=idp.metadata_url, timeout=2)
        yield Setup(idp, http, keys, TokenValidator(app_id=APP_ID, keys=keys, leeway=300))


async def test_valid_token(setup: Setup) -> None:
    verified = await setup.validator.verify(f"Bearer {setup.token()}")
    assert verified.claims["aud"] == APP_ID and verified.claims["serviceurl"] == SERVICE_URL
    assert verified.endorsements is not None and "msteams" in verified.endorsements
    TokenValidator.check_activity(verified, service_url=SERVICE_URL, channel_id="msteams")
    assert (await setup.validator.verify(f"bearer  {setup.token()} ")).claims["iss"] == "https://api.botframework.com"


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda s: None, "missing Authorization"),
        (lambda s: "", "missing Authorization"),
        (lambda s: "Bearer", "not a Bearer token"),
        (lambda s: f"Token {s.token()}", "not a Bearer token"),
        (lambda s: "Bearer abc", "malformed token"),
        (lambda s: "Bearer a.b.c", "malformed token"),
        (lambda s: "Bearer " + _b64({"alg": "RS256"}) + ".e30", "malformed token"),
        (lambda s: "Bearer " + "x" * 20_000, "too long"),
        (lambda s: f"Bearer {s.token(exp_delta=-3600)}", "token expired"),
        (lambda s: f"Bearer {s.token(aud='00000000-0000-0000-0000-000000000000')}", "audience"),
        (lambda s: f"Bearer {s.token(aud=None)}", "aud"),
        (lambda s: f"Bearer {s.token(iss='https://login.microsoftonline.com/common/v2.0')}", "issuer"),
        (lambda s: f"Bearer {s.token(exp=None)}", "exp"),
        (lambda s: f"Bearer {s.token(nbf=int(time.time()) + 3600)}", "not valid yet"),
        (lambda s: "Bearer " + s.idp.sign(s.idp.claims(app_id=APP_ID, service_url=SERVICE_URL),
                                          key=SigningKey.generate()), "unknown key"),
        (lambda s: "Bearer " + s.idp.sign(s.idp.claims(app_id=APP_ID, service_url=SERVICE_URL),
                                          headers={"kid": None}), "no key id"),
        (lambda s: "Bearer " + jwt.encode(s.idp.claims(app_id=APP_ID, service_url=SERVICE_URL), None,  # type: ignore[arg-type]
                                          algorithm="none"), "algorithm not allowed"),
        (lambda s: "Bearer " + jwt.encode(s.idp.claims(app_id=APP_ID, service_url=SERVICE_URL), "s3cret",
                                          algorithm="HS256", headers={"kid": s.idp.keys[0].kid}), "algorithm"),
    ],
    ids=["none", "empty", "bearer-only", "other-scheme", "one-segment", "junk-segments", "no-signature",
         "huge", "expired", "wrong-audience", "no-audience", "wrong-issuer", "no-exp", "not-yet-valid",
         "unknown-key", "no-kid", "alg-none", "hs256-confusion"],
)
@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # the forger's own short HS256 key
async def test_invalid_tokens(setup: Setup, make: object, reason: str) -> None:
    header = make(setup)  # type: ignore[operator]
    with pytest.raises(TeamsAuthError, match=reason):
        await setup.validator.verify(header)


async def test_forged_signature_with_the_right_kid(setup: Setup) -> None:
    head, body, _ = setup.token().split(".")
    other = setup.idp.sign(setup.idp.claims(app_id=APP_ID, service_url=SERVICE_URL, aud="x"), key=setup.idp.keys[0])
    with pytest.raises(TeamsAuthError, match="signature"):
        await setup.validator.verify(f"Bearer {head}.{_b64(json.loads(base64.urlsafe_b64decode(body + '==')))}."
                                     f"{other.split('.')[2]}")


async def test_clock_skew_is_tolerated_but_small(setup: Setup) -> None:
    await setup.validator.verify(f"Bearer {setup.token(exp_delta=-120)}")  # within the 5 minutes
    with pytest.raises(TeamsAuthError, match="expired"):
        await setup.validator.verify(f"Bearer {setup.token(exp_delta=-400)}")


async def test_activity_binding(setup: Setup) -> None:
    verified = await setup.validator.verify(f"Bearer {setup.token()}")
    with pytest.raises(TeamsAuthError, match="serviceurl"):
        TokenValidator.check_activity(verified, service_url="https://smba.evil.example/", channel_id="msteams")
    no_claim = await setup.validator.verify(f"Bearer {setup.token(serviceurl=None)}")
    with pytest.raises(TeamsAuthError, match="serviceurl"):
        TokenValidator.check_activity(no_claim, service_url=SERVICE_URL, channel_id="msteams")
    with pytest.raises(TeamsAuthError, match="endorsed"):
        TokenValidator.check_activity(verified, service_url=SERVICE_URL, channel_id="slack")


async def test_keys_are_fetched_once_and_shared(setup: Setup) -> None:
    tokens = [f"Bearer {setup.token()}" for _ in range(20)]
    await asyncio.gather(*(setup.validator.verify(t) for t in tokens))
    await setup.validator.verify(tokens[0])
    assert (setup.idp.metadata_hits, setup.idp.keys_hits) == (1, 1)


async def test_rotated_key_is_picked_up_and_unknown_kids_do_not_hammer(setup: Setup) -> None:
    clock = [1000.0]
    keys = SigningKeys(session=setup.http, metadata_url=setup.idp.metadata_url, min_refresh=300,
                       clock=lambda: clock[0])
    validator = TokenValidator(app_id=APP_ID, keys=keys)
    await validator.verify(f"Bearer {setup.token()}")
    new = setup.idp.rotate()
    for _ in range(5):  # within min_refresh: the new kid is unknown and nobody refetches
        with pytest.raises(TeamsAuthError, match="unknown key"):
            await validator.verify(f"Bearer {setup.token(key=new)}")
    assert setup.idp.keys_hits == 1
    clock[0] += 301
    assert (await validator.verify(f"Bearer {setup.token(key=new)}")).claims["aud"] == APP_ID
    assert setup.idp.keys_hits == 2
    await validator.verify(f"Bearer {setup.token(key=setup.idp.keys[1])}")  # the old key still published


async def test_stale_keys_survive_a_failed_refresh_and_no_keys_means_unavailable(setup: Setup) -> None:
    clock = [0.0]
    keys = SigningKeys(session=setup.http, metadata_url=setup.idp.metadata_url, max_age=60, clock=lambda: clock[0])
    validator = TokenValidator(app_id=APP_ID, keys=keys)
    await validator.verify(f"Bearer {setup.token()}")
    setup.idp.fail_next(2, status=503)
    clock[0] = 61.0
    await validator.verify(f"Bearer {setup.token(exp_delta=3601)}")  # refresh failed; cached keys still verify
    assert len(setup.idp.requests_to(METADATA_PATH)) == 2
    await validator.verify(f"Bearer {setup.token(exp_delta=3602)}")  # no retry before min_refresh
    assert len(setup.idp.requests_to(METADATA_PATH)) == 2

    dead = SigningKeys(session=setup.http, metadata_url="http://127.0.0.1:9/v1/.well-known/openidconfiguration",
                       timeout=1)
    with pytest.raises(AuthUnavailable):
        await TokenValidator(app_id=APP_ID, keys=dead).verify(f"Bearer {setup.token()}")


async def test_metadata_without_usable_keys_is_unavailable(setup: Setup) -> None:
    setup.idp.keys = []
    with pytest.raises(AuthUnavailable):
        await setup.validator.verify(f"Bearer {setup.token(key=SigningKey.generate())}")


@pytest.mark.parametrize("key_set", [{"keys": [None]}, {"keys": ["x"]}, {"keys": {"kid1": {"kty": "RSA"}}},
                                     {"keys": "abc"}, ["not", "an", "object"]])
async def test_a_key_set_of_the_wrong_shape_is_unavailable_not_an_error(setup: Setup, key_set: object) -> None:
    # Microsoft's (or a proxy's) key set answered with junk: a 503 that Teams retries, never a 500.
    setup.idp.script(Scripted(status=None), Scripted(status=200, body=key_set))  # metadata as usual, then junk
    with pytest.raises(AuthUnavailable):
        await setup.validator.verify(f"Bearer {setup.token()}")


async def test_botbuilder_authentication_object(setup: Setup) -> None:
    auth = ValidatedAuthentication(setup.validator)
    activity = Activity(type="message", service_url=SERVICE_URL, channel_id="msteams")
    result = await auth.authenticate_request(activity, f"Bearer {setup.token()}")
    assert result.claims_identity.claims["aud"] == APP_ID and result.caller_id == "urn:botframework:azure"
    with pytest.raises(PermissionError):
        await auth.authenticate_request(activity, f"Bearer {setup.token(aud='x')}")
    one = await result.connector_factory.create(SERVICE_URL, "https://api.botframework.com")
    two = await auth.create_connector_factory(ClaimsIdentity({}, True)).create(SERVICE_URL, None)
    assert one is two  # built once per service URL (the CloudAdapter cost this removes)
    with pytest.raises(InlineSendRefused):  # replies go through the outbox, never from a turn
        await one.conversations.send_to_conversation("a:1", Activity(type="message", text="hi"))
    uncached = ValidatedAuthentication(None, cache_clients=0)
    assert (await uncached.connectors.create(SERVICE_URL)) is not (await uncached.connectors.create(SERVICE_URL))
    anonymous = uncached.result_for(None)
    assert anonymous.claims_identity.authentication_type == "anonymous" and anonymous.caller_id is None
    await auth.close()


async def test_verified_tokens_are_cached_but_still_expire(setup: Setup) -> None:
    now = [time.time()]
    validator = TokenValidator(app_id=APP_ID, keys=setup.keys, leeway=300, clock=lambda: now[0])
    token = f"Bearer {setup.token(exp_delta=60)}"
    first = await validator.verify(token)
    assert await validator.verify(token) is first  # the repeat is served from the cache
    now[0] += 60 + 299
    assert await validator.verify(token) is first  # within the clock skew
    now[0] += 2
    with pytest.raises(TeamsAuthError, match="expired"):
        await validator.verify(token)


async def test_cached_tokens_are_dropped_when_the_key_set_changes(setup: Setup) -> None:
    keys = SigningKeys(session=setup.http, metadata_url=setup.idp.metadata_url, min_refresh=0)
    validator = TokenValidator(app_id=APP_ID, keys=keys)
    old = f"Bearer {setup.token()}"
    await validator.verify(old)
    replacement = SigningKey.generate()
    setup.idp.keys = [replacement]  # Microsoft withdraws the old key
    await validator.verify(f"Bearer {setup.token(key=replacement)}")  # unknown kid: the key set is refetched
    with pytest.raises(TeamsAuthError, match="unknown key"):
        await validator.verify(old)
    other_app = TokenValidator(app_id="another-app", keys=keys)
    with pytest.raises(TeamsAuthError, match="audience"):  # a cache is per validator (per app id)
        await other_app.verify(f"Bearer {setup.token(key=replacement)}")
