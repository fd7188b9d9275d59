"""The testing provider's signing key, its JWKS and the ID tokens it signs (RS256).

Generating a 2048-bit RSA key takes tens of milliseconds, so every provider of a process
shares one, made on first use, unless it is given its own: a fresh provider per test stays
cheap.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Mapping
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

__all__ = ["SigningKey", "at_hash", "shared_key"]

_SHARED: rsa.RSAPrivateKey | None = None
_SHARED_LOCK = threading.Lock()


def shared_key() -> rsa.RSAPrivateKey:
    """The process's RSA key for providers made without one."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None:
            _SHARED = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return _SHARED


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_int(value: int) -> str:
    return _b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def at_hash(access_token: str) -> str:
    """OpenID Connect Core 3.1.3.6: the left half of the SHA-256 of the token, base64url."""
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return _b64url(digest[: len(digest) // 2])


class SigningKey:
    """An RSA private key with its ``kid`` (the RFC 7638 thumbprint of its public JWK)."""

    def __init__(self, key: rsa.RSAPrivateKey) -> None:
        self._key = key
        numbers = key.public_key().public_numbers()
        self.public_jwk: dict[str, str] = {
            "e": _b64url_int(numbers.e),
            "kty": "RSA",
            "n": _b64url_int(numbers.n),
        }
        canonical = '{"e":"%s","kty":"RSA","n":"%s"}' % (  # noqa: UP031 - RFC 7638's order
            self.public_jwk["e"],
            self.public_jwk["n"],
        )
        self.kid = _b64url(hashlib.sha256(canonical.encode()).digest())

    def __repr__(self) -> str:
        return f"SigningKey(kid={self.kid!r})"

    def jwks(self) -> dict[str, Any]:
        return {"keys": [{**self.public_jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def sign(self, claims: Mapping[str, Any]) -> str:
        return jwt.encode(dict(claims), self._key, algorithm="RS256", headers={"kid": self.kid})
