"""Accounts and users: the same provider account is the same user; the new-user-id hook;
FastAPI's route class and dependency. Connecting a second account, disconnecting it and an
account linked to another user are conformance scenarios (tests/conformance)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI

from oauth_vault_mw import AsyncVault, Credentials
from oauth_vault_mw.fastapi import ConnectionCredentials, VaultAPIRoute, VaultRequest
from oauth_vault_mw.starlette import OAuthVaultMiddleware
from tests.support.oidc_provider import DevProvider
from tests.support.suite import BASE, settings_for

from .conftest import Harness

pytestmark = pytest.mark.integration


async def test_same_provider_account_maps_to_same_user(
    harness: Harness, unique_user: Callable[[], str]
) -> None:
    h = harness
    login = unique_user()
    await h.login(user=login)
    first = (await h.client.get("/auth/me")).json()["user_id"]
    h.client.cookies.clear()
    await h.login(user=login)
    assert (await h.client.get("/auth/me")).json()["user_id"] == first


async def test_new_user_id_hook(provider: DevProvider, unique_user: Callable[[], str]) -> None:
    seen: list[str] = []

    async def hook(identity: object) -> str:
        seen.append(getattr(identity, "subject"))  # noqa: B009
        return "user-42"

    vault = AsyncVault(settings_for(provider), new_user_id=hook)
    h = Harness(
        app=(app := _fastapi_app(vault)),
        vault=vault,
        client=httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE),
        browser=httpx.AsyncClient(),
        provider=provider,
    )
    async with h.client, h.browser:
        login = unique_user()
        await h.login(user=login)
        assert (await h.client.get("/auth/me")).json()["user_id"] == "user-42"
        assert seen == [login]
        # FastAPI: route class and dependency.
        by_route = await h.client.get("/api/route/demo")
        by_dep = await h.client.get("/api/dep")
        assert by_route.status_code == by_dep.status_code == 200
        assert by_route.json() == by_dep.json()
        assert by_route.json()["user_id"] == "user-42"
        h.client.cookies.clear()
        anonymous = await h.client.get("/api/dep")
        assert anonymous.status_code == 401
        assert anonymous.json()["error"] == "not_authenticated"
    await vault.aclose()


def _fastapi_app(vault: AsyncVault) -> FastAPI:
    app = FastAPI()
    router = APIRouter(route_class=VaultAPIRoute)

    @router.get("/api/route/{cid}")
    async def by_route(cid: str, request: VaultRequest) -> dict[str, object]:
        creds = await request.connection_credentials(cid)
        return {"user_id": creds.user_id, "token": creds.access_token}

    @app.get("/api/dep")
    async def by_dependency(
        creds: Credentials = Depends(ConnectionCredentials("demo")),  # noqa: B008
    ) -> dict[str, object]:
        return {"user_id": creds.user_id, "token": creds.access_token}

    app.include_router(router)
    app.add_middleware(OAuthVaultMiddleware, vault=vault)
    return app
