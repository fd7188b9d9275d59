"""Incremental authorization against the real development provider (Starlette and FastAPI):
a handler needing a scope the user has not granted gets 403 ``insufficient_scope`` with a
``login_url``; after the consent that URL asks for, the same call succeeds and the earlier
scopes are still granted. A grant the user narrowed shows in ``/auth/me``; bad ``scope``
parameters are 400s that store nothing."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from oauth_vault_mw import AsyncVault, CredentialKey, Credentials, InsufficientScope
from oauth_vault_mw.fastapi import ConnectionCredentials
from oauth_vault_mw.starlette import (
    OAuthVaultMiddleware,
    VaultRequest,
    VaultRoute,
    connection_credentials,
)
from tests.support.oidc_provider import DevProvider
from tests.support.suite import BASE, connection_settings, settings_for

from .conftest import Harness

pytestmark = pytest.mark.integration

CONFIGURED = ["openid", "profile", "email", "offline_access", "calendar.readonly"]


async def calendar(request: Request) -> Response:
    creds = await connection_credentials(request, "demo", scopes=["calendar.readonly"])
    return JSONResponse({"scope": creds.scope})


async def drive(request: VaultRequest) -> Response:
    creds = await request.connection_credentials("demo", scopes=["drive.file"])
    return JSONResponse({"scope": creds.scope})


async def drive_post(request: Request) -> Response:
    creds = await connection_credentials(request, "demo", scopes=["drive.file"])
    return JSONResponse({"scope": creds.scope})


class Clock:
    """The vault's clock, moved on by a test (the provider keeps its own)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def scoped_settings(provider: DevProvider) -> Any:
    connections = connection_settings(provider)
    connections[0]["scopes"] = CONFIGURED
    return settings_for(provider, connections=connections)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def h(provider: DevProvider, clock: Clock) -> AsyncIterator[Harness]:
    vault = AsyncVault(scoped_settings(provider), clock=clock)
    app = Starlette(
        routes=[
            Route("/calendar", calendar),
            VaultRoute("/drive", drive),
            Route("/drive", drive_post, methods=["POST"]),
        ]
    )
    app.add_middleware(OAuthVaultMiddleware, vault=vault)
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client,
        httpx.AsyncClient() as browser,
    ):
        yield Harness(app, vault, client, browser, provider)
    await vault.aclose()


async def consent(h: Harness, login_url: str, user: str) -> httpx.Response:
    """Follow a ``login_url``: the app's connect, the provider's consent, the callback."""
    start = await h.client.get(login_url)
    assert start.status_code == 302, start.text
    back = await h.authorize(start.headers["location"], user)
    return await h.client.get(back)


def asked_scope(response: httpx.Response) -> list[str]:
    """The scope an authorization request (a redirect to the provider) asks for."""
    return parse_qs(urlsplit(response.headers["location"]).query)["scope"][0].split()


async def connection_of(h: Harness) -> dict[str, Any]:
    me = (await h.client.get("/auth/me")).json()
    entry: dict[str, Any] = me["connections"][0]
    return entry


async def test_a_missing_scope_is_403_until_the_incremental_consent(
    h: Harness, unique_user: Callable[[], str], clock: Clock
) -> None:
    user = unique_user()
    assert (await h.login(user=user)).status_code == 303
    assert (await h.client.get("/calendar")).status_code == 200
    entry = await connection_of(h)
    assert set(entry["granted_scopes"]) >= {"openid", "email", "calendar.readonly"}
    assert entry["declined_scopes"] == []  # offline_access: the refresh token stands for it

    # The token has expired too: the scope check comes first, and no refresh is tried.
    clock.offset = 3600
    before = h.provider.stats()["refresh_grants"]
    refused = await h.client.get("/drive?view=list")
    assert refused.status_code == 403
    body = refused.json()
    assert body["error"] == "insufficient_scope"
    assert body["missing_scopes"] == ["drive.file"]
    assert "drive.file" in body["error_description"]
    assert h.provider.stats()["refresh_grants"] == before
    url = urlsplit(body["login_url"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{BASE}/auth/connect/demo"
    assert parse_qs(url.query) == {"scope": ["drive.file"], "return_to": ["/drive?view=list"]}
    # the same through the user credential route, and from a POST (no way back to it)
    route = await h.client.get("/auth/connections/demo/credentials?scope=drive.file")
    assert (route.status_code, route.json()["missing_scopes"]) == (403, ["drive.file"])
    assert "return_to" not in route.json()["login_url"]
    posted = await h.client.post("/drive")
    assert posted.status_code == 403
    assert "return_to" not in posted.json()["login_url"]

    # The connect asks for the configured, the granted and the missing scopes.
    clock.offset = 0  # (the vault checks the ID token's times with its clock)
    start = await h.client.get(body["login_url"])
    assert start.status_code == 302
    assert set(asked_scope(start)) == {*CONFIGURED, "drive.file"}
    back = await h.authorize(start.headers["location"], user)
    done = await h.client.get(back)
    assert (done.status_code, done.headers["location"]) == (303, "/drive?view=list")

    again = await h.client.get("/drive?view=list")
    assert again.status_code == 200, again.text
    assert {"drive.file", "calendar.readonly"} <= set(again.json()["scope"].split())
    assert (await h.client.get("/calendar")).status_code == 200  # the earlier scope stays
    route = await h.client.get("/auth/connections/demo/credentials?scope=drive.file+openid")
    assert route.status_code == 200
    entry = await connection_of(h)
    assert {"calendar.readonly", "drive.file"} <= set(entry["granted_scopes"])
    assert entry["declined_scopes"] == []
    assert entry["scope"].split() == entry["granted_scopes"]


async def test_a_grant_narrowed_by_the_user_shows_in_me(
    h: Harness, unique_user: Callable[[], str]
) -> None:
    user = unique_user()
    h.provider.decline_scopes(user, "calendar.readonly")  # unticked at the consent
    assert (await h.login(user=user)).status_code == 303
    entry = await connection_of(h)
    assert "calendar.readonly" not in entry["granted_scopes"]
    assert entry["declined_scopes"] == ["calendar.readonly"]
    user_id = (await h.client.get("/auth/me")).json()["user_id"]
    stored = await h.vault.storage.get_credential(CredentialKey("demo", user_id))
    assert stored is not None
    assert "calendar.readonly" not in (stored.scope or "")

    refused = await h.client.get("/calendar")
    assert refused.status_code == 403
    body = refused.json()
    assert body["missing_scopes"] == ["calendar.readonly"]
    # asked again, the user grants it this time
    done = await consent(h, body["login_url"], user)
    assert (done.status_code, done.headers["location"]) == (303, "/calendar")
    assert (await h.client.get("/calendar")).status_code == 200
    entry = await connection_of(h)
    assert "calendar.readonly" in entry["granted_scopes"]
    assert entry["declined_scopes"] == []


@pytest.mark.parametrize(
    "query",
    [
        "scope=",
        "scope=%22drive%22",
        "scope=drive+drive",
        "scope=caf%C3%A9",
        "scope=a%5Cb",
        "scope=" + "x" * 1100,
        "scope=a&scope=b",
    ],
)
async def test_a_bad_scope_parameter_is_a_400_and_stores_nothing(
    h: Harness, unique_user: Callable[[], str], query: str
) -> None:
    await h.login(user=unique_user())
    user_id = (await h.client.get("/auth/me")).json()["user_id"]
    before = await h.vault.storage.list_credentials(user_id)
    answer = await h.client.get(f"/auth/connect/demo?{query}")
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "invalid_request"
    assert "set-cookie" not in answer.headers
    assert await h.vault.storage.list_credentials(user_id) == before
    route = await h.client.get(f"/auth/connections/demo/credentials?{query}")
    assert route.status_code == 400
    assert "access_token" not in route.text


async def test_a_login_takes_no_scope_parameter(h: Harness) -> None:
    answer = await h.client.get("/auth/login/demo?scope=drive.file")
    assert answer.status_code == 400
    assert "/auth/connect/demo" in answer.json()["error_description"]
    assert "set-cookie" not in answer.headers
    # a connect needs a session before it reads the scope's user
    anonymous = await h.client.get("/auth/connect/demo?scope=drive.file")
    assert anonymous.status_code == 401


async def test_a_vault_call_checks_scopes_too(h: Harness, unique_user: Callable[[], str]) -> None:
    await h.login(user=unique_user())
    user_id = (await h.client.get("/auth/me")).json()["user_id"]
    creds = await h.vault.get_connection_credentials("demo", user_id, scopes=["calendar.readonly"])
    assert "calendar.readonly" in (creds.scope or "")
    with pytest.raises(InsufficientScope) as caught:
        await h.vault.get_connection_credentials("demo", user_id, scopes=["drive.file"])
    assert caught.value.missing_scopes == ("drive.file",)
    assert caught.value.login_url == f"{BASE}/auth/connect/demo?scope=drive.file"
    async with await h.vault.client("demo", user_id, scopes="drive.file", base_url=BASE) as api:
        with pytest.raises(InsufficientScope):
            await api.get("/anything")


async def test_fastapi_dependency_takes_scopes(
    provider: DevProvider, unique_user: Callable[[], str]
) -> None:
    vault = AsyncVault(scoped_settings(provider))
    app = FastAPI()

    @app.get("/drive")
    async def by_dependency(
        creds: Credentials = Depends(ConnectionCredentials("demo", scopes=["drive.file"])),  # noqa: B008
    ) -> dict[str, Any]:
        return {"scope": creds.scope}

    app.add_middleware(OAuthVaultMiddleware, vault=vault)
    h = Harness(
        app=app,
        vault=vault,
        client=httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE),
        browser=httpx.AsyncClient(),
        provider=provider,
    )
    async with h.client, h.browser:
        user = unique_user()
        await h.login(user=user)
        refused = await h.client.get("/drive")
        assert refused.status_code == 403
        assert refused.json()["missing_scopes"] == ["drive.file"]
        done = await consent(h, refused.json()["login_url"], user)
        assert done.headers["location"] == "/drive"
        assert "drive.file" in (await h.client.get("/drive")).json()["scope"]
    await vault.aclose()
