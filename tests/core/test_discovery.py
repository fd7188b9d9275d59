"""OpenID Connect discovery, pure: which issuer a document may name, which endpoints result."""

from __future__ import annotations

import pytest

from oauth_vault_mw import ProviderUnavailable
from oauth_vault_mw.core.connections import ConnectionConfig
from oauth_vault_mw.core.discovery import (
    endpoints_from_metadata,
    issuer_matches,
    oauth_metadata_urls,
    with_oauth_metadata,
)

COMMON = "https://login.microsoftonline.com/common/v2.0"
TEMPLATE = "https://login.microsoftonline.com/{tenantid}/v2.0"


@pytest.mark.parametrize(
    ("found", "configured"),
    [
        (COMMON, COMMON),
        (COMMON + "/", COMMON),
        (TEMPLATE, COMMON),
        (TEMPLATE, "https://login.microsoftonline.com/organizations/v2.0"),
        (TEMPLATE, "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0"),
        (TEMPLATE, "https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0"),
    ],
)
def test_issuer_matches(found: str, configured: str) -> None:
    assert issuer_matches(found, configured)


@pytest.mark.parametrize(
    "found",
    [
        "https://attacker.example/{tenantid}",
        "https://attacker.example/{tenantid}/v2.0",
        "https://login.microsoftonline.com/{tenantid}/{tenantid}/v2.0",
        "https://login.microsoftonline.com/{tenantid}/v2.0/extra",
        "https://login.microsoftonline.com.attacker.example/{tenantid}/v2.0",
        "https://login.microsoftonline.com/common/v2.0/{tenantid}",
    ],
)
def test_multi_tenant_issuer_template_must_match_exactly(found: str) -> None:
    assert not issuer_matches(found, COMMON)
    conn = ConnectionConfig(id="ms", client_id="c", client_secret="s", issuer=COMMON)
    document = {
        "issuer": found,
        "authorization_endpoint": "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
        "token_endpoint": "https://login.microsoftonline.com/common/oauth2/v2.0/token",
    }
    with pytest.raises(ProviderUnavailable):
        endpoints_from_metadata(conn, document)


def test_a_tenant_spanning_segments_is_not_one_tenant() -> None:
    assert not issuer_matches(TEMPLATE, "https://login.microsoftonline.com/a/b/v2.0")


def test_revocation_endpoint_from_rfc8414_metadata() -> None:
    """An issuer whose OpenID discovery names no revocation endpoint, but its RFC 8414
    metadata does (django-oauth-toolkit): disconnect can revoke."""
    issuer = "https://auth.example.com/o"
    assert oauth_metadata_urls(issuer) == (
        "https://auth.example.com/.well-known/oauth-authorization-server/o",
        "https://auth.example.com/o/.well-known/oauth-authorization-server",
    )
    assert oauth_metadata_urls("https://auth.example.com") == (
        "https://auth.example.com/.well-known/oauth-authorization-server",
    )
    doc = {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize/",
        "token_endpoint": f"{issuer}/token/",
    }
    metadata = {"issuer": issuer, "revocation_endpoint": f"{issuer}/revoke_token/"}
    merged = with_oauth_metadata(doc, metadata, issuer)
    conn = ConnectionConfig(id="dot", client_id="c", client_secret="s", issuer=issuer)
    assert endpoints_from_metadata(conn, merged).revocation_url == f"{issuer}/revoke_token/"
    # Another issuer's metadata, or none, adds nothing; discovery's own endpoint wins.
    assert with_oauth_metadata(doc, {**metadata, "issuer": "https://evil.example"}, issuer) == doc
    assert with_oauth_metadata(doc, None, issuer) == doc
    own = {**doc, "revocation_endpoint": f"{issuer}/own/"}
    assert with_oauth_metadata(own, metadata, issuer) == own
