"""What a provider's reply counts as in the metrics (``core/telemetry.py``): pure, no I/O."""

from __future__ import annotations

import pytest

from oauth_vault_mw.core.telemetry import (
    ERROR_CLASSES,
    oauth_error_class,
    reply_error_class,
)

JSON = "application/json"


@pytest.mark.parametrize(
    ("operation", "status", "content_type", "body", "expected"),
    [
        ("refresh", 200, JSON, b'{"access_token": "a", "token_type": "Bearer"}', None),
        ("refresh", 200, "application/x-www-form-urlencoded", b"access_token=a&scope=s", None),
        ("refresh", 400, JSON, b'{"error": "invalid_grant"}', "invalid_grant"),
        ("refresh", 401, JSON, b'{"error": "INVALID_CLIENT"}', "invalid_client"),
        ("refresh", 400, JSON, b'{"error": "bad_refresh_token"}', "oauth_error"),
        ("refresh", 200, JSON, b'{"error": "bad_refresh_token"}', "oauth_error"),  # GitHub
        ("refresh", 200, "text/html", b"<html>maintenance</html>", "invalid_response"),
        ("refresh", 400, "text/html", b"<html>no</html>", "http_4xx"),
        ("refresh", 503, JSON, b'{"error": "temporarily_unavailable"}', "http_5xx"),
        ("code_exchange", 429, JSON, b"{}", "http_429"),
        ("code_exchange", 302, "", b"", "http_3xx"),
        ("userinfo", 200, JSON, b'{"sub": "1"}', None),
        ("userinfo", 401, JSON, b'{"error": "invalid_token"}', "http_4xx"),
        ("discovery", 200, "text/html", b"<html></html>", "invalid_response"),
        ("jwks", 200, JSON, b'\xef\xbb\xbf {"keys": []}', None),
        ("extra", 200, JSON, b"[]", None),
        ("revocation", 200, "", b"", None),
        ("revocation", 400, JSON, b'{"error": "unsupported_token_type"}', "http_4xx"),
    ],
)
def test_reply_error_class(
    operation: str, status: int, content_type: str, body: bytes, expected: str | None
) -> None:
    assert reply_error_class(operation, status, content_type, body) == expected


def test_an_error_code_never_becomes_a_label_of_its_own() -> None:
    """A provider's word is not a label: a label per distinct string would let a provider
    (or a reply holding a token) grow the series without bound."""
    secret_looking = "eyJhbGciOi.leaked.token"
    assert oauth_error_class(secret_looking) == "oauth_error"
    assert oauth_error_class(None) == "oauth_error"
    assert oauth_error_class({"nested": 1}) == "oauth_error"
    for code in ("invalid_grant", "invalid_client", "invalid_scope"):
        assert oauth_error_class(code) in ERROR_CLASSES
