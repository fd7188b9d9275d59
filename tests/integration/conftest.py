"""Fixtures for tests against the real development OpenID provider (npm ``oidc-provider``)."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from oauth_vault_mw import AsyncVault, Settings
from oauth_vault_mw.starlette import OAuthVaultMiddleware, connection_credentials
from oauth_vault_mw.storage import AsyncStorage, async_storage_from_url
from tests.support.oidc_provider import DevProvider, callback_path, complete_login_async
from tests.support.ports import free_port

BASE = "http://127.0.0.1:8000"
TOKEN_TTL = 4


@pytest.fixture(scope="session")
def server_port() -> int:
    """A port for tests that serve the app with a real server (browser tests)."""
    return free_port()


@pytest.fixture(scope="session")
def conformance_ports() -> dict[str, int]:
    """Ports for the conformance suite's real servers, one per framework."""
    return {"starlette": free_port(), "flask": free_port()}


@pytest.fixture(scope="session")
def provider(server_port: int, conformance_ports: dict[str, int]) -> Iterator[DevProvider]:
    ports = [server_port, *conformance_ports.values()]
    bases = [BASE, *(f"http://127.0.0.1:{port}" for port in ports)]
    clients = [
        {
            "client_id": cid,
            "client_secret": f"{cid}-secret",
            "redirect_uris": [f"{b}/auth/callback/{cid}" for b in bases],
        }
        for cid in ("demo", "second")
    ]
    with DevProvider(clients=clients, access_token_ttl=TOKEN_TTL) as op:
        yield op


def new_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def settings_for(provider: DevProvider, base: str = BASE, **overrides: Any) -> Settings:
    data: dict[str, Any] = {
        "secret_key": "s" * 48,
        "encryption_keys": [new_key()],
        "base_url": base,
        "storage_url": "memory://",
        "provider_timeout": 2,
        "connections": [
            {
                "id": cid,
                "issuer": provider.issuer,
                "client_id": cid,
                "client_secret": f"{cid}-secret",
                "scopes": ["openid", "profile", "email", "offline_access"],
            }
            for cid in ("demo", "second")
        ],
    }
    data.update(overrides)
    return Settings.from_mapping(data)


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


@pytest.fixture
def unique_user(request: pytest.FixtureRequest) -> Callable[[], str]:
    counter = iter(range(1000))
    return lambda: f"{request.node.name[:40]}-{next(counter)}-{os.getpid()}"
