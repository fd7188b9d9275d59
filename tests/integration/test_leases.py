"""One refresh at the provider however many callers ask, on every storage backend.

Callers read an expired credential all at once through several vault instances on one store.
Each instance stands for an app process: it has its own single-flight table, so only the
lease in the store serialises them. The provider must see exactly one refresh grant per
expiry and no refresh token used twice, every caller must get the same new token, and the
record must be written once. The async vault (Starlette, FastAPI) gathers tasks; the sync
vault (Flask) runs threads. The stores: memory (one store object shared by the instances),
SQLite (one file), PostgreSQL and Redis (the throwaway servers from ``tests/support``); and
under their own names, a Redis Cluster of three masters (``redis+cluster://``).

No framework is involved: users log in through the vault itself (``vault_login``). The vaults
share a :class:`Clock` that the test moves past the token's expiry instead of sleeping; the
provider still issues and rotates real refresh tokens.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from oauth_vault_mw import AsyncVault, CredentialKey, Credentials, Settings, Vault
from oauth_vault_mw.core.model import ACTIVE
from oauth_vault_mw.core.records import open_record
from oauth_vault_mw.storage import async_storage_from_url, storage_from_url
from tests.support.oidc_provider import DevProvider
from tests.support.suite import TOKEN_TTL, settings_for, vault_login, vault_login_sync

pytestmark = pytest.mark.integration

STORES = ["memory", "sqlite", "postgresql", "redis"]
INSTANCES = 4  # vaults on one store: app processes, as far as the vault can tell
CALLERS = 25  # concurrent callers per instance (tasks or threads)
EXPIRIES = 2  # each one refresh, the second with the refresh token the first rotated in
SLOW_REFRESH_MS = 300  # the provider answers the refresh late: the others arrive meanwhile


class Clock:
    """The wall clock plus a skew the test moves forward."""

    def __init__(self) -> None:
        self.skew = 0.0

    def __call__(self) -> float:
        return time.time() + self.skew

    def expire(self) -> None:
        """Move past the expiry of any token issued so far."""
        self.skew += TOKEN_TTL + 1


@pytest.fixture(params=STORES)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty store of each kind."""
    kind: str = request.param
    if kind == "memory":
        return "memory://"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    fixture = {
        "postgresql": "postgres_store_url",
        "redis": "redis_store_url",
        "redis-cluster": "redis_cluster_store_url",
    }[kind]
    return str(request.getfixturevalue(fixture))


@pytest.fixture
def settings(provider: DevProvider, store_url: str) -> Settings:
    return settings_for(provider, storage_url=store_url)


@pytest.fixture
async def async_vaults(settings: Settings) -> AsyncIterator[tuple[list[AsyncVault], Clock]]:
    clock = Clock()
    # memory:// is one process's store: the instances share one store object instead.
    shared = async_storage_from_url("memory://") if settings.storage_url == "memory://" else None
    vaults = [AsyncVault(settings, storage=shared, clock=clock) for _ in range(INSTANCES)]
    try:
        for vault in vaults:
            await vault.startup()
        yield vaults, clock
    finally:
        for vault in vaults:
            await vault.aclose()


@pytest.fixture
def sync_vaults(settings: Settings) -> Iterator[tuple[list[Vault], Clock]]:
    clock = Clock()
    shared = storage_from_url("memory://") if settings.storage_url == "memory://" else None
    vaults = [Vault(settings, storage=shared, clock=clock) for _ in range(INSTANCES)]
    try:
        for vault in vaults:
            vault.startup()
        yield vaults, clock
    finally:
        for vault in vaults:
            vault.close()


async def read_at_once(vaults: list[AsyncVault], user_id: str) -> list[Credentials]:
    """``CALLERS`` tasks per vault ask for the credential together."""
    calls = (v.get_connection_credentials("demo", user_id) for v in vaults for _ in range(CALLERS))
    return list(await asyncio.gather(*calls))


def read_at_once_sync(vaults: list[Vault], user_id: str) -> list[Credentials]:
    """``CALLERS`` threads per vault ask for the credential together."""
    callers = len(vaults) * CALLERS
    start = threading.Barrier(callers)

    def read(i: int) -> Credentials:
        start.wait(timeout=30)
        return vaults[i % len(vaults)].get_connection_credentials("demo", user_id)

    with ThreadPoolExecutor(max_workers=callers) as pool:
        return list(pool.map(read, range(callers)))


class Round:
    """One expiry: what the provider and the store say before and after the callers ran."""

    def __init__(self, provider: DevProvider, version: int) -> None:
        self.provider = provider
        self.version = version
        self.stats = provider.stats()

    def check(self, results: list[Credentials], previous: str, version: int) -> str:
        after = self.provider.stats()
        assert after["refresh_grants"] - self.stats["refresh_grants"] == 1
        assert after["refresh_errors"] == self.stats["refresh_errors"]  # no reused token
        assert len(results) == INSTANCES * CALLERS
        tokens = {c.access_token for c in results}
        assert len(tokens) == 1, f"{len(tokens)} different tokens served"
        assert previous not in tokens
        assert version == self.version + 1  # written once
        return tokens.pop()


async def test_one_refresh_for_concurrent_tasks_across_async_vaults(
    async_vaults: tuple[list[AsyncVault], Clock],
    provider: DevProvider,
    unique_user: Callable[[], str],
) -> None:
    await one_refresh_per_expiry(async_vaults, provider, unique_user())


def test_one_refresh_for_concurrent_threads_across_sync_vaults(
    sync_vaults: tuple[list[Vault], Clock],
    provider: DevProvider,
    unique_user: Callable[[], str],
) -> None:
    one_refresh_per_expiry_sync(sync_vaults, provider, unique_user())


@pytest.mark.parametrize("store_url", ["redis-cluster"], indirect=True)
async def test_redis_cluster_one_refresh_per_expiry(
    async_vaults: tuple[list[AsyncVault], Clock],
    provider: DevProvider,
    unique_user: Callable[[], str],
) -> None:
    await one_refresh_per_expiry(async_vaults, provider, unique_user())


@pytest.mark.parametrize("store_url", ["redis-cluster"], indirect=True)
def test_redis_cluster_one_refresh_per_expiry_threads(
    sync_vaults: tuple[list[Vault], Clock],
    provider: DevProvider,
    unique_user: Callable[[], str],
) -> None:
    one_refresh_per_expiry_sync(sync_vaults, provider, unique_user())


async def one_refresh_per_expiry(
    async_vaults: tuple[list[AsyncVault], Clock], provider: DevProvider, login: str
) -> None:
    """A login, then :data:`EXPIRIES` expiries, each read by every caller of every vault."""
    vaults, clock = async_vaults
    async with httpx.AsyncClient() as browser:
        user_id = await vault_login(vaults[0], browser, login)
    key = CredentialKey("demo", user_id)

    async def version() -> int:
        record = await vaults[0].storage.get_credential(key)
        assert record is not None
        assert open_record(vaults[0].sealer, record).status == ACTIVE
        return record.version

    token = (await vaults[-1].get_connection_credentials("demo", user_id)).access_token
    for _ in range(EXPIRIES):
        clock.expire()
        expiry = Round(provider, await version())
        provider.fail(status=0, delay_ms=SLOW_REFRESH_MS, count=1)
        try:
            results = await read_at_once(vaults, user_id)
        finally:
            provider.clear_failures()
        token = expiry.check(results, token, await version())


def one_refresh_per_expiry_sync(
    sync_vaults: tuple[list[Vault], Clock], provider: DevProvider, login: str
) -> None:
    """:func:`one_refresh_per_expiry` with threads on sync vaults."""
    vaults, clock = sync_vaults
    with httpx.Client() as browser:
        user_id = vault_login_sync(vaults[0], browser, login)
    key = CredentialKey("demo", user_id)

    def version() -> int:
        record = vaults[0].storage.get_credential(key)
        assert record is not None
        assert open_record(vaults[0].sealer, record).status == ACTIVE
        return record.version

    token = vaults[-1].get_connection_credentials("demo", user_id).access_token
    for _ in range(EXPIRIES):
        clock.expire()
        expiry = Round(provider, version())
        provider.fail(status=0, delay_ms=SLOW_REFRESH_MS, count=1)
        try:
            results = read_at_once_sync(vaults, user_id)
        finally:
            provider.clear_failures()
        token = expiry.check(results, token, version())
