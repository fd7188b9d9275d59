"""App access tokens: short-lived EdDSA JWTs for the logged-in user, verifiable via JWKS.

The vault issues one at login (and on request); the user-side routes accept it as
``Authorization: Bearer`` so an SPA needs no cookie, and other services verify it with the
keys published at ``{prefix}/.well-known/jwks.json``. Keys are Ed25519 seeds from settings
(the first signs, all verify: rotation); the key id is derived from the public key.
Times are checked here against an injected ``now``, not PyJWT's clock.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Sequence
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .errors import NotAuthenticated

__all__ = ["AppTokens", "derive_seed"]

TOKEN_TYPE = "at+jwt"


def derive_seed(secret_key: str) -> bytes:
    """The default signing seed when no app token keys are configured."""
    return hashlib.sha256(b"oauth_vault_mw/app-token-key/v1\x00" + secret_key.encode()).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class AppTokens:
    """Issues and verifies the vault's app tokens."""

    def __init__(self, seeds: Sequence[bytes], *, issuer: str, lifetime: int = 300) -> None:
        if not seeds:
            raise ValueError("at least one key")
        self.issuer = issuer
        self.lifetime = lifetime
        self._keys: dict[str, Ed25519PrivateKey] = {}
        self._public: dict[str, bytes] = {}
        for seed in seeds:
            private = Ed25519PrivateKey.from_private_bytes(seed)
            raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
            kid = hashlib.sha256(raw).hexdigest()[:16]
            self._keys[kid] = private
            self._public[kid] = raw
        self.current_kid = next(iter(self._keys))

    def __repr__(self) -> str:
        return f"AppTokens(issuer={self.issuer!r}, kids={list(self._keys)})"

    def issue(self, user_id: str, *, now: float) -> tuple[str, int]:
        """A token for ``user_id`` and its lifetime in seconds."""
        claims = {
            "iss": self.issuer,
            "aud": self.issuer,
            "sub": user_id,
            "iat": int(now),
            "nbf": int(now),
            "exp": int(now) + self.lifetime,
            "jti": secrets.token_urlsafe(12),
        }
        headers = {"kid": self.current_kid, "typ": TOKEN_TYPE}
        token = jwt.encode(claims, self._keys[self.current_kid], algorithm="EdDSA", headers=headers)
        return token, self.lifetime

    def verify(self, token: str, *, now: float, leeway: int = 30) -> str:
        """The user id of a valid token of ours, else :class:`NotAuthenticated`."""
        if len(token) > 4096:
            raise NotAuthenticated("invalid app token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise NotAuthenticated("invalid app token") from None
        private = self._keys.get(str(header.get("kid")))
        if private is None or header.get("alg") != "EdDSA" or header.get("typ") != TOKEN_TYPE:
            raise NotAuthenticated("invalid app token")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                private.public_key(),
                algorithms=["EdDSA"],
                audience=self.issuer,
                issuer=self.issuer,
                options={
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "require": ["exp", "iat", "nbf", "sub", "iss", "aud"],
                },
            )
        except jwt.PyJWTError:
            raise NotAuthenticated("invalid app token") from None
        exp, nbf = claims.get("exp"), claims.get("nbf")
        if not isinstance(exp, int) or not isinstance(nbf, int):
            raise NotAuthenticated("invalid app token")
        if now > exp + leeway or now + leeway < nbf:
            raise NotAuthenticated("expired app token")
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise NotAuthenticated("invalid app token")
        return sub

    def jwks(self) -> dict[str, Any]:
        return {
            "keys": [
                {
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "x": _b64(raw),
                    "kid": kid,
                    "alg": "EdDSA",
                    "use": "sig",
                }
                for kid, raw in self._public.items()
            ]
        }
