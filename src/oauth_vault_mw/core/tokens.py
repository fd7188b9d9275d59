"""Token endpoint requests and what their responses mean: pure functions.

The shells send the :class:`HttpRequest` these functions build and feed the response back to
:func:`parse_token_response`; nothing here does I/O or reads a clock.
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote

from .connections import ConnectionConfig
from .http import HttpRequest
from .model import TokenSet

__all__ = [
    "HttpRequest",
    "TokenGranted",
    "TokenOutcome",
    "TokenRejected",
    "TokenRetryable",
    "code_exchange_request",
    "parse_token_response",
    "refresh_request",
    "revocation_request",
]

MAX_TOKEN_RESPONSE = 256 * 1024


@dataclass(frozen=True)
class TokenGranted:
    tokens: TokenSet
    id_token: str | None = field(repr=False, default=None)


@dataclass(frozen=True)
class TokenRejected:
    """The provider answered with an OAuth error (``invalid_grant``...): do not retry."""

    error: str
    description: str = ""

    @property
    def needs_reauthentication(self) -> bool:
        # GitHub Apps answer an expired or reused refresh token with bad_refresh_token.
        return self.error in ("invalid_grant", "bad_refresh_token")


@dataclass(frozen=True)
class TokenRetryable:
    """5xx, 429, a transport failure or a body that is not a token response."""

    reason: str
    retry_after: float | None = None


TokenOutcome = TokenGranted | TokenRejected | TokenRetryable


def _token_request(conn: ConnectionConfig, url: str, form: dict[str, str]) -> HttpRequest:
    headers = {
        "Accept": "application/json",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    if conn.token_endpoint_auth_method == "client_secret_basic":
        # RFC 6749 2.3.1: form-urlencode both parts before base64.
        pair = f"{quote(conn.client_id, safe='')}:{quote(conn.client_secret, safe='')}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    else:
        form = {**form, "client_id": conn.client_id}
        if conn.token_endpoint_auth_method == "client_secret_post":
            form["client_secret"] = conn.client_secret
    return HttpRequest("POST", url, headers, form)


def code_exchange_request(
    conn: ConnectionConfig, token_url: str, code: str, redirect_uri: str, code_verifier: str
) -> HttpRequest:
    return _token_request(
        conn,
        token_url,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": code_verifier,
        },
    )


def refresh_request(conn: ConnectionConfig, token_url: str, refresh_token: str) -> HttpRequest:
    return _token_request(
        conn, token_url, {"grant_type": "refresh_token", "refresh_token": refresh_token}
    )


def revocation_request(conn: ConnectionConfig, url: str, tokens: TokenSet) -> HttpRequest:
    """RFC 7009: revoke the refresh token, else the access token."""
    if tokens.refresh_token:
        form = {"token": tokens.refresh_token, "token_type_hint": "refresh_token"}
    else:
        form = {"token": tokens.access_token, "token_type_hint": "access_token"}
    return _token_request(conn, url, form)


def _normalise_scope(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return " ".join(value.replace(",", " ").split()) or None
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return " ".join(value) or None
    return None


def _expires_in(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    if not math.isfinite(number) or number < 0:
        return None
    return number


def _decode_body(content_type: str, body: bytes) -> dict[str, Any] | None:
    if len(body) > MAX_TOKEN_RESPONSE:
        return None
    text = body.decode("utf-8", errors="replace")
    if "x-www-form-urlencoded" in content_type or (
        "json" not in content_type and not text.lstrip().startswith("{")
    ):
        pairs = parse_qsl(text, keep_blank_values=False)
        return dict(pairs) if pairs else None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def parse_token_response(
    status: int,
    content_type: str,
    body: bytes,
    *,
    now: float,
    default_expires_in: int | None,
    previous: TokenSet | None = None,
    retry_after: str | None = None,
) -> TokenOutcome:
    """Classify a token endpoint answer and, on success, build the new :class:`TokenSet`.

    Tolerant of real providers: ``scope`` as a string (space- or comma-separated) or a list,
    ``expires_in`` as a number or a numeric string; no ``refresh_token`` on a refresh keeps the
    previous one, a new one replaces it (rotation); no ``scope`` keeps the previous scope; no
    ``expires_in`` means ``default_expires_in`` (``None``: the token does not expire).
    """
    if status == 429 or status >= 500:
        return TokenRetryable(f"http {status}", _retry_after(retry_after))
    data = _decode_body(content_type.lower(), body)
    if data is None:
        return TokenRetryable(f"http {status}: not a token response")
    error = data.get("error")
    if error is not None or status >= 400:
        code = error if isinstance(error, str) and error.isascii() and len(error) < 64 else ""
        if not code:
            return TokenRetryable(f"http {status}: error without a code")
        desc = data.get("error_description")
        safe = desc[:200] if isinstance(desc, str) and desc.isprintable() else ""
        return TokenRejected(code, safe)
    access_token = data.get("access_token")
    if status != 200 or not isinstance(access_token, str) or not access_token:
        return TokenRetryable(f"http {status}: no access_token")
    lifetime = _expires_in(data.get("expires_in"))
    if lifetime is None and default_expires_in is not None:
        lifetime = float(default_expires_in)
    refresh = data.get("refresh_token")
    if not isinstance(refresh, str) or not refresh:
        refresh = previous.refresh_token if previous else None
    scope = _normalise_scope(data.get("scope"))
    if scope is None and previous is not None:
        scope = previous.scope
    token_type = data.get("token_type")
    id_token = data.get("id_token")
    return TokenGranted(
        TokenSet(
            access_token=access_token,
            refresh_token=refresh,
            token_type=token_type if isinstance(token_type, str) and token_type else "Bearer",
            expires_at=None if lifetime is None else now + lifetime,
            scope=scope,
            obtained_at=now,
        ),
        id_token=id_token if isinstance(id_token, str) else None,
    )


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, min(float(value), 3600.0))
    except ValueError:
        return None
