"""How the client proves who it is at the token endpoint (and at revocation): pure, clock injected.

``ConnectionConfig.token_endpoint_auth_method`` names one of :data:`AUTH_METHODS`:

- ``client_secret_basic``: HTTP Basic with the form-urlencoded id and secret (RFC 6749 2.3.1);
- ``client_secret_post``: ``client_id`` and ``client_secret`` in the form;
- ``none``: a public client, ``client_id`` in the form only;
- ``private_key_jwt``: an RFC 7523 ``client_assertion`` signed with ``client_private_key``
  (OpenID Connect Core 9; Okta, Auth0, Keycloak, Microsoft): ``iss`` = ``sub`` = the client
  id, ``aud`` = the URL the request goes to (the token URL), a fresh ``jti``, ``iat`` now and
  ``exp`` a minute ahead; a new one for every request;
- ``signed_client_secret``: the ``client_secret`` form field is an ES256 JWT signed with
  ``client_private_key`` (Sign in with Apple): header ``kid`` = ``client_key_id``, ``iss`` =
  ``team_id``, ``sub`` = the client id, ``aud`` = the connection's issuer
  (``https://appleid.apple.com``), ``exp`` at most six months ahead. It is long-lived, so
  :class:`ClientSigner` keeps it until shortly before it expires.

Nothing here reads a clock: ``now`` is a parameter. The vault holds one :class:`ClientSigner`.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
from typing import Any
from urllib.parse import quote, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from .connections import ConnectionConfig
from .errors import ConfigurationError
from .presets import AUTH_METHODS

__all__ = [
    "ASSERTION_TYPE",
    "AUTH_METHODS",
    "JWT_METHODS",
    "MAX_SECRET_LIFETIME",
    "ClientSigner",
    "check_client_auth",
    "client_authentication",
    "signing_algorithm",
]


JWT_METHODS = frozenset({"private_key_jwt", "signed_client_secret"})
"""The methods that sign with ``client_private_key`` (and so need ``now``)."""

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME = 60
"""Seconds an RFC 7523 client assertion is valid: one request's worth."""

MAX_SECRET_LIFETIME = 15_777_000
"""Apple refuses a signed client secret whose ``exp`` is more than six months after ``iat``."""

SECRET_LIFETIME = 180 * 86_400
SECRET_RENEW_BEFORE = 3_600.0
"""A cached signed client secret is replaced this many seconds before it expires."""

_MAX_CACHED = 256

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey

_CURVES = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}


def load_private_key(pem: str) -> PrivateKey:
    """The private key in PEM text; ``ValueError`` when it is not one we can sign with."""
    try:
        key = load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError("not an unencrypted PEM private key") from exc
    if not isinstance(
        key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)
    ):
        raise ValueError("an RSA, EC (P-256/384/521) or Ed25519 key is required")
    signing_algorithm(key)
    return key


def signing_algorithm(key: PrivateKey) -> str:
    """The JWS algorithm a key signs with: RS256 (RSA of 2048 bits or more), ES256/384/512 by
    curve, EdDSA; ``ValueError`` for anything else."""
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < 2048:
            raise ValueError("an RSA key needs at least 2048 bits")
        return "RS256"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        try:
            return _CURVES[key.curve.name]
        except KeyError:
            raise ValueError(f"unsupported curve {key.curve.name}") from None
    return "EdDSA"


def check_client_auth(conn: ConnectionConfig) -> None:
    """Start-up checks of a connection's client authentication (the config parser calls it):
    a known method, and for the JWT methods a usable key and the claims they need.

    Raises :class:`ConfigurationError` naming the field at fault.
    """
    where = f"connections[{conn.id}]"
    method = conn.token_endpoint_auth_method
    if method not in AUTH_METHODS:
        raise ConfigurationError(
            f"{where}.token_endpoint_auth_method: one of {', '.join(AUTH_METHODS)}"
        )
    if method not in JWT_METHODS:
        return
    if not conn.client_private_key:
        raise ConfigurationError(f"{where}.client_private_key: required for {method}")
    try:
        key = load_private_key(conn.client_private_key)
    except ValueError as exc:
        raise ConfigurationError(f"{where}.client_private_key: {exc}") from None
    if method == "signed_client_secret":
        if signing_algorithm(key) != "ES256":
            raise ConfigurationError(f"{where}.client_private_key: a P-256 (ES256) key is required")
        if not conn.team_id:
            raise ConfigurationError(f"{where}.team_id: required for signed_client_secret")
        if not conn.client_key_id:
            raise ConfigurationError(f"{where}.client_key_id: required for signed_client_secret")
        if not (conn.issuer or conn.token_url):
            raise ConfigurationError(f"{where}.issuer: required for signed_client_secret")


def _audience(conn: ConnectionConfig) -> str:
    if conn.issuer:
        return conn.issuer
    parts = urlsplit(conn.token_url or "")
    if not parts.scheme or not parts.netloc:
        raise ValueError(f"connection {conn.id!r}: no issuer to address a signed client secret to")
    return f"{parts.scheme}://{parts.netloc}"


class ClientSigner:
    """Signs the JWTs a client authenticates with, and keeps signed client secrets.

    RFC 7523 assertions are single-use (fresh ``jti``): signed on every call. Signed client
    secrets live ``secret_lifetime`` seconds (at most :data:`MAX_SECRET_LIFETIME`) and are
    reused until ``renew_before`` seconds before they expire; a change of key, key id, team,
    client id or audience signs a new one. Loaded keys are kept too (parsing a PEM key costs
    more than signing with it). Thread-safe: the sync vault shares one across threads.
    """

    def __init__(
        self,
        *,
        secret_lifetime: int = SECRET_LIFETIME,
        renew_before: float = SECRET_RENEW_BEFORE,
        assertion_lifetime: int = ASSERTION_LIFETIME,
    ) -> None:
        if not 0 < secret_lifetime <= MAX_SECRET_LIFETIME:
            raise ValueError(f"secret_lifetime: between 1 and {MAX_SECRET_LIFETIME} seconds")
        if not 0 <= renew_before < secret_lifetime:
            raise ValueError("renew_before: at least 0 and less than secret_lifetime")
        if assertion_lifetime <= 0:
            raise ValueError("assertion_lifetime: positive")
        self.secret_lifetime = secret_lifetime
        self.renew_before = renew_before
        self.assertion_lifetime = assertion_lifetime
        self._keys: dict[bytes, PrivateKey] = {}
        self._secrets: dict[tuple[Any, ...], tuple[str, float, float]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ClientSigner(cached_secrets={len(self._secrets)})"

    def _key(self, conn: ConnectionConfig) -> tuple[bytes, PrivateKey]:
        pem = conn.client_private_key
        if not pem:
            raise ValueError(f"connection {conn.id!r}: no client_private_key")
        digest = hashlib.sha256(pem.encode()).digest()
        key = self._keys.get(digest)
        if key is None:
            key = load_private_key(pem)
            if len(self._keys) >= _MAX_CACHED:
                self._keys.clear()
            self._keys[digest] = key
        return digest, key

    def _headers(self, conn: ConnectionConfig) -> dict[str, Any] | None:
        return {"kid": conn.client_key_id} if conn.client_key_id else None

    def assertion(self, conn: ConnectionConfig, audience: str, *, now: float) -> str:
        """A fresh RFC 7523 client assertion for a request to ``audience`` (its URL)."""
        with self._lock:
            _, key = self._key(conn)
        issued = int(now)
        claims = {
            "iss": conn.client_id,
            "sub": conn.client_id,
            "aud": audience,
            "jti": secrets.token_urlsafe(18),
            "iat": issued,
            "exp": issued + self.assertion_lifetime,
        }
        return jwt.encode(
            claims, key, algorithm=signing_algorithm(key), headers=self._headers(conn)
        )

    def client_secret(self, conn: ConnectionConfig, *, now: float) -> str:
        """The signed client secret of ``conn``: the cached one while it has more than
        ``renew_before`` seconds left (and was not issued after ``now``), else a new one."""
        audience = _audience(conn)
        with self._lock:
            digest, key = self._key(conn)
            cache_key = (
                conn.id,
                conn.client_id,
                conn.team_id,
                conn.client_key_id,
                audience,
                digest,
            )
            cached = self._secrets.get(cache_key)
            if cached is not None and cached[1] <= now < cached[2] - self.renew_before:
                return cached[0]
            issued = int(now)
            claims = {
                "iss": conn.team_id,
                "sub": conn.client_id,
                "aud": audience,
                "iat": issued,
                "exp": issued + self.secret_lifetime,
            }
            token = jwt.encode(claims, key, algorithm="ES256", headers=self._headers(conn))
            if len(self._secrets) >= _MAX_CACHED:
                self._secrets.clear()
            self._secrets[cache_key] = (token, float(issued), float(issued + self.secret_lifetime))
            return token


def client_authentication(
    conn: ConnectionConfig, url: str, *, now: float | None, signer: ClientSigner | None
) -> tuple[dict[str, str], dict[str, str]]:
    """The headers and form fields that authenticate ``conn``'s client in a request to ``url``.

    The JWT methods need ``now`` (``ValueError`` without it); without a ``signer`` a
    throwaway one signs (nothing is cached).
    """
    method = conn.token_endpoint_auth_method
    if method == "client_secret_basic":
        # RFC 6749 2.3.1: form-urlencode both parts before base64.
        pair = f"{quote(conn.client_id, safe='')}:{quote(conn.client_secret, safe='')}"
        return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}, {}
    if method == "client_secret_post":
        return {}, {"client_id": conn.client_id, "client_secret": conn.client_secret}
    if method == "none":
        return {}, {"client_id": conn.client_id}
    if method not in JWT_METHODS:
        raise ValueError(f"connection {conn.id!r}: unknown token_endpoint_auth_method")
    if now is None:
        raise ValueError(f"{method} signs a JWT: pass now")
    signer = signer or ClientSigner()
    if method == "private_key_jwt":
        return {}, {
            "client_id": conn.client_id,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": signer.assertion(conn, url, now=now),
        }
    return {}, {"client_id": conn.client_id, "client_secret": signer.client_secret(conn, now=now)}
