"""How the fake provider words its answers: reply templates filled in, errors in each
provider's own shape, client credentials read from a token request. Pure functions.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_plus

from .fixtures.spec import ProviderFixture

__all__ = [
    "DROP",
    "Basic",
    "drop_path",
    "error_body",
    "generic_user_agent",
    "read_basic",
    "render",
    "s256",
]

DROP: Any = object()
"""A placeholder's value when the grant does not earn it: its key leaves the reply."""

_GENERIC_AGENTS = ("python-httpx/", "python-requests/", "python-urllib/", "curl/", "go-http-")

# The words each style uses for the fake's internal error names (RFC 6749 names otherwise).
_RENAMES: dict[str, dict[str, str]] = {
    "github": {
        "invalid_code": "bad_verification_code",
        "invalid_client": "incorrect_client_credentials",
        "invalid_redirect_uri": "redirect_uri_mismatch",
        "invalid_verifier": "bad_verification_code",
    },
    "slack": {
        "invalid_code": "invalid_code",
        "invalid_client": "invalid_client_id",
        "invalid_redirect_uri": "bad_redirect_uri",
        "invalid_verifier": "invalid_code_verifier",
        "unsupported_grant_type": "invalid_grant_type",
    },
    "hubspot": {
        "invalid_code": "BAD_AUTH_CODE",
        "invalid_client": "BAD_CLIENT_ID",
        "invalid_redirect_uri": "BAD_REDIRECT_URI",
        "invalid_verifier": "BAD_AUTH_CODE",
        "unsupported_grant_type": "BAD_GRANT_TYPE",
        "invalid_request": "BAD_REQUEST",
    },
}
_RFC = {
    "invalid_code": "invalid_grant",
    "invalid_redirect_uri": "invalid_grant",
    "invalid_verifier": "invalid_grant",
}
_AADSTS = {"invalid_client": 7000215, "invalid_request": 900144, "unsupported_grant_type": 70003}


def s256(verifier: str) -> str:
    """The PKCE S256 challenge of ``verifier``."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def generic_user_agent(value: str | None) -> bool:
    """No User-Agent, or an HTTP library's default one (Reddit throttles those)."""
    return not value or value.lower().startswith(_GENERIC_AGENTS)


class Basic:
    """The two halves of an ``Authorization: Basic`` header, form-decoded (RFC 6749 2.3.1)."""

    __slots__ = ("password", "user")

    def __init__(self, user: str, password: str) -> None:
        self.user = user
        self.password = password


def read_basic(header: str | None) -> Basic | None:
    if not header or header[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return Basic("", "")
    user, _, password = decoded.partition(":")
    return Basic(unquote_plus(user), unquote_plus(password))


def error_body(
    fixture: ProviderFixture, error: str, description: str, status: int = 400
) -> tuple[int, dict[str, Any]]:
    """An error in the provider's shape: the status it answers with and its JSON body.

    ``error`` is an RFC 6749 code or one of the fake's own names (``invalid_code``,
    ``invalid_redirect_uri``, ``invalid_verifier``) that each style words its own way.
    """
    style = fixture.error_style
    code = _RENAMES.get(style, {}).get(error) or _RFC.get(error, error)
    if style == "github":
        body: dict[str, Any] = {
            "error": code,
            "error_description": description,
            "error_uri": "https://docs.github.com/apps/managing-oauth-apps/"
            "troubleshooting-oauth-app-access-token-request-errors",
        }
        return 200, body
    if style == "slack":
        return 200, {"ok": False, "error": code}
    if style == "reddit":
        if error == "invalid_client":
            return 401, {"message": "Unauthorized", "error": 401}
        return 200, {"error": code}
    if style == "hubspot":
        return 400, {
            "status": code,
            "message": description,
            "correlationId": "0f7e2a4c-9b1d-4c3e-8a5f-6d7e8f9a0b1c",
        }
    if style == "twitch":
        return status, {"status": status, "message": description}
    if style == "strava":
        field = {"invalid_client": "client_id", "invalid_code": "code"}.get(error, error)
        return status, {
            "message": "Bad Request",
            "errors": [{"resource": "Application", "field": field, "code": "invalid"}],
        }
    if style == "zoom":
        return status, {"reason": description, "error": code}
    body = {"error": code, "error_description": description}
    if style == "microsoft":
        number = _AADSTS.get(error, 70000)
        body.update(
            error_description=f"AADSTS{number}: {description}",
            error_codes=[number],
            timestamp="2026-12-04 10:00:00Z",
            trace_id="0b9c2b1e-2f0e-4d44-9d1f-8f6f3c0c1a00",
            correlation_id="6f1d8a9e-91a1-4c48-a2c2-3b7f5e0d2c11",
        )
    return status, body


def render(template: Any, values: Mapping[str, Any]) -> Any:
    """``template`` with its placeholders filled in from ``values``; a key whose value is
    :data:`DROP` leaves its object. ``$expires_at`` is ``$now`` plus the object's own
    ``expires_in``."""
    if isinstance(template, Mapping):
        out: dict[str, Any] = {}
        for key, value in template.items():
            if value == "$expires_at":
                filled: Any = int(values["$now"]) + int(template["expires_in"])
            else:
                filled = render(value, values)
            if filled is not DROP:
                out[key] = filled
        return out
    if isinstance(template, list):
        return [render(item, values) for item in template]
    if isinstance(template, str):
        if template in values:
            return values[template]
        if "$root" in template:
            return template.replace("$root", values["$root"])
    return template


def drop_path(body: dict[str, Any], dotted: str) -> None:
    """Remove ``a.b.c`` from ``body`` where it is."""
    *parents, last = dotted.split(".")
    node: Any = body
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(last, None)
