"""``request.connection_client`` and ``AsyncVault.client`` against the development provider:
its userinfo endpoint (``/me``) is the API, the issuer the connection's ``api_base_url``.

A token revoked at the provider (RFC 7009) while the vault still holds it is the API's 401:
the client then refreshes once (the provider counts the refresh grant) and retries once.
"""

from __future__ import annotations

import traceback
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from oauth_vault_mw import AsyncVault
from oauth_vault_mw.core.model import CredentialKey
from oauth_vault_mw.core.records import open_record
from oauth_vault_mw.starlette import (
    AsyncConnectionClient,
    OAuthVaultMiddleware,
    VaultRequest,
    connection_client,
    connection_credentials,
)
from tests.support.oidc_provider import DevProvider, callback_path, complete_login_async
from tests.support.ports import free_port
from tests.support.suite import BASE, settings_for, vault_login

SENT: list[httpx.Request] = []
"""Every request the apps' clients sent, as their event hook saw it (token included)."""


async def record(request: httpx.Request) -> None:
    SENT.append(request)
    SENT.append(httpx.Request(request.method, request.url, headers=dict(request.headers)))


def seen_tokens() -> list[str | None]:
    """The Authorization header of each request sent (the copies kept by ``record``)."""
    return [r.headers.get("authorization") for r in SENT[1::2]]


async def token(request: Request) -> JSONResponse:
    creds = await connection_credentials(request, "demo")
    return JSONResponse({"access_token": creds.access_token})


async def userinfo(request: Request) -> JSONResponse:
    vault_request = VaultRequest(request.scope, request.receive)
    url = request.query_params.get("url", "/me")
    async with await vault_request.connection_client(
        "demo", event_hooks={"request": [record]}
    ) as api:
        resp = await api.get(url)
    return JSONResponse({"status": resp.status_code, "body": resp.json()})


async def streamed(request: Request) -> JSONResponse:
    async def body() -> AsyncIterator[bytes]:
        yield b"claims="
        yield b"none"

    api = await connection_client(request, "demo", event_hooks={"request": [record]})
    resp = await api.post(
        "/me", content=body(), headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    return JSONResponse({"status": resp.status_code})  # not closed: the pool is the vault's


async def failing(request: Request) -> JSONResponse:
    """A request to the API's origin that fails (nothing listens there), then a 401 raised
    with ``raise_for_status``: what each error says, for the leak test."""
    texts: list[str] = []
    down = f"http://127.0.0.1:{free_port()}"
    async with await connection_client(request, "demo", base_url=down) as api:
        texts.append(repr(api))
        try:
            await api.get("/me")
        except httpx.ConnectError as exc:
            texts += [str(exc), repr(exc), str(exc.request.headers)]
            texts.append("".join(traceback.format_exception(exc)))
    async with await connection_client(request, "demo") as api:
        resp = await api.get("/me")  # 401, a refresh, 200
        texts += [repr(resp), str(resp.request.headers), repr(resp.history)]
        missing = await api.get("/no-such-api")
        try:
            missing.raise_for_status()
        except httpx.HTTPStatusError as exc:
            texts += [str(exc), repr(exc), str(exc.request.headers)]
            texts.append("".join(traceback.format_exception(exc)))
    return JSONResponse({"texts": texts, "status": [resp.status_code, missing.status_code]})


def make_app(vault: AsyncVault) -> Starlette:
    routes = [
        Route("/token", token),
        Route("/userinfo", userinfo),
        Route("/streamed", streamed),
        Route("/failing", failing),
    ]
    app = Starlette(routes=routes)
    app.add_middleware(OAuthVaultMiddleware, vault=vault)
    return app


def api_settings(provider: DevProvider, **overrides: Any) -> Any:
    """The suite's settings, ``demo`` with the provider as its API and ``min_validity`` 0 (a
    4 s token is then read without a refresh)."""
    conn = {
        "id": "demo",
        "issuer": provider.issuer,
        "client_id": "demo",
        "client_secret": "demo-secret",
        "scopes": ["openid", "profile", "email", "offline_access"],
        "min_validity": 0,
        "api_base_url": provider.issuer,
        **overrides,
    }
    return settings_for(provider, connections=[conn])


STALE = "stale-access-token"


async def spoil(vault: AsyncVault, user_id: str) -> None:
    """The stored access token becomes one the provider does not know (its userinfo answers
    401), still valid by its expiry; the refresh token stays good. (A token revoked at the
    provider would take the grant with it: the dev provider revokes the whole grant.)"""
    key = CredentialKey("demo", user_id)
    record = await vault.storage.get_credential(key)
    assert record is not None
    tokens = open_record(vault.sealer, record)
    await vault.put_tokens(key, replace(tokens, access_token=STALE))


@pytest.fixture
async def vault(provider: DevProvider) -> AsyncIterator[AsyncVault]:
    vault = AsyncVault(api_settings(provider))
    yield vault
    await vault.aclose()


@pytest.fixture
async def app_client(vault: AsyncVault) -> AsyncIterator[httpx.AsyncClient]:
    SENT.clear()
    transport = httpx.ASGITransport(app=make_app(vault))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        yield client


async def log_in(client: httpx.AsyncClient, user: str) -> str:
    """Log ``user`` in through the app; their user id."""
    start = await client.get("/auth/login/demo?return_to=/")
    assert start.status_code == 302, start.text
    async with httpx.AsyncClient() as browser:
        final = await complete_login_async(browser, start.headers["location"], login=user)
    done = await client.get(callback_path(final, BASE))
    assert done.status_code in (302, 303), done.text
    me = await client.get("/auth/me")
    return str(me.json()["user_id"])


async def current_token(client: httpx.AsyncClient) -> str:
    resp = await client.get("/token")
    assert resp.status_code == 200, resp.text
    return str(resp.json()["access_token"])


async def test_the_client_sends_the_token_to_the_api(
    app_client: httpx.AsyncClient, provider: DevProvider, unique_user: Any
) -> None:
    user = unique_user()
    await log_in(app_client, user)
    before = provider.stats()
    resp = await app_client.get("/userinfo")
    assert resp.json()["status"] == 200
    assert resp.json()["body"]["sub"] == user
    after = provider.stats()
    assert after["refresh_grants"] == before["refresh_grants"]
    assert after["userinfo_calls"] == before["userinfo_calls"] + 1
    assert seen_tokens() == [f"Bearer {await current_token(app_client)}"]


async def test_a_401_brings_exactly_one_refresh_and_one_retry(
    app_client: httpx.AsyncClient, vault: AsyncVault, provider: DevProvider, unique_user: Any
) -> None:
    await spoil(vault, await log_in(app_client, unique_user()))
    before = provider.stats()
    resp = await app_client.get("/userinfo")
    assert resp.status_code == 200
    assert resp.json()["status"] == 200, "the retry with the refreshed token"
    after = provider.stats()
    assert after["refresh_grants"] == before["refresh_grants"] + 1
    assert after["userinfo_calls"] == before["userinfo_calls"] + 2
    assert after["userinfo_errors"].get("invalid_token", 0) == (
        before["userinfo_errors"].get("invalid_token", 0) + 1
    )
    new = await current_token(app_client)
    assert new != STALE
    assert seen_tokens() == [f"Bearer {STALE}", f"Bearer {new}"]
    assert all("authorization" not in r.headers for r in SENT[0::2]), "taken off after"


async def test_a_streamed_body_is_never_replayed(
    app_client: httpx.AsyncClient, vault: AsyncVault, provider: DevProvider, unique_user: Any
) -> None:
    await spoil(vault, await log_in(app_client, unique_user()))
    before = provider.stats()
    resp = await app_client.get("/streamed")
    assert resp.json() == {"status": 401}, "the API's 401, unchanged"
    after = provider.stats()
    assert after["refresh_grants"] == before["refresh_grants"], "no refresh"
    assert after["userinfo_calls"] == before["userinfo_calls"] + 1, "sent once"
    assert seen_tokens() == [f"Bearer {STALE}"]


async def test_another_origin_gets_no_token(
    app_client: httpx.AsyncClient, provider: DevProvider, unique_user: Any
) -> None:
    """``localhost`` is the provider's host by another name: another origin."""
    await log_in(app_client, unique_user())
    other = provider.userinfo_endpoint.replace("127.0.0.1", "localhost")
    before = provider.stats()
    resp = await app_client.get("/userinfo", params={"url": other})
    assert resp.json()["status"] == 401
    assert seen_tokens() == [None]
    assert provider.stats()["refresh_grants"] == before["refresh_grants"], "no refresh"


async def test_no_token_in_reprs_or_errors(
    app_client: httpx.AsyncClient, vault: AsyncVault, unique_user: Any
) -> None:
    user_id = await log_in(app_client, unique_user())
    first = await current_token(app_client)
    await spoil(vault, user_id)
    resp = await app_client.get("/failing")
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == [200, 404]
    text = "\n".join(resp.json()["texts"])
    assert "ConnectError" in text
    assert "404" in text
    tokens = {first, STALE, await current_token(app_client)}
    assert len(tokens) == 3
    for value in tokens:
        assert value not in text


async def test_a_background_client_retries_after_one_refresh(
    vault: AsyncVault, provider: DevProvider, unique_user: Any
) -> None:
    await vault.startup()
    async with httpx.AsyncClient() as browser:
        user_id = await vault_login(vault, browser, unique_user())
    await spoil(vault, user_id)
    before = provider.stats()
    async with await vault.client("demo", user_id) as api:
        assert isinstance(api, AsyncConnectionClient)
        assert repr(api) == (
            f"AsyncConnectionClient(connection_id='demo', base_url='{provider.issuer}')"
        )
        resp = await api.get("/me")
        assert resp.status_code == 200
    assert not vault.provider.client.is_closed, "closing the client leaves the pool open"
    after = provider.stats()
    assert after["refresh_grants"] == before["refresh_grants"] + 1
    assert after["userinfo_calls"] == before["userinfo_calls"] + 2
    again = await vault.client("demo", user_id)  # never closed: it borrows the pool
    assert (await again.get("/me")).status_code == 200, "the pool still serves"
