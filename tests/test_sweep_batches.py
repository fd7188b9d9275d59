"""The sweep's lease steps go to storage together (``LeaseBatches`` through the group
commit), and every guarantee holds: one refresh per credential, the rotated refresh token
stored, a record refreshed by another process since the scan not refreshed again."""

from __future__ import annotations

import time
from collections.abc import Sequence

import httpx

from oauth_vault_mw import AsyncVault
from oauth_vault_mw.core.model import CredentialKey, StoredCredential, TokenSet
from oauth_vault_mw.core.records import open_record, seal_record
from oauth_vault_mw.jobs import sweep
from oauth_vault_mw.storage import AsyncStorageAdapter, MemoryStorage
from tests.support.rotating import (
    RotatingTokenEndpoint,
    assert_rotated_once_each,
    seed_expiring,
    settings,
)


class CountingStorage(AsyncStorageAdapter):
    """The adapter over memory, counting its storage calls."""

    def __init__(self) -> None:
        super().__init__(MemoryStorage(), offload_reads=False, offload_writes=True)
        self.lease_batches: list[int] = []
        self.save_batches: list[int] = []
        self.single_leases = 0
        self.reads = 0

    async def acquire_leases_reading(
        self, leases: Sequence[tuple[CredentialKey, str]], ttl: float, now: float
    ) -> list[StoredCredential | None]:
        self.lease_batches.append(len(leases))
        return await super().acquire_leases_reading(leases, ttl, now)

    async def save_credentials_releasing(
        self, saves: Sequence[tuple[StoredCredential, int, str]]
    ) -> list[bool]:
        self.save_batches.append(len(saves))
        return await super().save_credentials_releasing(saves)

    async def acquire_lease(self, key: CredentialKey, owner: str, ttl: float, now: float) -> bool:
        self.single_leases += 1
        return await super().acquire_lease(key, owner, ttl, now)

    async def get_credential(self, key: CredentialKey) -> StoredCredential | None:
        self.reads += 1
        return await super().get_credential(key)


async def seeded(
    count: int,
) -> tuple[AsyncVault, CountingStorage, RotatingTokenEndpoint, list[CredentialKey]]:
    storage = CountingStorage()
    provider = RotatingTokenEndpoint(delay=0.005)
    vault = AsyncVault(
        settings("memory://"), storage=storage, http_transport=httpx.MockTransport(provider.handle)
    )
    await vault.startup()
    return vault, storage, provider, await seed_expiring(vault, storage, count)


async def test_the_sweep_groups_lease_steps_and_refreshes_each_credential_once() -> None:
    vault, storage, provider, keys = await seeded(40)
    try:
        report = await sweep(vault, within=600, concurrency=8)
        assert report.refreshed == 40
        assert report.failed == 0
        assert storage.reads == 0  # each record read with its lease, none read again
        await assert_rotated_once_each(vault, storage, provider, keys)
        assert sum(storage.lease_batches) == 40
        assert sum(storage.save_batches) == 40
        assert len(storage.lease_batches) < 40
        assert len(storage.save_batches) < 40
        assert storage.single_leases == 40  # the probes above: the sweep took none alone
    finally:
        await vault.aclose()


async def test_a_credential_refreshed_elsewhere_since_the_scan_is_not_refreshed_again() -> None:
    vault, storage, provider, keys = await seeded(3)
    try:
        page = await storage.scan_credentials(
            after=None, limit=10, expiring_before=time.time() + 600
        )
        # another process refreshes user-001 after the scan, before the sweep's lease
        now = time.time()
        newer = TokenSet("at-other", "rt-other", expires_at=now + 3600, obtained_at=now)
        assert await storage.save_credential(seal_record(vault.sealer, keys[1], newer, now=now), 1)
        outcomes = [
            await vault.refresh_if_expiring("demo", r.key.user_id, within=600, record=r)
            for r in page
        ]
        assert outcomes == ["refreshed", "refreshed", "refreshed"]  # user-001: done elsewhere
        assert sorted(provider.grants) == ["rt-0", "rt-2"]
        record = await storage.get_credential(keys[1])
        assert record is not None
        assert open_record(vault.sealer, record).refresh_token == "rt-other"
    finally:
        await vault.aclose()
