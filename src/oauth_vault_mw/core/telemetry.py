"""The words metrics and traces use: fixed vocabularies, and what a provider's reply counts as.

Every label value the vault reports comes from here or is a configured connection id (a
validated, low-cardinality name): never a user id, a token, a key, a URL or a provider
string. ``reply_error_class`` reads a provider's reply only to name its class; it keeps
nothing of it.
"""

from __future__ import annotations

from typing import Final

from .tokens import decode_body

__all__ = [
    "DOCUMENT_OPERATIONS",
    "ERROR_CLASSES",
    "LEASE_OUTCOMES",
    "OAUTH_ERROR_CODES",
    "PROVIDER_OPERATIONS",
    "REFRESH_OUTCOMES",
    "STORAGE_OUTCOMES",
    "TOKEN_OPERATIONS",
    "oauth_error_class",
    "reply_error_class",
]

REFRESH_OUTCOMES: Final = (
    "refreshed",  # the provider issued new tokens; they are stored
    "reauthentication_required",  # the provider refused the grant: the credential is marked
    "failed",  # provider unavailable after the retries: the still-valid token or a 503
    "backoff",  # not tried: the provider failed lately (the backoff), still-valid token or 503
    "lease_missed",  # another process held the lease too long: still-valid token or 503
    "superseded",  # another process (or a login) stored newer tokens meanwhile: those served
    "error",  # anything else (storage unavailable, the credential deleted meanwhile)
)
"""How one refresh (one single flight) ended: the ``outcome`` label of the refresh metrics."""

LEASE_OUTCOMES: Final = (
    "acquired",  # taken after waiting for another holder
    "superseded",  # the holder wrote a newer version meanwhile: no need to take it
    "timed_out",  # the wait ran out (the holder stalled or died: its lease must expire)
)
"""How a wait for a credential's lease held by another refresh ended."""

TOKEN_OPERATIONS: Final = frozenset({"refresh", "code_exchange"})
DOCUMENT_OPERATIONS: Final = frozenset({"discovery", "metadata", "jwks", "userinfo", "extra"})
PROVIDER_OPERATIONS: Final = (
    "refresh",  # the token endpoint, refresh grant
    "code_exchange",  # the token endpoint, authorization code grant (a login's callback)
    "userinfo",  # the user endpoint at login
    "extra",  # a preset's extra document at login (Xero's tenants)
    "revocation",  # RFC 7009, on disconnect
    "discovery",  # the OpenID configuration document
    "metadata",  # RFC 8414 authorization server metadata
    "jwks",  # the issuer's signing keys
    "other",
)
"""The ``operation`` label of provider calls."""

OAUTH_ERROR_CODES: Final = frozenset(
    {
        "invalid_grant",
        "invalid_client",
        "unauthorized_client",
        "invalid_request",
        "invalid_scope",
        "unsupported_grant_type",
        "access_denied",
        "invalid_token",
        "temporarily_unavailable",
        "server_error",
    }
)
"""The standard OAuth error codes a token endpoint answers with, kept as their own class."""

ERROR_CLASSES: Final = (
    "timeout",  # no complete reply within provider_timeout
    "connect",  # the provider could not be reached
    "transport",  # the connection failed mid-way (reset, protocol error)
    "too_large",  # a reply over the size cap
    "http_5xx",
    "http_429",
    "http_4xx",  # another client error (a 401 at the user endpoint, a 404)
    "http_3xx",  # a redirect (the vault follows none)
    "invalid_response",  # a 2xx the vault cannot read (not JSON, an error in a 200)
    *sorted(OAUTH_ERROR_CODES),
    "oauth_error",  # a token endpoint's error code outside the standard ones
)
"""The ``error_class`` label of provider errors."""

STORAGE_OUTCOMES: Final = ("ok", "error", "cancelled")


def oauth_error_class(code: object) -> str:
    """A token endpoint's ``error`` code as a label: the standard ones as they are, any other
    (a provider's own word, never trusted as a label) as ``oauth_error``."""
    if isinstance(code, str) and code.lower() in OAUTH_ERROR_CODES:
        return code.lower()
    return "oauth_error"


def reply_error_class(operation: str, status: int, content_type: str, body: bytes) -> str | None:
    """What a provider's reply counts as for the ``provider_errors`` metric: ``None`` when it
    is a success, else one of :data:`ERROR_CLASSES`.

    Token endpoint errors are classed by their OAuth ``error`` code (``invalid_grant`` is a
    revoked grant, ``invalid_client`` a broken configuration); an error in a 2xx counts too
    (GitHub answers refusals with 200).
    """
    if status >= 500:
        return "http_5xx"
    if status == 429:
        return "http_429"
    if 300 <= status < 400:
        return "http_3xx"
    if operation in TOKEN_OPERATIONS:
        data = decode_body(content_type, body)
        if data is None:
            return "http_4xx" if status >= 400 else "invalid_response"
        if "error" in data:
            return oauth_error_class(data["error"])
        return "http_4xx" if status >= 400 else None
    if status >= 400:
        return "http_4xx"
    if operation in DOCUMENT_OPERATIONS:
        stripped = body.lstrip(b"\xef\xbb\xbf \t\r\n")
        if not stripped.startswith((b"{", b"[")):
            return "invalid_response"
    return None
