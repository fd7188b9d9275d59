"""ID token validation (OpenID Connect Core 3.1.3.7) through Authlib's claim classes.

Signature against the issuer's JWKS with the algorithms it advertises (never ``none``),
then ``iss``, ``aud``, ``exp``, ``iat`` (bounded skew), ``nonce``, ``azp`` and ``at_hash``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

from .errors import CallbackError

__all__ = ["UnknownSigningKey", "validate_id_token"]

_ASYMMETRIC = {
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
    "Ed25519",
}


class UnknownSigningKey(Exception):
    """The token names a key id the cached JWKS lacks: fetch the JWKS again, once."""


def _invalid(reason: str) -> CallbackError:
    return CallbackError(f"the ID token is invalid: {reason}", error="invalid_id_token")


def validate_id_token(
    id_token: str,
    *,
    jwks: Mapping[str, Any],
    issuer: str,
    client_id: str,
    nonce: str | None,
    now: float,
    leeway: int,
    algorithms: Collection[str] | None = None,
    access_token: str | None = None,
    max_age_of_iat: int = 3600,
) -> dict[str, Any]:
    """Return the validated claims or raise :class:`CallbackError` (``invalid_id_token``)."""
    allowed = [a for a in (algorithms or ["RS256"]) if a in _ASYMMETRIC] or ["RS256"]
    try:
        key_set = KeySet.import_key_set(dict(jwks))  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError, KeyError):
        raise _invalid("the issuer's JWKS cannot be read") from None
    try:
        token = jwt.decode(id_token, key=key_set, registry=JWSRegistry(algorithms=allowed))
    except InvalidKeyIdError:
        raise UnknownSigningKey() from None
    except (JoseError, ValueError, TypeError):
        raise _invalid("bad signature or format") from None
    claims_issuer = issuer
    if "{tenantid}" in issuer:  # multi-tenant issuers (Microsoft "common") are templates
        tid = token.claims.get("tid")
        if not isinstance(tid, str) or not tid.replace("-", "").isalnum():
            raise _invalid("iss")
        claims_issuer = issuer.replace("{tenantid}", tid)
    options = {
        "iss": {"essential": True, "values": [claims_issuer]},
        "aud": {"essential": True, "values": [client_id]},
        "sub": {"essential": True},
        "exp": {"essential": True},
        "iat": {"essential": True},
    }
    params: dict[str, Any] = {"nonce": nonce, "client_id": client_id}
    if access_token:
        params["access_token"] = access_token
    claims = CodeIDToken(token.claims, token.header, options, params)
    try:
        claims.validate(now=int(now), leeway=leeway)
    except JoseError as exc:
        raise _invalid(type(exc).__name__.replace("Error", "").lower() or "claims") from None
    if nonce is not None and claims.get("nonce") != nonce:
        raise _invalid("nonce")
    iat = claims.get("iat")
    if not isinstance(iat, (int, float)) or iat > now + leeway or iat < now - max_age_of_iat:
        raise _invalid("iat")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise _invalid("sub")
    return dict(claims)
