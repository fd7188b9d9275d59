"""One refresh across vault instances that share a store: the lease, not the process lock.

Four ``AsyncVault``s on one SQLite file stand for four app processes (each has its own
single-flight table, so only the lease in the store can serialise them).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from oauth_vault_mw import AsyncVault
from oauth_vault_mw.core.model import CredentialKey
from oauth_vault_mw.core.records import open_record
from oauth_vault_mw.storage import AsyncStorage, async_storage_from_url

from .conftest import TOKEN_TTL, Harness, settings_for

pytestmark = pytest.mark.integration


@pytest.fixture
def storage(tmp_path: Path) -> AsyncStorage:
    return async_storage_from_url(f"sqlite:///{tmp_path / 'shared.db'}")


async def test_one_refresh_across_instances(
    harness: Harness, tmp_path: Path, unique_user: Callable[[], str]
) -> None:
    h = harness
    await h.login(user=unique_user())
    user_id = (await h.client.get("/auth/me")).json()["user_id"]
    keys = list(h.vault.settings.encryption_keys)
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    others = [
        AsyncVault(settings_for(h.provider, encryption_keys=keys, storage_url=url))
        for _ in range(3)
    ]
    vaults = [h.vault, *others]
    try:
        for _ in range(2):  # two expiries, one refresh each
            await asyncio.sleep(TOKEN_TTL + 0.2)
            before = h.provider.stats()
            results = await asyncio.gather(
                *(v.get_connection_credentials("demo", user_id) for v in vaults for _ in range(25))
            )
            after = h.provider.stats()
            assert after["refresh_grants"] - before["refresh_grants"] == 1
            assert after["refresh_errors"] == before["refresh_errors"]
            assert len({c.access_token for c in results}) == 1
        record = await h.vault.storage.get_credential(CredentialKey("demo", user_id))
        assert record is not None
        assert open_record(h.vault.sealer, record).status == "active"
    finally:
        for vault in others:
            await vault.aclose()
