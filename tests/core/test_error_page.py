"""The browser-facing error: which requests get it, the page, the redirect to ``error_url``
and the setting's start-up check (``core/error_page.py``, ``core/config.py``)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from oauth_vault_mw import CallbackError, ConfigurationError, ProviderUnavailable, Settings
from oauth_vault_mw.core.error_page import (
    MAX_DESCRIPTION,
    error_page_reply,
    error_redirect_reply,
    host_mismatch,
    is_navigation,
)

CHROME_ACCEPT = (
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,"
    "image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7"
)


@pytest.mark.parametrize(
    ("mode", "accept", "expected"),
    [
        ("navigate", CHROME_ACCEPT, True),
        ("navigate", None, True),  # the browser says so: trusted over Accept
        ("NAVIGATE", "*/*", True),
        ("cors", CHROME_ACCEPT, False),  # fetch() from a page
        ("no-cors", "text/html", False),
        (None, CHROME_ACCEPT, True),  # a browser too old for Sec-Fetch-*
        (None, "text/html", True),
        (None, "*/*", False),  # curl, httpx, fetch()
        (None, None, False),
        (None, "application/json", False),
        (None, "application/json, text/html;q=0.5", False),
        (None, "text/html;q=0.5, application/json", False),
        (None, "text/html, application/json", False),  # a tie keeps the JSON contract
        (None, "text/*, application/json;q=0.1", True),
        (None, "text/html;q=0", False),
        (None, "text/html;q=bad", False),
        (None, "text/html," + "x" * 2000, False),  # not parsed past its bound
    ],
)
def test_is_navigation(mode: str | None, accept: str | None, expected: bool) -> None:
    assert is_navigation(mode, accept) is expected


@pytest.mark.parametrize(
    ("host", "base", "expected"),
    [
        ("127.0.0.1:8000", "http://127.0.0.1:8000", None),
        ("APP.example.com", "https://app.example.com", None),
        ("app.example.com:443", "https://app.example.com", None),
        ("app.example.com:80", "http://app.example.com", None),
        (None, "http://127.0.0.1:8000", None),
        ("localhost:8000", "http://127.0.0.1:8000", ("localhost:8000", "127.0.0.1:8000")),
        ("127.0.0.1:8001", "http://127.0.0.1:8000", ("127.0.0.1:8001", "127.0.0.1:8000")),
        ("[::1]:8000", "http://[::1]:8000", None),
        ("bad\nhost", "http://localhost", ("bad?host", "localhost")),
    ],
)
def test_host_mismatch(host: str | None, base: str, expected: tuple[str, str] | None) -> None:
    assert host_mismatch(host, base) == expected


def test_page_is_self_contained_escaped_and_not_stored() -> None:
    exc = CallbackError('the provider said <script>alert("x")</script> & left', error="a<b")
    reply = error_page_reply(
        exc, (), home="http://127.0.0.1:8000/", retry='http://127.0.0.1:8000/auth/login/"x'
    )
    assert reply.status == 400
    assert reply.body is None
    assert reply.location is None
    page = reply.page
    assert page is not None
    assert "<script" not in page
    assert "&lt;script&gt;" in page
    assert "&amp; left" in page
    assert "<code>a&lt;b</code>" in page
    assert 'href="http://127.0.0.1:8000/auth/login/&quot;x"' in page
    assert 'href="http://127.0.0.1:8000/"' in page
    assert "src=" not in page
    assert "<link" not in page
    assert "@import" not in page
    assert "<h1>Login failed</h1>" in page
    headers = reply.headers
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert headers["Cache-Control"] == "no-store"
    assert headers["Content-Security-Policy"] == "default-src 'none'; style-src 'unsafe-inline'"


def test_page_keeps_the_errors_status_and_headers() -> None:
    reply = error_page_reply(
        ProviderUnavailable(retry_after=7), (), home="/", retry=None, connect=True
    )
    assert (reply.status, reply.headers["Retry-After"]) == (503, "7")
    assert reply.page is not None
    assert "Connecting the account failed" in reply.page
    assert "Try again" not in reply.page
    assert "not answering" in reply.page


def test_redirect_carries_the_code_and_a_short_description() -> None:
    exc = CallbackError("x" * 1000, error="access_denied")
    reply = error_redirect_reply(exc, "/login-failed?lang=en", ())
    assert reply.status == 303
    assert reply.location is not None
    parts = urlsplit(reply.location)
    assert parts.path == "/login-failed"
    query = parse_qs(parts.query)
    assert query["lang"] == ["en"]
    assert query["error"] == ["access_denied"]
    assert len(query["error_description"][0]) == MAX_DESCRIPTION
    assert reply.headers["Cache-Control"] == "no-store"


def _settings(**extra: Any) -> Settings:
    return Settings.from_mapping(
        {
            "secret_key": "s" * 48,
            "encryption_keys": ["A" * 43 + "="],
            "base_url": "http://127.0.0.1:8000",
            "connections": [
                {"id": "demo", "preset": "github", "client_id": "c", "client_secret": "s"}
            ],
            **extra,
        }
    )


@pytest.mark.parametrize("value", ["/login-failed", "/oops?lang=en", "http://127.0.0.1:8000/oops"])
def test_error_url_on_this_site(value: str) -> None:
    assert _settings(error_url=value).error_url == value
    assert _settings().error_url is None
    assert _settings(error_url="").error_url is None


@pytest.mark.parametrize(
    "value",
    [
        "https://evil.example/oops",
        "//evil.example/oops",
        "https://127.0.0.1:8000/oops",  # another scheme is another origin
        "http://127.0.0.1:8001/oops",
        "http://127.0.0.1:8000@evil.example/",
        "/\\evil.example",
        "oops",
        "/oops#frag",
        "/a\nb",
        42,
    ],
)
def test_error_url_elsewhere_fails_at_start_up(value: object) -> None:
    with pytest.raises(ConfigurationError, match=r"^OAUTH_VAULT_ERROR_URL: "):
        _settings(error_url=value)


def test_error_url_from_the_environment() -> None:
    env = {
        "OAUTH_VAULT_SECRET_KEY": "s" * 48,
        "OAUTH_VAULT_ENCRYPTION_KEYS": "A" * 43 + "=",
        "OAUTH_VAULT_BASE_URL": "http://127.0.0.1:8000",
        "OAUTH_VAULT_CONNECTIONS": '[{"id": "demo", "preset": "github", "client_id": "c", '
        '"client_secret": "s"}]',
        "OAUTH_VAULT_ERROR_URL": "/login-failed",
    }
    assert Settings.from_env(env).error_url == "/login-failed"
    with pytest.raises(ConfigurationError, match=r"^OAUTH_VAULT_ERROR_URL: "):
        Settings.from_env({**env, "OAUTH_VAULT_ERROR_URL": "https://evil.example/"})
