"""The sweep's lease steps go to storage together (``LeaseBatches`` through the group
commit), and every guarantee holds: one refresh per credential, the rotated refresh token
stored, a record refreshed by another process since the scan not refreshed again."""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections.abc import Sequence
from urllib.parse import parse_qs

import httpx

from oauth_vault_mw import AsyncVault, Settings
from oauth_vault_mw.core.model import CredentialKey, StoredCredential, TokenSet
from oauth_vault_mw.core.records import open_record, seal_record
from oauth_vault_mw.jobs import sweep
from oauth_vault_mw.storage import AsyncStorageAdapter, MemoryStorage

TOKEN_URL = "http://127.0.0.1:9/token"


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


def settings() -> Settings:
    return Settings.from_mapping(
        {
            "secret_key": base64.b64encode(os.urandom(32)).decode(),
            "encryption_keys": base64.b64encode(os.urandom(32)).decode(),
            "base_url": "http://127.0.0.1:8000",
            "storage_url": "memory://",
            "connections": [
                {
                    "id": "demo",
                    "client_id": "client",
                    "client_secret": "secret",
                    "authorize_url": "http://127.0.0.1:9/authorize",
                    "token_url": TOKEN_URL,
                    "userinfo_url": "http://127.0.0.1:9/userinfo",
                }
            ],
        }
    )


class Provider:
    """A token endpoint answering each refresh grant with rotated tokens, a little later."""

    def __init__(self) -> None:
        self.grants: list[str] = []

    async def handle(self, request: httpx.Request) -> httpx.Response:
        form = parse_qs(request.content.decode())
        self.grants.append(form["refresh_token"][0])
        await asyncio.sleep(0.005)
        n = len(self.grants)
        body = {"access_token": f"at-new-{n}", "token_type": "Bearer", "expires_in": 3600}
        body["refresh_token"] = f"rt-new-{n}"
        return httpx.Response(200, json=body)


async def seeded(count: int) -> tuple[AsyncVault, CountingStorage, Provider, list[CredentialKey]]:
    storage = CountingStorage()
    provider = Provider()
    vault = AsyncVault(
        settings(), storage=storage, http_transport=httpx.MockTransport(provider.handle)
    )
    await vault.startup()
    now = time.time()
    keys = [CredentialKey("demo", f"user-{i:03d}") for i in range(count)]
    for i, key in enumerate(keys):
        tokens = TokenSet(f"at-{i}", f"rt-{i}", expires_at=now + 60, obtained_at=now - 3000)
        assert await storage.save_credential(seal_record(vault.sealer, key, tokens, now=now), 0)
    return vault, storage, provider, keys


async def test_the_sweep_groups_lease_steps_and_refreshes_each_credential_once() -> None:
    vault, storage, provider, keys = await seeded(40)
    try:
        report = await sweep(vault, within=600, concurrency=8)
        assert report.refreshed == 40
        assert report.failed == 0
        assert sorted(provider.grants) == sorted(f"rt-{i}" for i in range(40))  # once each
        assert storage.reads == 0  # each record read with its lease, none read again
        for key in keys:  # every rotated refresh token stored, every lease let go
            record = await storage.get_credential(key)
            assert record is not None
            assert record.version == 2
            assert (open_record(vault.sealer, record).refresh_token or "").startswith("rt-new-")
            assert await storage.acquire_lease(key, "after", 10, time.time())
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
