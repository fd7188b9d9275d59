"""The example apps, run as their READMEs run them: configured from the environment."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import httpx
import pytest

from tests.integration.conftest import (  # noqa: F401 - fixtures
    BASE,
    conformance_ports,
    new_key,
    provider,
    server_port,
    unique_user,
)
from tests.support.asgi import lifespan
from tests.support.oidc_provider import DevProvider, complete_login_async

pytestmark = pytest.mark.integration


@pytest.fixture
def example_env(
    provider: DevProvider,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[[str], ModuleType]]:
    env = {
        "OAUTH_VAULT_SECRET_KEY": "e" * 48,
        "OAUTH_VAULT_ENCRYPTION_KEYS": new_key(),
        "OAUTH_VAULT_BASE_URL": BASE,
        "OAUTH_VAULT_STORAGE_URL": "memory://",
        "OAUTH_VAULT_CONNECTIONS": json.dumps(
            [
                {
                    "id": "demo",
                    "issuer": provider.issuer,
                    "client_id": "demo",
                    "client_secret": "demo-secret",
                    "scopes": ["openid", "profile", "email", "offline_access"],
                }
            ]
        ),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    loaded: list[str] = []

    def load(name: str) -> ModuleType:
        sys.modules.pop(name, None)
        loaded.append(name)
        return importlib.import_module(name)

    yield load
    for name in loaded:
        sys.modules.pop(name, None)


@pytest.mark.parametrize("name", ["examples.starlette_app.app", "examples.fastapi_app.app"])
async def test_async_example(
    name: str,
    example_env: Callable[[str], ModuleType],
    unique_user: Callable[[], str],  # noqa: F811
) -> None:
    app: Any = example_env(name).app
    transport = httpx.ASGITransport(app=app)
    async with (
        lifespan(app),
        httpx.AsyncClient(transport=transport, base_url=BASE) as client,
        httpx.AsyncClient() as browser,
    ):
        home = await client.get("/")
        assert home.status_code == 200
        assert "/auth/login/demo" in home.text
        assert (await client.get("/demo/profile/demo")).status_code == 401
        start = await client.get("/auth/login/demo?return_to=/")
        final = await complete_login_async(browser, start.headers["location"], unique_user())
        done = await client.get(final.headers["location"][len(BASE) :])
        assert done.status_code == 303
        profile = await client.get("/demo/profile/demo")
        assert profile.status_code == 200, profile.text
        assert profile.json()["sub"]
        assert (await client.get("/demo/profile/nope")).status_code == 404
