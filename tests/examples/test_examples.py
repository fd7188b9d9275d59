"""The example apps, run as their READMEs run them: configured from the environment."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import httpx
import pytest

from tests.examples.loading import examples_configured
from tests.support.asgi import lifespan
from tests.support.oidc_provider import DevProvider, callback_path, complete_login_async
from tests.support.suite import BASE, TOKEN_TTL

pytestmark = pytest.mark.integration


@pytest.fixture
def example_env(
    provider: DevProvider,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[[str], ModuleType]]:
    demo = {
        "id": "demo",
        "issuer": provider.issuer,
        "client_id": "demo",
        "client_secret": "demo-secret",
        "scopes": ["openid", "profile", "email", "offline_access"],
    }
    with examples_configured(monkeypatch, [demo]) as load:
        yield load


@pytest.mark.parametrize("name", ["examples.starlette_app.app", "examples.fastapi_app.app"])
async def test_async_example(
    name: str,
    example_env: Callable[[str], ModuleType],
    unique_user: Callable[[], str],
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
        done = await client.get(callback_path(final, BASE))
        assert done.status_code == 303
        profile = await client.get("/demo/profile/demo")  # an API caller: the provider's JSON
        assert profile.status_code == 200, profile.text
        assert profile.json()["sub"]
        page = await client.get("/demo/profile/demo", headers={"Accept": "text/html"})
        assert page.status_code == 200, page.text
        assert '<table id="userinfo">' in page.text  # a browser: the userinfo as a page
        assert "<tr><th>sub</th><td>" in page.text
        assert (await client.get("/demo/profile/nope")).status_code == 404


async def test_background_job_after_logout(
    example_env: Callable[[str], ModuleType],
    provider: DevProvider,
    unique_user: Callable[[], str],
) -> None:
    """The Starlette example's job refreshes and uses the user's token after they left."""
    app: Any = example_env("examples.starlette_app.app").app
    transport = httpx.ASGITransport(app=app)
    async with (
        lifespan(app),
        httpx.AsyncClient(transport=transport, base_url=BASE) as client,
        httpx.AsyncClient() as browser,
    ):
        start = await client.get("/auth/login/demo?return_to=/")
        final = await complete_login_async(browser, start.headers["location"], unique_user())
        await client.get(callback_path(final, BASE))
        job = await client.post(f"/demo/jobs/demo?delay={TOKEN_TTL + 1}")
        assert job.status_code == 202
        job_id = job.json()["job_id"]
        logout = await client.post("/auth/logout", headers={"Origin": BASE})
        assert logout.status_code == 200
        assert (await client.get("/auth/me")).status_code == 401  # the user is gone
        before = provider.stats()["refresh_grants"]
        for _ in range(100):
            state = (await client.get(f"/demo/job/{job_id}")).json()
            if state["state"] != "scheduled":
                break
            await asyncio.sleep(0.1)
        assert state["state"] == "done", state
        assert state["status"] == 200
        assert state["result"]["sub"]
        assert provider.stats()["refresh_grants"] == before + 1  # the expired token was renewed
