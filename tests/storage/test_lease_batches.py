"""The optional ``LeaseBatches`` steps (``acquire_leases_reading``,
``save_credentials_releasing``) on the backends that offer them, and the async adapter's
one-by-one fallback over a backend that does not."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from oauth_vault_mw.core.model import CredentialKey
from oauth_vault_mw.storage import (
    AsyncLeaseBatches,
    AsyncStorageAdapter,
    LeaseBatches,
    MemoryStorage,
    Storage,
)

from .test_contract import ALICE, NOW, record

BOB = CredentialKey("demo", "bob")
CAROL = CredentialKey("demo", "carol")


def _batches(storage: Storage) -> Any:
    if not isinstance(storage, LeaseBatches):
        pytest.skip(f"{storage!r} does not offer the optional LeaseBatches")
    return storage


def test_leases_reading_takes_each_lease_with_the_record_under_it(storage: Storage) -> None:
    batches = _batches(storage)
    assert storage.save_credential(record(ALICE), 0)
    assert storage.save_credential(record(BOB), 0)
    assert storage.save_credential(record(BOB, "v1.kid.sealed-2"), 1)
    assert storage.acquire_lease(BOB, "other", 10, NOW)
    found = batches.acquire_leases_reading([(ALICE, "a"), (BOB, "a"), (CAROL, "a")], 10, NOW + 1)
    assert [r.version if r else None for r in found] == [1, None, None]
    assert found[0].key == ALICE
    assert found[0].sealed == "v1.kid.sealed-1"
    assert not storage.acquire_lease(ALICE, "b", 10, NOW + 2)  # a holds it now
    assert not storage.acquire_lease(BOB, "b", 10, NOW + 2)  # still other's
    # an expired lease is taken over, and the record read is what is stored now
    found = batches.acquire_leases_reading([(BOB, "c")], 10, NOW + 11)
    assert found[0] is not None
    assert found[0].version == 2


def test_saves_releasing_write_each_with_its_own_compare_and_set(storage: Storage) -> None:
    batches = _batches(storage)
    assert storage.save_credential(record(ALICE), 0)
    assert storage.save_credential(record(BOB), 0)
    assert storage.acquire_lease(ALICE, "a", 10, NOW)
    assert storage.acquire_lease(BOB, "a", 10, NOW)
    saved = batches.save_credentials_releasing(
        [(record(ALICE, "v1.kid.new"), 1, "a"), (record(BOB, "v1.kid.new"), 7, "a")]
    )
    assert saved == [True, False]
    alice = storage.get_credential(ALICE)
    assert alice is not None
    assert (alice.version, alice.sealed) == (2, "v1.kid.new")
    assert storage.acquire_lease(ALICE, "b", 10, NOW + 1)  # released by the save
    assert not storage.acquire_lease(BOB, "b", 10, NOW + 1)  # not written: still held


async def test_the_adapter_offers_them_over_any_sync_backend() -> None:
    memory = MemoryStorage()
    assert not isinstance(memory, LeaseBatches)
    store = AsyncStorageAdapter(memory, offload_reads=False, offload_writes=True)
    assert isinstance(store, AsyncLeaseBatches)
    assert await store.save_credential(record(ALICE), 0)
    assert await store.acquire_lease(BOB, "x", 10, NOW) is False
    found = await store.acquire_leases_reading([(ALICE, "a"), (BOB, "a")], 10, NOW)
    assert found == [await store.get_credential(ALICE), None]
    assert not await store.acquire_lease(ALICE, "b", 10, NOW)
    newer = replace(record(ALICE, "v1.kid.new"), updated_at=NOW + 1)
    assert await store.save_credentials_releasing([(newer, 1, "a"), (newer, 1, "a")]) == [
        True,
        False,
    ]
    assert await store.acquire_lease(ALICE, "b", 10, NOW)
