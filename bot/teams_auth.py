"""Inbound Bot Framework tokens, checked on the event loop (the authentication object botbuilder
runs on, built on this validator, is :mod:`bot.teams_botframework`).

As the Bot Framework authentication spec asks, we check the JWT's signature against a key of the
JWKS the OpenID metadata names (fetched with aiohttp, cached a day, refetched at most every five
minutes for an unknown key id), an RS algorithm, issuer ``https://api.botframework.com``, audience
= our app id, ``exp``/``nbf`` with five minutes of clock skew, the key's endorsement of the channel
and the ``serviceurl`` claim against the activity. Not botbuilder's ``JwtTokenValidation``: it
fetches keys with blocking ``requests`` (no timeout) into class-level state and raises
``DecodeError``/``KeyError``/``IndexError`` on junk. Here every failure is a :class:`TeamsAuthError`
(401), or :class:`AuthUnavailable` (503) when no key can be had. Tokens are never logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import jwt

log = logging.getLogger(__name__)

ISSUER = "https://api.botframework.com"
ALGORITHMS = ("RS256", "RS384", "RS512")
SERVICE_URL_CLAIM = "serviceurl"
MAX_TOKEN_CHARS = 16_384


class TeamsAuthError(Exception):
    """The request's token is missing, malformed or not valid for us (answered 401)."""


class AuthUnavailable(Exception):
    """No signing key could be obtained to check the token (answered 503 so Teams retries)."""


@dataclass(frozen=True, slots=True)
class PublicKey:
    """A key of the JWKS: the key object PyJWT verifies with, and the channels it is endorsed for."""

    kid: str
    key: Any
    endorsements: tuple[str, ...] | None


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """A token whose signature, issuer, audience and lifetime were checked."""

    claims: dict[str, Any]
    endorsements: tuple[str, ...] | None


class SigningKeys:
    """The JWKS named by an OpenID metadata document, fetched with aiohttp and cached.

    Args:
        metadata_url: OpenID configuration URL (its ``jwks_uri`` names the key set).
        timeout: Seconds for each fetch.
        max_age: Keys older than this are refreshed before use.
        min_refresh: At most one refetch this often for unknown key ids (forged ``kid`` values must
            not make us hammer the issuer); ``retry_unavailable`` likewise while we have no keys.
    """

    def __init__(self, *, session: aiohttp.ClientSession, metadata_url: str, timeout: float = 5.0,
                 max_age: float = 24 * 3600, min_refresh: float = 300, retry_unavailable: float = 5,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._session = session
        self._metadata_url = metadata_url
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._max_age = max_age
        self._min_refresh = min_refresh
        self._retry_unavailable = retry_unavailable
        self._clock = clock
        self._keys: dict[str, PublicKey] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._generation = 0
        self._lock = asyncio.Lock()

    async def get(self, kid: str) -> PublicKey | None:
        """The key with id ``kid``, or None if the issuer does not publish it.

        Raises:
            AuthUnavailable: no key set could be fetched (and none is cached).
        """
        now = self._clock()
        stale = self._fetched_at is None or now - self._fetched_at > self._max_age
        if stale and (self._may_fetch(now, stale=True) or self._lock.locked()):
            await self._refresh(self._generation)
        if not self._keys:
            raise AuthUnavailable("signing keys unavailable")
        key = self._keys.get(kid)
        if key is None and (self._may_fetch(self._clock(), stale=False) or self._lock.locked()):
            await self._refresh(self._generation)
            key = self._keys.get(kid)
        return key

    @property
    def generation(self) -> int:
        """Changes whenever the key set was (re)fetched or a fetch was attempted."""
        return self._generation

    def _may_fetch(self, now: float, *, stale: bool) -> bool:
        """Fetch when keys went stale (first try), else at most every ``min_refresh`` seconds."""
        if self._attempted_at is None:
            return True
        if stale and self._fetched_at is not None and self._attempted_at <= self._fetched_at:
            return True
        return now - self._attempted_at >= (self._min_refresh if self._keys else self._retry_unavailable)

    async def _refresh(self, generation: int) -> None:
        async with self._lock:  # one fetch at a time; who waited for it uses its result
            if generation != self._generation:
                return
            self._attempted_at = self._clock()
            try:
                keys = await self._fetch()
            except (aiohttp.ClientError, TimeoutError, OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("teams: signing key fetch failed (%s); %d cached keys in use",
                            type(exc).__name__, len(self._keys))
                return
            finally:
                self._generation += 1
            self._keys = keys
            self._fetched_at = self._clock()
            log.info("teams: %d signing keys loaded", len(keys))

    async def _fetch(self) -> dict[str, PublicKey]:
        metadata = await self._get_json(self._metadata_url)
        jwks_uri = metadata["jwks_uri"]
        if not isinstance(jwks_uri, str) or (self._metadata_url.startswith("https://")
                                             and not jwks_uri.startswith("https://")):
            raise ValueError("jwks_uri missing or not https")
        data = await self._get_json(jwks_uri)
        entries = data.get("keys")
        if not isinstance(entries, list):
            raise TypeError("the key set has no list of keys")
        keys: dict[str, PublicKey] = {}
        for jwk in entries:
            if not isinstance(jwk, dict):
                log.warning("teams: skipping a signing key that is not an object")
                continue
            try:
                parsed = jwt.PyJWK(jwk)
            except (jwt.PyJWKError, jwt.InvalidKeyError, KeyError, TypeError, ValueError):
                log.warning("teams: skipping an unusable signing key")
                continue
            kid = jwk.get("kid")
            endorsements = jwk.get("endorsements")
            if isinstance(kid, str) and kid:
                keys[kid] = PublicKey(kid, parsed.key, tuple(map(str, endorsements))
                                      if isinstance(endorsements, list) else None)
        if not keys:
            raise ValueError("no usable keys")
        return keys

    async def _get_json(self, url: str) -> dict[str, Any]:
        async with self._session.get(url, timeout=self._timeout, allow_redirects=False) as response:
            response.raise_for_status()
            data = await response.json(content_type=None)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return data


class TokenValidator:
    """Validates Bot Framework tokens for one bot.

    Teams sends the same token with every request for about an hour, so a verified token is kept
    (LRU of ``cache_size``): a repeat skips the signature check but not the lifetime check, and the
    cache is emptied whenever the key set is refetched (a withdrawn key stops counting then, as it
    would for an unseen token).

    Args:
        app_id: Our Microsoft app id: the required audience.
        keys: Where signing keys come from.
        issuer: Required ``iss``.
        leeway: Clock skew allowed on ``exp``/``nbf`` (seconds).
        clock: Unix seconds, for the lifetime of cached tokens.
    """

    def __init__(self, *, app_id: str, keys: SigningKeys, issuer: str = ISSUER, leeway: float = 300,
                 cache_size: int = 1024, clock: Callable[[], float] = time.time) -> None:
        if not app_id:
            raise ValueError("app_id is required to validate tokens")
        self.app_id = app_id
        self._keys = keys
        self._issuer = issuer
        self._leeway = leeway
        self._clock = clock
        self._cache_size = cache_size
        self._verified: OrderedDict[str, VerifiedToken] = OrderedDict()
        self._verified_keys = keys.generation

    def _cached(self, token: str) -> VerifiedToken | None:
        if self._verified_keys != self._keys.generation:
            self._verified.clear()
            self._verified_keys = self._keys.generation
        verified = self._verified.get(token)
        if verified is None:
            return None
        now = self._clock()
        if now > float(verified.claims["exp"]) + self._leeway:
            del self._verified[token]
            raise TeamsAuthError("token expired")
        if "nbf" in verified.claims and now < float(verified.claims["nbf"]) - self._leeway:
            raise TeamsAuthError("token not valid yet")
        self._verified.move_to_end(token)
        return verified

    async def verify(self, authorization: str | None) -> VerifiedToken:
        """Check the ``Authorization`` header value; raise :class:`TeamsAuthError` if it is not valid."""
        if not authorization:
            raise TeamsAuthError("missing Authorization header")
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise TeamsAuthError("Authorization is not a Bearer token")
        if len(token) > MAX_TOKEN_CHARS:
            raise TeamsAuthError("token too long")
        cached = self._cached(token)
        if cached is not None:
            return cached
        try:
            header = jwt.get_unverified_header(token)
        except Exception:  # noqa: BLE001 - any junk is just a malformed token
            raise TeamsAuthError("malformed token") from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ALGORITHMS:
            raise TeamsAuthError("token signing algorithm not allowed")
        if not isinstance(kid, str) or not kid:
            raise TeamsAuthError("token has no key id")
        key = await self._keys.get(kid)
        if key is None:
            raise TeamsAuthError("token signed by an unknown key")
        try:
            claims = jwt.decode(
                token, key.key, algorithms=[alg], audience=self.app_id, issuer=self._issuer,
                leeway=self._leeway, options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise TeamsAuthError("token expired") from None
        except jwt.ImmatureSignatureError:
            raise TeamsAuthError("token not valid yet") from None
        except jwt.InvalidAudienceError:
            raise TeamsAuthError("token audience is not this bot") from None
        except jwt.InvalidIssuerError:
            raise TeamsAuthError("token issuer is not the Bot Framework") from None
        except jwt.InvalidSignatureError:
            raise TeamsAuthError("token signature does not verify") from None
        except jwt.MissingRequiredClaimError as exc:
            raise TeamsAuthError(f"token has no {exc.claim!r} claim") from None
        except Exception as exc:  # noqa: BLE001 - DecodeError, odd key types ...
            raise TeamsAuthError(f"invalid token ({type(exc).__name__})") from None
        verified = VerifiedToken(claims, key.endorsements)
        if self._cache_size > 0:
            if self._verified_keys != self._keys.generation:  # the key set changed while we checked
                self._verified.clear()
                self._verified_keys = self._keys.generation
            self._verified[token] = verified
            while len(self._verified) > self._cache_size:
                self._verified.popitem(last=False)
        return verified

    @staticmethod
    def check_activity(token: VerifiedToken, *, service_url: str, channel_id: str) -> None:
        """Check what ties the token to this activity: ``serviceurl`` and the key's endorsements."""
        if token.claims.get(SERVICE_URL_CLAIM) != service_url:
            raise TeamsAuthError("token serviceurl does not match the activity")
        if token.endorsements is not None and channel_id not in token.endorsements:
            raise TeamsAuthError(f"signing key is not endorsed for channel {channel_id!r}")
