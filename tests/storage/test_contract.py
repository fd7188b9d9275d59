"""The storage contract: every backend, sync and through the async adapter (see conftest)."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace

import pytest

from oauth_vault_mw.core.model import (
    ACTIVE,
    REAUTHENTICATION_REQUIRED,
    CredentialKey,
    StoredCredential,
)
from oauth_vault_mw.storage import AsyncStorage, Storage
from oauth_vault_mw.storage._protocol import SessionCredentialReads

ALICE = CredentialKey("demo", "alice")
NOW = 1_700_000_000.0


def record(
    key: CredentialKey = ALICE,
    sealed: str = "v1.kid.sealed-1",
    *,
    status: str = ACTIVE,
    expires_at: float | None = NOW + 3600,
    scope: str | None = "openid email",
    updated_at: float = NOW,
) -> StoredCredential:
    return StoredCredential(
        key=key,
        version=0,
        sealed=sealed,
        status=status,
        expires_at=expires_at,
        scope=scope,
        updated_at=updated_at,
    )


# -- credentials: compare-and-set ---------------------------------------------------------


def test_get_missing(storage: Storage) -> None:
    assert storage.get_credential(ALICE) is None


def test_insert_then_get(storage: Storage) -> None:
    assert storage.save_credential(record(), 0) is True
    assert storage.get_credential(ALICE) == replace(record(), version=1)


def test_second_insert_fails(storage: Storage) -> None:
    assert storage.save_credential(record(sealed="first"), 0)
    assert storage.save_credential(record(sealed="second"), 0) is False
    stored = storage.get_credential(ALICE)
    assert stored is not None
    assert (stored.sealed, stored.version) == ("first", 1)


def test_update_increments_version(storage: Storage) -> None:
    assert storage.save_credential(record(), 0)
    update = record(
        sealed="second", status=REAUTHENTICATION_REQUIRED, expires_at=None, scope=None,
        updated_at=NOW + 5,
    )  # fmt: skip
    assert storage.save_credential(update, 1) is True
    assert storage.get_credential(ALICE) == replace(update, version=2)
    assert storage.save_credential(record(sealed="third"), 2) is True
    stored = storage.get_credential(ALICE)
    assert stored is not None
    assert (stored.sealed, stored.version) == ("third", 3)


def test_stale_update_fails(storage: Storage) -> None:
    assert storage.save_credential(record(sealed="first"), 0)
    assert storage.save_credential(record(sealed="second"), 1)
    for stale in (0, 1, 3, 99):
        assert storage.save_credential(record(sealed="lost"), stale) is False
    stored = storage.get_credential(ALICE)
    assert stored is not None
    assert (stored.sealed, stored.version) == ("second", 2)


def test_update_of_absent_record_fails(storage: Storage) -> None:
    assert storage.save_credential(record(), 1) is False
    assert storage.get_credential(ALICE) is None


def test_version_in_the_record_is_not_trusted(storage: Storage) -> None:
    assert storage.save_credential(replace(record(), version=41), 0)
    stored = storage.get_credential(ALICE)
    assert stored is not None
    assert stored.version == 1


def test_keys_are_distinct(storage: Storage) -> None:
    keys = [
        ALICE,
        CredentialKey("demo", "bob"),
        CredentialKey("other", "alice"),
        CredentialKey("demo", "alice", "second"),
    ]
    for i, key in enumerate(keys):
        assert storage.save_credential(record(key, sealed=f"s{i}"), 0)
    for i, key in enumerate(keys):
        stored = storage.get_credential(key)
        assert stored is not None
        assert (stored.key, stored.sealed, stored.version) == (key, f"s{i}", 1)


def test_delete(storage: Storage) -> None:
    assert storage.delete_credential(ALICE) is False
    assert storage.save_credential(record(), 0)
    assert storage.save_credential(record(), 1)
    assert storage.delete_credential(ALICE) is True
    assert storage.get_credential(ALICE) is None
    assert storage.delete_credential(ALICE) is False
    # a deleted record starts over
    assert storage.save_credential(record(), 2) is False
    assert storage.save_credential(record(), 0) is True
    stored = storage.get_credential(ALICE)
    assert stored is not None
    assert stored.version == 1


def test_list_credentials(storage: Storage) -> None:
    mine = [
        CredentialKey("zeta", "alice"),
        CredentialKey("demo", "alice", "work"),
        CredentialKey("demo", "alice"),
    ]
    for key in [*mine, CredentialKey("demo", "bob"), CredentialKey("demo", "alice2")]:
        assert storage.save_credential(record(key), 0)
    listed = storage.list_credentials("alice")
    assert [r.key for r in listed] == sorted(mine)
    assert all(r.version == 1 for r in listed)
    assert storage.list_credentials("nobody") == []


# -- identities ---------------------------------------------------------------------------


def test_identity_link_is_first_writer_wins(storage: Storage) -> None:
    assert storage.get_identity("demo", "sub-1") is None
    assert storage.link_identity("demo", "sub-1", "alice") == "alice"
    assert storage.link_identity("demo", "sub-1", "bob") == "alice"
    assert storage.link_identity("demo", "sub-1", "alice") == "alice"
    assert storage.get_identity("demo", "sub-1") == "alice"


def test_identities_are_per_connection(storage: Storage) -> None:
    assert storage.link_identity("demo", "sub-1", "alice") == "alice"
    assert storage.link_identity("other", "sub-1", "bob") == "bob"
    assert storage.get_identity("other", "sub-1") == "bob"
    assert storage.get_identity("demo", "sub-2") is None


def test_unlink_identities(storage: Storage) -> None:
    storage.link_identity("demo", "sub-1", "alice")
    storage.link_identity("demo", "sub-2", "alice")
    storage.link_identity("demo", "sub-3", "bob")
    storage.link_identity("other", "sub-1", "alice")
    storage.unlink_identities("demo", "alice")
    assert storage.get_identity("demo", "sub-1") is None
    assert storage.get_identity("demo", "sub-2") is None
    assert storage.get_identity("demo", "sub-3") == "bob"
    assert storage.get_identity("other", "sub-1") == "alice"
    assert storage.link_identity("demo", "sub-1", "carol") == "carol"
    storage.unlink_identities("demo", "nobody")


def test_list_identities_of_nobody_is_empty(storage: Storage) -> None:
    assert storage.list_identities("demo", "alice") == []
    storage.link_identity("demo", "sub-1", "bob")
    assert storage.list_identities("demo", "alice") == []


def test_list_identities_sorted(storage: Storage) -> None:
    # sorted by code point, whatever the database's collation
    for subject in ("sub-b", "\u00e9", "Sub-c", "sub-a"):
        assert storage.link_identity("demo", subject, "alice") == "alice"
    assert storage.list_identities("demo", "alice") == ["Sub-c", "sub-a", "sub-b", "\u00e9"]


def test_list_identities_is_per_user_and_connection(storage: Storage) -> None:
    storage.link_identity("demo", "sub-2", "alice")
    storage.link_identity("demo", "sub-1", "alice")
    storage.link_identity("demo", "sub-3", "bob")
    storage.link_identity("other", "sub-4", "alice")
    assert storage.list_identities("demo", "alice") == ["sub-1", "sub-2"]
    assert storage.list_identities("demo", "bob") == ["sub-3"]
    assert storage.list_identities("other", "alice") == ["sub-4"]
    assert storage.list_identities("other", "bob") == []


def test_list_identities_after_unlink_is_empty(storage: Storage) -> None:
    storage.link_identity("demo", "sub-1", "alice")
    storage.link_identity("demo", "sub-2", "alice")
    storage.link_identity("other", "sub-1", "alice")
    storage.unlink_identities("demo", "alice")
    assert storage.list_identities("demo", "alice") == []
    assert storage.list_identities("other", "alice") == ["sub-1"]
    assert storage.link_identity("demo", "sub-1", "alice") == "alice"
    assert storage.list_identities("demo", "alice") == ["sub-1"]


def test_list_identities_skips_those_bound_to_another_user(storage: Storage) -> None:
    assert storage.link_identity("demo", "sub-1", "bob") == "bob"
    assert storage.link_identity("demo", "sub-1", "alice") == "bob"  # alice lost
    assert storage.link_identity("demo", "sub-2", "alice") == "alice"
    assert storage.list_identities("demo", "alice") == ["sub-2"]
    assert storage.list_identities("demo", "bob") == ["sub-1"]
    # unbound from bob, then bound to carol: still not alice's
    storage.unlink_identities("demo", "bob")
    assert storage.list_identities("demo", "alice") == ["sub-2"]
    assert storage.list_identities("demo", "bob") == []
    assert storage.link_identity("demo", "sub-1", "carol") == "carol"
    assert storage.list_identities("demo", "alice") == ["sub-2"]
    assert storage.list_identities("demo", "carol") == ["sub-1"]


# -- login states -------------------------------------------------------------------------


def test_login_state_is_single_use(storage: Storage) -> None:
    data = b"\x00sealed\xfftransaction"
    storage.put_login_state("h1", data, NOW + 600)
    assert storage.take_login_state("h1", NOW) == data
    assert storage.take_login_state("h1", NOW) is None


def test_login_state_expires(storage: Storage) -> None:
    storage.put_login_state("h1", b"one", NOW + 600)
    storage.put_login_state("h2", b"two", NOW + 600)
    assert storage.take_login_state("h1", NOW + 599.5) == b"one"
    assert storage.take_login_state("h2", NOW + 600) is None
    assert storage.take_login_state("h2", NOW) is None  # an expired state is gone for good


def test_login_states_are_independent(storage: Storage) -> None:
    assert storage.take_login_state("unknown", NOW) is None
    storage.put_login_state("h1", b"one", NOW + 600)
    storage.put_login_state("h2", b"two", NOW + 60)
    assert storage.take_login_state("h2", NOW) == b"two"
    assert storage.take_login_state("h1", NOW) == b"one"


# -- sessions -----------------------------------------------------------------------------


def test_session_lifecycle(storage: Storage) -> None:
    assert storage.get_session("s1", NOW) is None
    storage.create_session("s1", "alice", NOW + 3600)
    storage.create_session("s2", "bob", NOW + 3600)
    assert storage.get_session("s1", NOW) == "alice"
    assert storage.get_session("s1", NOW) == "alice"  # reading does not consume
    assert storage.get_session("s2", NOW) == "bob"
    storage.delete_session("s1")
    assert storage.get_session("s1", NOW) is None
    assert storage.get_session("s2", NOW) == "bob"
    storage.delete_session("s1")
    storage.delete_session("never-existed")


def test_session_expires(storage: Storage) -> None:
    storage.create_session("s1", "alice", NOW + 3600)
    assert storage.get_session("s1", NOW + 3599.9) == "alice"
    assert storage.get_session("s1", NOW + 3600) is None
    assert storage.get_session("s1", NOW + 7200) is None


def test_session_and_credential_in_one_read(storage: Storage) -> None:
    """The optional ``get_session_credential``: what ``get_session`` then ``get_credential``
    would answer, for the session's own user only."""
    if not isinstance(storage, SessionCredentialReads):
        pytest.skip(f"{storage!r} does not offer the optional get_session_credential")
    read = storage.get_session_credential
    assert read("s1", NOW, "demo") is None
    storage.create_session("s1", "alice", NOW + 3600)
    storage.create_session("s2", "bob", NOW + 3600)
    assert read("s1", NOW, "demo") == ("alice", None)
    assert storage.save_credential(record(), 0)
    assert storage.save_credential(record(CredentialKey("other", "alice"), "other-sealed"), 0)
    assert storage.save_credential(record(CredentialKey("demo", "alice", "work"), "work"), 0)
    assert storage.save_credential(record(CredentialKey("demo", "bob"), "bob-sealed"), 0)
    assert storage.save_credential(record(sealed="v1.kid.sealed-2"), 1)
    mine = storage.get_credential(ALICE)
    assert mine is not None
    assert mine.version == 2
    assert read("s1", NOW, "demo") == ("alice", mine)
    assert read("s1", NOW, "other") == (
        "alice",
        storage.get_credential(CredentialKey("other", "alice")),
    )
    assert read("s1", NOW, "demo", "work") == (
        "alice", storage.get_credential(CredentialKey("demo", "alice", "work"))
    )  # fmt: skip
    assert read("s1", NOW, "nowhere") == ("alice", None)
    bob = read("s2", NOW, "demo")
    assert bob is not None
    assert bob[1] is not None
    assert (bob[0], bob[1].key, bob[1].sealed) == (
        "bob",
        CredentialKey("demo", "bob"),
        "bob-sealed",
    )
    assert read("s1", NOW + 3600, "demo") is None  # the session expired: nothing else either
    storage.delete_session("s1")
    assert read("s1", NOW, "demo") is None


def test_setup_is_idempotent(storage: Storage) -> None:
    assert storage.save_credential(record(), 0)
    storage.create_session("s1", "alice", NOW + 60)
    storage.setup()
    storage.setup()
    assert storage.get_credential(ALICE) == replace(record(), version=1)
    assert storage.get_session("s1", NOW) == "alice"


# -- concurrency --------------------------------------------------------------------------

THREADS = 8
INCREMENTS = 15


def _increment(store: Storage, start: threading.Barrier, successes: list[int]) -> None:
    start.wait()
    done = 0
    while done < INCREMENTS:
        current = store.get_credential(ALICE)
        assert current is not None
        nxt = record(sealed=str(int(current.sealed) + 1))
        if store.save_credential(nxt, current.version):
            done += 1
    successes.append(done)


def test_concurrent_compare_and_set_loses_no_update(sync_storage: Storage) -> None:
    assert sync_storage.save_credential(record(sealed="0"), 0)
    start = threading.Barrier(THREADS)
    successes: list[int] = []
    threads = [
        threading.Thread(target=_increment, args=(sync_storage, start, successes))
        for _ in range(THREADS)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(successes) == THREADS, "a worker failed"
    final = sync_storage.get_credential(ALICE)
    assert final is not None
    writes = sum(successes)
    assert writes == THREADS * INCREMENTS
    assert final.version == 1 + writes
    assert int(final.sealed) == writes


def test_concurrent_inserts_have_one_winner(sync_storage: Storage) -> None:
    start = threading.Barrier(THREADS)
    results: list[bool] = []
    lock = threading.Lock()

    def insert(i: int) -> None:
        start.wait()
        won = sync_storage.save_credential(record(sealed=f"writer-{i}"), 0)
        with lock:
            results.append(won)

    threads = [threading.Thread(target=insert, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(results) == [False] * (THREADS - 1) + [True]
    stored = sync_storage.get_credential(ALICE)
    assert stored is not None
    assert stored.version == 1


async def test_async_concurrent_compare_and_set(async_storage: AsyncStorage) -> None:
    assert await async_storage.save_credential(record(sealed="0"), 0)
    conflicts = 0

    async def worker() -> None:
        nonlocal conflicts
        done = 0
        while done < INCREMENTS:
            current = await async_storage.get_credential(ALICE)
            assert current is not None
            await asyncio.sleep(0)  # let the others read the same version
            nxt = record(sealed=str(int(current.sealed) + 1))
            if await async_storage.save_credential(nxt, current.version):
                done += 1
            else:
                conflicts += 1

    await asyncio.gather(*(worker() for _ in range(THREADS)))
    final = await async_storage.get_credential(ALICE)
    assert final is not None
    assert final.version == 1 + THREADS * INCREMENTS
    assert int(final.sealed) == THREADS * INCREMENTS
    assert conflicts > 0  # the test did race


async def test_async_identity_race_has_one_owner(async_storage: AsyncStorage) -> None:
    owners = await asyncio.gather(
        *(async_storage.link_identity("demo", "sub-1", f"user-{i}") for i in range(THREADS))
    )
    assert len(set(owners)) == 1
    assert await async_storage.get_identity("demo", "sub-1") == owners[0]
    assert await async_storage.list_identities("demo", owners[0]) == ["sub-1"]
    for i in range(THREADS):
        if f"user-{i}" != owners[0]:
            assert await async_storage.list_identities("demo", f"user-{i}") == []


async def test_async_list_identities(async_storage: AsyncStorage) -> None:
    assert await async_storage.list_identities("demo", "alice") == []
    assert await async_storage.link_identity("demo", "sub-2", "alice") == "alice"
    assert await async_storage.link_identity("demo", "sub-1", "alice") == "alice"
    assert await async_storage.link_identity("demo", "sub-3", "bob") == "bob"
    assert await async_storage.link_identity("demo", "sub-3", "alice") == "bob"
    assert await async_storage.list_identities("demo", "alice") == ["sub-1", "sub-2"]
    await async_storage.unlink_identities("demo", "alice")
    assert await async_storage.list_identities("demo", "alice") == []
    assert await async_storage.list_identities("demo", "bob") == ["sub-3"]
