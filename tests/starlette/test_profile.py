"""Who logged in: the display profile of each login, in ``/auth/me`` and ``current_user``,
against the real development provider (its ID token carries no display claims, so the
profile comes from its user endpoint), kept sealed and carried through refreshes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from oauth_vault_mw import AsyncVault, CredentialKey
from oauth_vault_mw.core.records import open_record
from oauth_vault_mw.starlette import (
    OAuthVaultMiddleware,
    VaultRequest,
    VaultRoute,
    current_user,
    vault_of,
)
from tests.support.oidc_provider import DevProvider
from tests.support.suite import BASE, settings_for

from .conftest import Harness

pytestmark = pytest.mark.integration


async def whoami(request: Request) -> Response:
    user = await current_user(request)
    if user is None:
        return JSONResponse({"user": None})
    return JSONResponse(
        {"user_id": user.user_id, "profile": dict(user.profile), "via": user.connection_id}
    )


async def whoami_method(request: VaultRequest) -> Response:
    user = await request.current_user()
    if user is not None:  # the middleware's vault, as a handler reaches it
        assert (await vault_of(request).me(user.user_id))["profile"] == user.profile
    return JSONResponse({"name": None if user is None else user.profile.get("name")})


@pytest.fixture
async def h(provider: DevProvider) -> AsyncIterator[Harness]:
    vault = AsyncVault(settings_for(provider))
    app = Starlette(routes=[Route("/whoami", whoami), VaultRoute("/name", whoami_method)])
    app.add_middleware(OAuthVaultMiddleware, vault=vault)
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client,
        httpx.AsyncClient() as browser,
    ):
        yield Harness(app, vault, client, browser, provider)
    await vault.aclose()


async def test_profile_after_login(h: Harness, unique_user: Callable[[], str]) -> None:
    assert (await h.client.get("/whoami")).json() == {"user": None}
    login = unique_user()
    await h.login(user=login)
    expected = {
        "name": login[0].upper() + login[1:],
        "email": f"{login}@example.test",
        "email_verified": True,
        "preferred_username": login,
    }
    me = (await h.client.get("/auth/me")).json()
    assert me["profile"] == expected
    assert [c["profile"] for c in me["connections"]] == [expected]
    who = (await h.client.get("/whoami")).json()
    assert who == {"user_id": me["user_id"], "profile": expected, "via": "demo"}
    assert (await h.client.get("/name")).json() == {"name": expected["name"]}


async def test_profile_is_sealed_and_survives_refreshes(
    h: Harness, unique_user: Callable[[], str]
) -> None:
    login = unique_user()
    await h.login(user=login)
    user_id = (await h.client.get("/auth/me")).json()["user_id"]
    key = CredentialKey("demo", user_id)
    stored = await h.vault.storage.get_credential(key)
    assert stored is not None
    assert login not in stored.sealed  # personal data: sealed with the tokens
    first = open_record(h.vault.sealer, stored)
    assert first.refresh_count == 0
    assert first.login_at is not None
    for n in (1, 2):
        await h.vault.get_connection_credentials("demo", user_id, force_refresh=True)
        tokens = open_record(h.vault.sealer, await h.vault.storage.get_credential(key))  # type: ignore[arg-type]
        assert tokens.refresh_count == n
        assert tokens.login_at == first.login_at
        assert tokens.profile == first.profile
    me = (await h.client.get("/auth/me")).json()
    assert me["profile"]["preferred_username"] == login
    (entry,) = me["connections"]
    assert entry["refresh_count"] == 2
    assert entry["login_at"] == int(first.login_at)
    assert entry["refreshed_at"] is not None
    assert entry["refreshed_at"] >= entry["login_at"]
    # A new login takes the profile of that login and starts counting again.
    h.client.cookies.clear()
    await h.login(user=login)
    again = open_record(h.vault.sealer, await h.vault.storage.get_credential(key))  # type: ignore[arg-type]
    assert again.refresh_count == 0
    (entry,) = (await h.client.get("/auth/me")).json()["connections"]
    assert (entry["refresh_count"], entry["refreshed_at"]) == (0, None)
    assert again.login_at is not None
    assert again.login_at >= first.login_at
    # Disconnecting deletes it with the credential.
    assert (await h.client.delete("/auth/connections/demo")).status_code in (200, 204)
    assert await h.vault.storage.get_credential(key) is None
    me = (await h.client.get("/auth/me")).json()
    assert me["profile"] == {}
    assert me["connections"] == []
