"""A failed login or connect in a browser navigation: the readable page, or a redirect to
``error_url``; the same failure asked by an API client keeps its JSON error. Against the
suite's development provider (``tests/flask/test_error_pages.py`` is the Flask twin)."""

from __future__ import annotations

import logging
import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from oauth_vault_mw import AsyncVault, ConfigurationError
from oauth_vault_mw.starlette import OAuthVaultMiddleware
from tests.support.oidc_provider import DevProvider, callback_path, complete_login_async
from tests.support.suite import BASE, connection_settings, settings_for

from .conftest import make_app
from .test_browser import CHROMIUM, CHROMIUM_ARGS, served_app

__all__ = ["served_app"]  # the fixture the Chromium test shares with test_browser.py

NAVIGATE = {
    "Sec-Fetch-Mode": "navigate",
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
}
CSP = "default-src 'none'; style-src 'unsafe-inline'"
SHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "error-page"


@asynccontextmanager
async def site(
    provider: DevProvider, base: str = BASE, **overrides: Any
) -> AsyncIterator[httpx.AsyncClient]:
    vault = AsyncVault(settings_for(provider, **overrides))
    transport = httpx.ASGITransport(app=make_app(vault))
    async with httpx.AsyncClient(transport=transport, base_url=base) as client:
        yield client
    await vault.aclose()


async def denied_callback(client: httpx.AsyncClient, provider: DevProvider) -> tuple[str, str]:
    """Start a login (as a navigation), and the callback the provider sends back when the
    person refuses it (``error=access_denied``, with its ``state`` and ``iss``)."""
    start = await client.get("/auth/login/demo", headers=NAVIGATE)
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


async def test_refused_login_shows_a_page(provider: DevProvider) -> None:
    async with site(provider) as client:
        callback, state = await denied_callback(client, provider)
        answer = await client.get(callback, headers=NAVIGATE)
        page = assert_page(answer, 400, "access_denied")
        assert "cancelled or refused at the provider" in page
        assert f'href="{BASE}/auth/login/demo"' in page  # try again
        assert f'href="{BASE}/"' in page
        assert state not in page
        # the login is over: its state cookie is cleared
        assert "Max-Age=0" in answer.headers["set-cookie"]
        again = await client.get(callback, headers=NAVIGATE)
        assert_page(again, 400, "invalid_state")


async def test_refused_login_asked_by_an_api_client_keeps_its_json(provider: DevProvider) -> None:
    async with site(provider) as client:
        callback, _ = await denied_callback(client, provider)
        for headers in ({}, {"Accept": "application/json"}, {"Sec-Fetch-Mode": "cors"}):
            answer = await client.get(callback, headers=headers)
            assert answer.status_code == 400
            assert answer.headers["content-type"] == "application/json"
            assert answer.json() == {
                "error": "access_denied",
                "error_description": "the provider refused the login: access_denied",
            }
            callback, _ = await denied_callback(client, provider)


async def test_error_url_gets_the_code_and_description(provider: DevProvider) -> None:
    async with site(provider, error_url="/login-failed?lang=en") as client:
        callback, state = await denied_callback(client, provider)
        answer = await client.get(callback, headers=NAVIGATE)
        assert answer.status_code == 303
        location = answer.headers["location"]
        assert state not in location
        parts = urlsplit(location)
        assert parts.path == "/login-failed"
        assert parse_qs(parts.query) == {
            "lang": ["en"],
            "error": ["access_denied"],
            "error_description": ["the provider refused the login: access_denied"],
        }
        assert answer.headers["cache-control"] == "no-store"
        assert "Max-Age=0" in answer.headers["set-cookie"]
        # an API client still gets JSON
        callback, _ = await denied_callback(client, provider)
        assert (await client.get(callback)).json()["error"] == "access_denied"


async def test_wrong_client_secret_shows_a_page(
    provider: DevProvider, caplog: pytest.LogCaptureFixture
) -> None:
    """A wrong client secret: the page and the log name the connection's client settings;
    the start-up log named the redirect URI to register."""
    connections = connection_settings(provider)
    connections[0]["client_secret"] = "not-the-secret"
    caplog.set_level(logging.INFO, logger="oauth_vault_mw")
    async with site(provider, connections=connections) as client, httpx.AsyncClient() as browser:
        start = await client.get("/auth/login/demo", headers=NAVIGATE)
        back = await complete_login_async(browser, start.headers["location"], login="carol")
        callback = callback_path(back, BASE)
        answer = await client.get(callback, headers=NAVIGATE)
        page = assert_page(answer, 400, "invalid_callback")
        assert "invalid_client" in page
        assert "client_secret" in page
        code = parse_qs(urlsplit(callback).query)["code"][0]
        assert code not in page
    messages = [r.getMessage() for r in caplog.records]
    assert f"connection=demo redirect_uri={BASE}/auth/callback/demo" in messages
    refused = [m for m in messages if "refused the client (invalid_client)" in m]
    assert len(refused) == 1
    assert "connection=demo" in refused[0]
    assert "client_secret" in refused[0]
    assert "not-the-secret" not in "\n".join(messages)


async def test_host_other_than_base_url_is_named(provider: DevProvider) -> None:
    """The callback comes to ``localhost:8000`` while BASE_URL says ``127.0.0.1:8000``."""
    async with site(provider) as client:
        callback, _ = await denied_callback(client, provider)
        other = "http://localhost:8000"
        answer = await client.get(f"{other}{callback}")
        description = answer.json()["error_description"]
        assert answer.json()["error"] == "invalid_state"
        assert "127.0.0.1:8000" in description
        assert "localhost:8000" in description
        assert "BASE_URL" in description
        page = assert_page(
            await client.get(f"{other}{callback}", headers=NAVIGATE), 400, "invalid_state"
        )
        assert "this request came to localhost:8000" in page
        client.cookies.clear()  # sent to 127.0.0.1, whatever the Host header says
        hostile = await client.get(callback, headers={**NAVIGATE, "Host": "<b>x</b>"})
        assert "&lt;b&gt;x&lt;/b&gt;" in assert_page(hostile, 400, "invalid_state")


async def test_callback_without_its_cookie_says_why(provider: DevProvider) -> None:
    async with site(provider) as client:
        callback, _ = await denied_callback(client, provider)
        client.cookies.clear()
        answer = await client.get(callback)
        assert answer.json()["error"] == "invalid_state"
        assert f"BASE_URL {BASE}" in answer.json()["error_description"]


async def test_login_begun_at_another_host_is_logged_once(
    provider: DevProvider, caplog: pytest.LogCaptureFixture
) -> None:
    async with site(provider) as client:
        for _ in range(2):
            start = await client.get("http://localhost:8765/auth/login/demo")
            assert start.status_code == 302
    lines = [r.getMessage() for r in caplog.records if "a login began at" in r.getMessage()]
    assert lines == [
        "a login began at 'localhost:8765' but OAUTH_VAULT_BASE_URL is http://127.0.0.1:8000: "
        "the callback comes back to 127.0.0.1:8000 without this login's state cookie "
        "(invalid_state); browse the app at its BASE_URL"
    ]


async def test_connect_without_a_session_shows_a_page(provider: DevProvider) -> None:
    async with site(provider) as client:
        page = assert_page(
            await client.get("/auth/connect/demo", headers=NAVIGATE), 401, "not_authenticated"
        )
        assert "Connecting the account failed" in page
        assert f'href="{BASE}/auth/connect/demo"' in page
        assert_page(
            await client.get("/auth/login/nope", headers=NAVIGATE), 404, "unknown_connection"
        )
        bad = await client.get("/auth/login/demo?return_to=https://evil.example", headers=NAVIGATE)
        assert_page(bad, 400, "invalid_request")
        assert (await client.get("/auth/connect/demo")).json()["error"] == "not_authenticated"


@pytest.mark.parametrize("error_url", ["https://evil.example/oops", "//evil.example/oops"])
def test_error_url_on_another_origin_fails_at_start_up(
    provider: DevProvider, error_url: str
) -> None:
    settings = {
        "secret_key": "s" * 48,
        "encryption_keys": settings_for(provider).encryption_keys,
        "base_url": BASE,
        "storage_url": "memory://",
        "connections": connection_settings(provider),
        "error_url": error_url,
    }
    with pytest.raises(ConfigurationError, match=r"^OAUTH_VAULT_ERROR_URL: "):
        OAuthVaultMiddleware(make_app_stub(), settings=settings)


def make_app_stub() -> Callable[..., Any]:
    async def app(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover
        raise AssertionError("not called")

    return app


@pytest.mark.integration
@pytest.mark.browser
def test_refused_login_in_chromium_lands_on_the_page(
    served_app: str, provider: DevProvider
) -> None:
    """Chromium starts a login, the provider sends it back refused: the person reads the page
    (its inline style applies under the CSP). A screenshot goes to ``artifacts/error-page/``."""
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (scripts/test does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context()
            # the login's start through the browser's own cookie jar (its state cookie kept)
            start = context.request.get(f"{served_app}/auth/login/demo", max_redirects=0)
            assert start.status == 302
            state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
            query = urlencode({"error": "access_denied", "state": state, "iss": provider.issuer})
            page = context.new_page()
            answer = page.goto(f"{served_app}/auth/callback/demo?{query}")
            assert answer is not None
            assert answer.status == 400
            assert page.title() == "Login failed"
            assert page.inner_text("h1") == "Login failed"
            assert "cancelled or refused at the provider" in page.inner_text("main")
            assert page.inner_text("code") == "access_denied"
            width = page.eval_on_selector("main", "e => getComputedStyle(e).maxWidth")
            assert width != "none"  # the inline <style> is allowed by the CSP
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOTS / "access-denied.png"), full_page=True)
            page.click("text=Try again")
            page.wait_for_url(f"{provider.issuer}/**", timeout=15_000)
        finally:
            browser.close()
