"""Token endpoint requests: the code exchange, the refresh grant and RFC 7009 revocation.

Each is an :class:`~.http.HttpRequest` for a shell to send: ``Accept: application/json`` (GitHub
answers form-encoded otherwise), the connection's ``User-Agent`` where it has one, and the
client authentication its ``token_endpoint_auth_method`` names (``core/client_auth.py``).
Pure: ``now`` is a parameter.
"""

from __future__ import annotations

from .client_auth import ClientSigner, client_authentication
from .connections import ConnectionConfig
from .http import HttpRequest
from .model import TokenSet

__all__ = ["code_exchange_request", "refresh_request", "revocation_request"]


def _token_request(
    conn: ConnectionConfig,
    url: str,
    form: dict[str, str],
    *,
    now: float | None,
    signer: ClientSigner | None,
) -> HttpRequest:
    headers = {
        "Accept": "application/json",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    if conn.user_agent:
        headers["User-Agent"] = conn.user_agent  # Reddit refuses generic ones
    auth_headers, auth_form = client_authentication(conn, url, now=now, signer=signer)
    return HttpRequest("POST", url, {**headers, **auth_headers}, {**form, **auth_form})


def code_exchange_request(
    conn: ConnectionConfig,
    token_url: str,
    code: str,
    redirect_uri: str,
    code_verifier: str,
    *,
    now: float | None = None,
    signer: ClientSigner | None = None,
) -> HttpRequest:
    """The authorization code grant, with the connection's ``token_params`` (Shopify's
    ``expiring=1``). ``now`` and ``signer``: for the JWT client authentication methods
    (``core.client_auth``); the others ignore them."""
    return _token_request(
        conn,
        token_url,
        {
            **dict(conn.token_params),
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": code_verifier,
        },
        now=now,
        signer=signer,
    )


def refresh_request(
    conn: ConnectionConfig,
    token_url: str,
    refresh_token: str,
    *,
    redirect_uri: str | None = None,
    now: float | None = None,
    signer: ClientSigner | None = None,
) -> HttpRequest:
    """The refresh grant. ``redirect_uri``: sent when given (Yahoo and GitLab want the login's
    redirect URI again on refresh: the vault passes it when ``conn.refresh_redirect_uri``)."""
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    if redirect_uri is not None:
        form["redirect_uri"] = redirect_uri
    return _token_request(conn, token_url, form, now=now, signer=signer)


def revocation_request(
    conn: ConnectionConfig,
    url: str,
    tokens: TokenSet,
    *,
    now: float | None = None,
    signer: ClientSigner | None = None,
) -> HttpRequest:
    """RFC 7009: revoke the refresh token, else the access token."""
    if tokens.refresh_token:
        form = {"token": tokens.refresh_token, "token_type_hint": "refresh_token"}
    else:
        form = {"token": tokens.access_token, "token_type_hint": "access_token"}
    return _token_request(conn, url, form, now=now, signer=signer)
