"""OpenID Connect discovery: a connection's endpoints from its settings and the issuer's
metadata document. Pure: the shells fetch the document, this decides what it means."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .connections import ConnectionConfig, is_loopback_host
from .errors import ProviderUnavailable

__all__ = [
    "METADATA_TTL",
    "Endpoints",
    "discovery_url",
    "endpoints_from_metadata",
    "issuer_matches",
    "oauth_metadata_urls",
    "with_oauth_metadata",
]

METADATA_TTL = 3600.0
"""Seconds a discovery document is trusted before it is fetched again."""


def discovery_url(issuer: str) -> str:
    return issuer + "/.well-known/openid-configuration"


def oauth_metadata_urls(issuer: str) -> tuple[str, ...]:
    """RFC 8414 authorization server metadata: the well-known path inserted before the
    issuer's path (the RFC's form), then appended to it (what many servers serve)."""
    parts = urlsplit(issuer)
    inserted = f"{parts.scheme}://{parts.netloc}/.well-known/oauth-authorization-server"
    inserted += parts.path.rstrip("/")
    appended = issuer.rstrip("/") + "/.well-known/oauth-authorization-server"
    return (inserted,) if inserted == appended else (inserted, appended)


def with_oauth_metadata(
    doc: dict[str, Any], metadata: dict[str, Any] | None, issuer: str
) -> dict[str, Any]:
    """The discovery document, with the ``revocation_endpoint`` that only the issuer's RFC 8414
    metadata names (django-oauth-toolkit lists it there alone); a document of another issuer
    adds nothing."""
    if "revocation_endpoint" in doc or not metadata:
        return doc
    found = metadata.get("issuer")
    endpoint = metadata.get("revocation_endpoint")
    if not isinstance(found, str) or not issuer_matches(found, issuer):
        return doc
    if not isinstance(endpoint, str):
        return doc
    return {**doc, "revocation_endpoint": endpoint}


@dataclass(frozen=True)
class Endpoints:
    """A connection's endpoints: its settings, completed by OIDC discovery."""

    issuer: str | None
    authorize_url: str
    token_url: str
    userinfo_url: str | None
    revocation_url: str | None
    jwks_uri: str | None
    iss_parameter_supported: bool
    id_token_algorithms: tuple[str, ...]


_TENANT = "{tenantid}"


def issuer_matches(found: str, configured: str) -> bool:
    """Whether the issuer a discovery document names is the configured one: the same URL, or
    a multi-tenant template (Microsoft's ``https://login.microsoftonline.com/{tenantid}/v2.0``
    for ``.../common/v2.0``) that gives the configured URL once ``{tenantid}`` is one path
    segment. The ID token's ``tid`` is checked against the template later (``idtoken.py``)."""
    found, configured = found.rstrip("/"), configured.rstrip("/")
    if found == configured:
        return True
    if found.count(_TENANT) != 1:
        return False
    prefix, suffix = found.split(_TENANT)
    if len(configured) <= len(prefix) + len(suffix):
        return False
    if not (configured.startswith(prefix) and configured.endswith(suffix)):
        return False
    tenant = configured[len(prefix) : len(configured) - len(suffix)]
    return tenant.replace("-", "").replace(".", "").isalnum() and tenant.isascii()


def endpoints_from_metadata(conn: ConnectionConfig, doc: dict[str, Any] | None) -> Endpoints:
    """Merge explicit settings over a discovery document."""
    doc = doc or {}
    if conn.issuer is not None:
        found = doc.get("issuer")
        if not isinstance(found, str) or not issuer_matches(found, conn.issuer):
            raise ProviderUnavailable(
                f"connection {conn.id}: the discovery document names another issuer"
            )
    algs = doc.get("id_token_signing_alg_values_supported") or ["RS256"]

    def _s(name: str) -> str | None:
        value = doc.get(name)
        if not isinstance(value, str):
            return None
        parts = urlsplit(value)
        secure = parts.scheme == "https" or (
            parts.scheme == "http" and is_loopback_host(parts.hostname)
        )
        if not secure:  # discovered endpoints obey the rule configured ones do
            raise ProviderUnavailable(f"connection {conn.id}: discovery names a non-https {name}")
        return value

    authorize = conn.authorize_url or _s("authorization_endpoint")
    token = conn.token_url or _s("token_endpoint")
    if authorize is None or token is None:
        raise ProviderUnavailable(f"connection {conn.id}: the discovery document lacks endpoints")
    return Endpoints(
        issuer=_s("issuer") or conn.issuer,
        authorize_url=authorize,
        token_url=token,
        userinfo_url=conn.userinfo_url or _s("userinfo_endpoint"),
        revocation_url=conn.revocation_url or _s("revocation_endpoint"),
        jwks_uri=_s("jwks_uri"),
        iss_parameter_supported=doc.get("authorization_response_iss_parameter_supported") is True,
        id_token_algorithms=tuple(a for a in algs if isinstance(a, str)),
    )
