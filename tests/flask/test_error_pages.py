"""A failed login or connect in a browser navigation, in Flask: the readable page, or a
redirect to ``OAUTH_VAULT_ERROR_URL``; an API client keeps the JSON error. Against the
suite's development provider (``tests/starlette/test_error_pages.py`` is the twin)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from oauth_vault_mw import ConfigurationError
from oauth_vault_mw.flask import OAuthVault
from tests.support.oidc_provider import DevProvider, callback_path, complete_login
from tests.support.suite import BASE, connection_settings

from .conftest import config_for, make_app

NAVIGATE = {
    "Sec-Fetch-Mode": "navigate",
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
}
CSP = "default-src 'none'; style-src 'unsafe-inline'"


@contextmanager
def site(provider: DevProvider, **overrides: Any) -> Iterator[httpx.Client]:
    app = make_app(config_for(provider, **overrides))
    transport = httpx.WSGITransport(app=app)
    with httpx.Client(transport=transport, base_url=BASE) as client:
        yield client
    OAuthVault().get_service(app).close()
    app.extensions["oauth_vault"].close()


def denied_callback(client: httpx.Client, provider: DevProvider) -> tuple[str, str]:
    """Start a login (as a navigation), and the callback the provider sends back when the
    person refuses it (``error=access_denied``, with its ``state`` and ``iss``)."""
    start = client.get("/auth/login/demo", headers=NAVIGATE)
    assert start.status_code == 302, start.text
    state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
    query = urlencode({"error": "access_denied", "state": state, "iss": provider.issuer})
    return f"/auth/callback/demo?{query}", state


def assert_page(answer: httpx.Response, status: int, code: str) -> str:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["content-security-policy"] == CSP
    assert f"<code>{code}</code>" in answer.text
    return answer.text


def test_refused_login_shows_a_page(provider: DevProvider) -> None:
    with site(provider) as client:
        callback, state = denied_callback(client, provider)
        answer = client.get(callback, headers=NAVIGATE)
        page = assert_page(answer, 400, "access_denied")
        assert "cancelled or refused at the provider" in page
        assert f'href="{BASE}/auth/login/demo"' in page
        assert state not in page
        assert "Max-Age=0" in answer.headers["set-cookie"]
        assert_page(client.get(callback, headers=NAVIGATE), 400, "invalid_state")


def test_refused_login_asked_by_an_api_client_keeps_its_json(provider: DevProvider) -> None:
    with site(provider) as client:
        for headers in ({}, {"Accept": "application/json"}, {"Sec-Fetch-Mode": "cors"}):
            callback, _ = denied_callback(client, provider)
            answer = client.get(callback, headers=headers)
            assert answer.status_code == 400
            assert answer.headers["content-type"] == "application/json"
            assert answer.json() == {
                "error": "access_denied",
                "error_description": "the provider refused the login: access_denied",
            }


def test_error_url_gets_the_code_and_description(provider: DevProvider) -> None:
    with site(provider, error_url=f"{BASE}/login-failed") as client:
        callback, state = denied_callback(client, provider)
        answer = client.get(callback, headers=NAVIGATE)
        assert answer.status_code == 303
        location = answer.headers["location"]
        assert state not in location
        parts = urlsplit(location)
        assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{BASE}/login-failed"
        assert parse_qs(parts.query) == {
            "error": ["access_denied"],
            "error_description": ["the provider refused the login: access_denied"],
        }
        callback, _ = denied_callback(client, provider)
        assert client.get(callback).json()["error"] == "access_denied"


def test_wrong_client_secret_shows_a_page(provider: DevProvider) -> None:
    connections = connection_settings(provider)
    connections[0]["client_secret"] = "not-the-secret"
    with site(provider, connections=connections) as client, httpx.Client() as browser:
        start = client.get("/auth/login/demo", headers=NAVIGATE)
        callback = callback_path(complete_login(browser, start.headers["location"]), BASE)
        page = assert_page(client.get(callback, headers=NAVIGATE), 400, "invalid_callback")
        assert "invalid_client" in page
        assert parse_qs(urlsplit(callback).query)["code"][0] not in page


def test_host_other_than_base_url_is_named(provider: DevProvider) -> None:
    with site(provider) as client:
        callback, _ = denied_callback(client, provider)
        answer = client.get(f"http://localhost:8000{callback}")
        assert answer.json()["error"] == "invalid_state"
        description = answer.json()["error_description"]
        assert "127.0.0.1:8000" in description
        assert "localhost:8000" in description
        page = client.get(f"http://localhost:8000{callback}", headers=NAVIGATE)
        assert "this request came to localhost:8000" in assert_page(page, 400, "invalid_state")


def test_connect_without_a_session_shows_a_page(provider: DevProvider) -> None:
    with site(provider) as client:
        page = assert_page(
            client.get("/auth/connect/demo", headers=NAVIGATE), 401, "not_authenticated"
        )
        assert "Connecting the account failed" in page
        assert client.get("/auth/connect/demo").json()["error"] == "not_authenticated"


@pytest.mark.parametrize("error_url", ["https://evil.example/oops", "http://127.0.0.1:9/x"])
def test_error_url_on_another_origin_fails_at_start_up(
    provider: DevProvider, error_url: str
) -> None:
    with pytest.raises(ConfigurationError, match=r"^OAUTH_VAULT_ERROR_URL: "):
        make_app(config_for(provider, error_url=error_url))
