"""A fake Bot Framework OpenID metadata + JWKS endpoint on loopback, and a token signer.

Stands in for ``https://login.botframework.com/v1/.well-known/openidconfiguration`` (the metadata,
whose ``jwks_uri`` names the key set) and ``/v1/.well-known/keys`` (RSA keys as JWKs, each with
``endorsements``: the channels it may sign for, as Microsoft publishes them). The fake owns its RSA
keys (``cryptography``) and signs tokens with PyJWT the way the Bot Connector service does: RS256,
``kid`` and ``x5t`` in the header; ``iss``, ``aud`` (the bot's app id), ``serviceurl``, ``nbf``,
``exp`` in the claims. Tests change a claim, sign with a key the fake does not publish, or
:meth:`FakeOpenId.rotate` the published keys::

    async with FakeOpenId() as idp:
        token = idp.token(app_id="app-1", service_url="https://smba.trafficmanager.net/amer/")
        expired = idp.token(app_id="app-1", service_url=..., exp_delta=-3600)
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.fakes.base import FakeService

ISSUER = "https://api.botframework.com"
METADATA_PATH = "/v1/.well-known/openidconfiguration"
KEYS_PATH = "/v1/.well-known/keys"
ENDORSEMENTS = ("msteams", "skype", "webchat", "directline", "emulator")


def _b64(number: int) -> str:
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass(frozen=True)
class SigningKey:
    """An RSA key pair and its key id."""

    kid: str
    private: rsa.RSAPrivateKey
    endorsements: tuple[str, ...] = ENDORSEMENTS

    @classmethod
    def generate(cls, *, endorsements: tuple[str, ...] = ENDORSEMENTS) -> SigningKey:
        return cls(secrets.token_urlsafe(16), rsa.generate_private_key(public_exponent=65537, key_size=2048),
                   endorsements)

    def jwk(self) -> dict[str, Any]:
        """The public key as Microsoft publishes it (``x5t`` here is a digest of the modulus)."""
        numbers = self.private.public_key().public_numbers()
        thumb = base64.urlsafe_b64encode(hashlib.sha1(_b64(numbers.n).encode()).digest()).rstrip(b"=").decode()
        return {"kty": "RSA", "use": "sig", "kid": self.kid, "x5t": thumb, "n": _b64(numbers.n),
                "e": _b64(numbers.e), "endorsements": list(self.endorsements)}


class FakeOpenId(FakeService):
    """OpenID metadata and JWKS of the Bot Framework token issuer.

    Args:
        keys: Keys to publish; one fresh key by default.
        issuer: ``iss`` of the tokens :meth:`token` signs.
    """

    def __init__(self, *, keys: list[SigningKey] | None = None, issuer: str = ISSUER) -> None:
        super().__init__()
        self.keys = list(keys) if keys is not None else [SigningKey.generate()]
        self.issuer = issuer
        self.metadata_hits = 0
        self.keys_hits = 0

    def setup(self, app: web.Application) -> None:
        app.router.add_get(METADATA_PATH, self._metadata)
        app.router.add_get(KEYS_PATH, self._keys)

    @property
    def metadata_url(self) -> str:
        """Stand-in for ``https://login.botframework.com/v1/.well-known/openidconfiguration``."""
        return self.url_for(METADATA_PATH)

    def rotate(self) -> SigningKey:
        """Publish a new key in front of the old ones (Microsoft rolls keys this way); returns it."""
        key = SigningKey.generate()
        self.keys.insert(0, key)
        return key

    def sign(self, claims: dict[str, Any], *, key: SigningKey | None = None, algorithm: str = "RS256",
             headers: dict[str, Any] | None = None) -> str:
        """Sign ``claims`` as given (nothing added) with ``key`` (default: the first published one).

        ``headers`` are added to the JWT header; a None value removes that header (e.g. ``kid``).
        """
        key = key or self.keys[0]
        header = {"kid": key.kid, "x5t": key.jwk()["x5t"], **(headers or {})}
        header = {k: v for k, v in header.items() if v is not None}
        return jwt.encode(claims, key.private, algorithm=algorithm, headers=header)

    def claims(self, *, app_id: str, service_url: str, now: float | None = None, exp_delta: int = 3600,
               **overrides: Any) -> dict[str, Any]:
        """The claims of a Bot Connector token to the bot; ``overrides`` replace (None removes) claims."""
        now = time.time() if now is None else now
        claims: dict[str, Any] = {
            "serviceurl": service_url, "nbf": int(now) - 5, "exp": int(now) + exp_delta,
            "iss": self.issuer, "aud": app_id,
        }
        for name, value in overrides.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        return claims

    def token(self, *, app_id: str, service_url: str, key: SigningKey | None = None, exp_delta: int = 3600,
              **overrides: Any) -> str:
        """A signed token as Teams sends it (``exp_delta`` seconds from now; negative for expired)."""
        return self.sign(self.claims(app_id=app_id, service_url=service_url, exp_delta=exp_delta, **overrides),
                         key=key)

    async def _metadata(self, request: web.Request) -> web.Response:
        self.metadata_hits += 1
        return web.json_response({
            "issuer": self.issuer,
            "authorization_endpoint": "https://invalid.botframework.com",
            "jwks_uri": self.url_for(KEYS_PATH),
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        })

    async def _keys(self, request: web.Request) -> web.Response:
        self.keys_hits += 1
        return web.json_response({"keys": [k.jwk() for k in self.keys]})
