"""The Starlette shell in-process: an app with the middleware, an httpx client driving it
through ``httpx.ASGITransport`` and a separate client playing the browser at the development
provider (``provider`` and the settings come from ``tests/support/suite.py``).
``test_browser.py`` serves the app with uvicorn on ``server_port`` instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from oauth_vault_mw import AsyncVault
from oauth_vault_mw.starlette import OAuthVaultMiddleware, connection_credentials
from oauth_vault_mw.storage import AsyncStorage, async_storage_from_url
from tests.support.oidc_provider import DevProvider, callback_path, complete_login_async
from tests.support.suite import BASE, settings_for


async def profile(request: Request) -> JSONResponse:
    creds = await connection_credentials(request, request.path_params["cid"])
    return JSONResponse({"access_token": creds.access_token, "expires_at": creds.expires_at})


@dataclass
class Harness:
    """An app with the middleware, an httpx client on it and a 'browser' for the provider."""

    app: Starlette
    vault: AsyncVault
    client: httpx.AsyncClient
    browser: httpx.AsyncClient
    provider: DevProvider

    async def login(
        self, connection_id: str = "demo", user: str = "alice", *, path: str = "login",
        return_to: str = "/",
    ) -> httpx.Response:  # fmt: skip
        """Run a whole login; returns the app's answer to the callback."""
        start = await self.client.get(f"/auth/{path}/{connection_id}?return_to={return_to}")
        assert start.status_code == 302, start.text
        back = await self.authorize(start.headers["location"], user)
        return await self.client.get(back)

    async def authorize(self, authorize_url: str, user: str) -> str:
        """Log in at the provider; return the callback URL (relative to the app)."""
        final = await complete_login_async(self.browser, authorize_url, login=user)
        return callback_path(final, BASE)


def make_app(vault: AsyncVault) -> Starlette:
    app = Starlette(routes=[Route("/profile/{cid}", profile)])
    app.add_middleware(OAuthVaultMiddleware, vault=vault)
    return app


@pytest.fixture
def storage() -> AsyncStorage:
    """Memory; a module overrides it to run on SQLite (or shared stores) too."""
    return async_storage_from_url("memory://")


@pytest.fixture
async def harness(provider: DevProvider, storage: AsyncStorage) -> AsyncIterator[Harness]:
    vault = AsyncVault(settings_for(provider), storage=storage)
    app = make_app(vault)
    transport = httpx.ASGITransport(app=app)
    async with (
        httpx.AsyncClient(transport=transport, base_url=BASE) as client,
        httpx.AsyncClient() as browser,
    ):
        yield Harness(app, vault, client, browser, provider)
    await vault.aclose()
