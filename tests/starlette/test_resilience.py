"""Failures of the parts around the vault: a worker killed mid-refresh, storage going away."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from oauth_vault_mw import AsyncVault, Settings
from oauth_vault_mw.core.model import CredentialKey
from oauth_vault_mw.core.records import open_record
from oauth_vault_mw.storage import AsyncStorage
from tests.support.oidc_provider import DevProvider
from tests.support.suite import BASE, settings_for

from .conftest import Harness, make_app

pytestmark = pytest.mark.integration

LEASE_TTL = 5.0
SHARED_STORES = ["sqlite", "postgresql", "redis"]


def store_url(request: pytest.FixtureRequest, kind: str, tmp_path: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    return str(request.getfixturevalue("postgres_url" if kind == "postgresql" else "redis_url"))


@pytest.fixture(params=SHARED_STORES)
async def shared(
    request: pytest.FixtureRequest, provider: DevProvider, tmp_path: Path
) -> AsyncIterator[Harness]:
    """A harness whose vault lives in a store other processes can share."""
    url = store_url(request, request.param, tmp_path)
    settings = settings_for(provider, storage_url=url, provider_timeout=2, lease_ttl=LEASE_TTL)
    vault = AsyncVault(settings)
    app = make_app(vault)
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client,
        httpx.AsyncClient() as browser,
    ):
        yield Harness(app, vault, client, browser, provider)
    await vault.aclose()


def _env(settings: Settings) -> dict[str, str]:
    import base64

    return {
        **os.environ,
        "OAUTH_VAULT_SECRET_KEY": settings.secret_key,
        "OAUTH_VAULT_ENCRYPTION_KEYS": ",".join(
            base64.b64encode(k).decode() for k in settings.encryption_keys
        ),
        "OAUTH_VAULT_BASE_URL": settings.base_url,
        "OAUTH_VAULT_STORAGE_URL": settings.storage_url,
        "OAUTH_VAULT_PROVIDER_TIMEOUT": "2",
        "OAUTH_VAULT_LEASE_TTL": str(LEASE_TTL),
        "OAUTH_VAULT_CONNECTIONS": json.dumps(
            [
                {
                    "id": c.id,
                    "issuer": c.issuer,
                    "client_id": c.client_id,
                    "client_secret": c.client_secret,
                    "scopes": list(c.scopes),
                }
                for c in settings.connections
            ]
        ),
    }


REFRESHER = """
import asyncio, os, sys
from oauth_vault_mw import AsyncVault, Settings
vault = AsyncVault(Settings.from_env())
asyncio.run(vault.get_connection_credentials("demo", sys.argv[1], force_refresh=True))
"""


async def _lease_is_held(storage: AsyncStorage, key: CredentialKey) -> bool:
    if await storage.acquire_lease(key, "probe", LEASE_TTL, time.time()):
        await storage.release_lease(key, "probe")
        return False
    return True


async def test_worker_killed_holding_the_lease(
    shared: Harness, unique_user: Callable[[], str]
) -> None:
    h = shared
    await h.login(user=unique_user())
    user_id = (await h.client.get("/auth/me")).json()["user_id"]
    key = CredentialKey("demo", user_id)
    before = await h.vault.storage.get_credential(key)
    assert before is not None
    h.provider.fail(status=503, delay_ms=30_000, count=100)  # the worker's refresh hangs
    worker = subprocess.Popen(
        [sys.executable, "-c", REFRESHER, user_id], env=_env(h.vault.settings),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while not await _lease_is_held(h.vault.storage, key):
            assert worker.poll() is None, "the worker ended before taking the lease"
            assert time.monotonic() < deadline, "the worker never took the lease"
            time.sleep(0.02)
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        killed_at = time.monotonic()
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)
        h.provider.clear_failures()
    fresh = await h.vault.get_connection_credentials("demo", user_id, force_refresh=True)
    waited = time.monotonic() - killed_at
    assert waited <= LEASE_TTL + 1.5  # blocked at most for the dead holder's lease
    after = await h.vault.storage.get_credential(key)
    assert after is not None
    assert after.version == before.version + 1  # one refresh, written whole
    tokens = open_record(h.vault.sealer, after)  # not corrupted: it opens
    assert tokens.status == "active"
    assert tokens.access_token == fresh.access_token


@pytest.mark.parametrize("kind", ["postgresql", "redis"])
async def test_storage_down_is_503_then_recovers(
    kind: str, request: pytest.FixtureRequest, provider: DevProvider,
    unique_user: Callable[[], str],
) -> None:  # fmt: skip
    server = request.getfixturevalue("postgres_server" if kind == "postgresql" else "redis_server")
    url = store_url(request, kind, Path("/nonexistent"))
    if kind == "redis":  # the throwaway Redis keeps nothing across restarts: freeze it instead
        url += "?socket_timeout=0.5"
    down, up = (
        (server.stop, server.start) if kind == "postgresql" else (server.pause, server.resume)
    )
    vault = AsyncVault(settings_for(provider, storage_url=url, provider_timeout=2))
    app = make_app(vault)
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client,
        httpx.AsyncClient() as browser,
    ):
        h = Harness(app, vault, client, browser, provider)
        await h.login(user=unique_user())
        user_id = (await client.get("/auth/me")).json()["user_id"]
        key = CredentialKey("demo", user_id)
        before = await vault.storage.get_credential(key)
        assert before is not None
        down()
        try:
            for answer in (
                await client.get("/auth/connections/demo/credentials"),
                await client.get("/auth/me"),
                await client.get("/profile/demo"),
            ):
                assert answer.status_code == 503, answer.text
                assert answer.json()["error"] == "storage_unavailable"
                assert answer.headers["retry-after"]
                assert kind not in answer.text.lower() or "storage" in answer.text.lower()
            # Starting a login stores nothing (its transaction is in the state cookie).
            assert (await client.get("/auth/login/demo")).status_code == 302
        finally:
            up()
        # Service resumes, and nothing was half-written meanwhile.
        deadline = time.monotonic() + 15
        while True:
            answer = await client.get("/auth/connections/demo/credentials")
            if answer.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert answer.status_code == 200, answer.text
        after = await vault.storage.get_credential(key)
        assert after is not None
        # Whole writes only: the record opens; at most the one refresh its expiry asked for.
        assert after.version in (before.version, before.version + 1)
        tokens = open_record(vault.sealer, after)
        assert tokens.status == "active"
        assert tokens.access_token == answer.json()["access_token"]
    await vault.aclose()
