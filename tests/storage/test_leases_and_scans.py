"""The contract's refresh leases and paged scans, on every backend (see conftest)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import cast

import pytest

from oauth_vault_mw.core.model import REAUTHENTICATION_REQUIRED, CredentialKey, StoredCredential
from oauth_vault_mw.storage import Storage

from .test_contract import ALICE, NOW, record


def test_lease_is_exclusive_until_released(storage: Storage) -> None:
    assert storage.save_credential(record(), 0)
    assert storage.acquire_lease(ALICE, "a", 10, NOW)
    assert not storage.acquire_lease(ALICE, "b", 10, NOW + 1)
    storage.release_lease(ALICE, "b")  # not b's to release
    assert not storage.acquire_lease(ALICE, "b", 10, NOW + 2)
    storage.release_lease(ALICE, "a")
    assert storage.acquire_lease(ALICE, "b", 10, NOW + 3)


def test_expired_lease_can_be_taken_over(storage: Storage) -> None:
    """A holder killed mid-refresh blocks others for at most the lease time."""
    assert storage.save_credential(record(), 0)
    assert storage.acquire_lease(ALICE, "dead", 10, NOW)
    assert not storage.acquire_lease(ALICE, "b", 10, NOW + 9.9)
    assert storage.acquire_lease(ALICE, "b", 10, NOW + 10.1)
    storage.release_lease(ALICE, "dead")  # the late holder cannot release b's lease
    assert not storage.acquire_lease(ALICE, "c", 10, NOW + 11)


def test_lease_survives_writes_and_needs_a_credential(storage: Storage) -> None:
    assert not storage.acquire_lease(ALICE, "a", 10, NOW)  # nothing to refresh
    assert storage.save_credential(record(), 0)
    assert storage.acquire_lease(ALICE, "a", 10, NOW)
    assert storage.save_credential(record(sealed="v1.kid.sealed-2"), 1)
    assert not storage.acquire_lease(ALICE, "b", 10, NOW + 1)


def _save_releasing(storage: Storage) -> Callable[[StoredCredential, int, str], bool]:
    save = getattr(storage, "save_credential_releasing", None)
    if save is None:
        pytest.skip(f"{storage!r} does not offer the optional save_credential_releasing")
    return cast("Callable[[StoredCredential, int, str], bool]", save)


def test_save_releasing_writes_and_lets_go_of_the_lease(storage: Storage) -> None:
    """A refresh's write of new tokens and the release of its lease, in one step."""
    save = _save_releasing(storage)
    assert save(record(), 0, "a")  # a new record: nothing leased yet
    assert storage.acquire_lease(ALICE, "a", 10, NOW)
    assert save(record(sealed="v1.kid.sealed-2"), 1, "a")
    stored = storage.get_credential(ALICE)
    assert stored is not None
    assert (stored.version, stored.sealed) == (2, "v1.kid.sealed-2")
    assert storage.acquire_lease(ALICE, "b", 10, NOW + 1)  # a's lease is gone


def test_save_releasing_never_releases_another_owners_lease(storage: Storage) -> None:
    save = _save_releasing(storage)
    assert storage.save_credential(record(), 0)
    assert storage.acquire_lease(ALICE, "a", 10, NOW)
    assert save(record(sealed="v1.kid.sealed-2"), 1, "b")  # written, a keeps its lease
    assert not storage.acquire_lease(ALICE, "c", 10, NOW + 1)
    storage.release_lease(ALICE, "a")
    assert storage.acquire_lease(ALICE, "c", 10, NOW + 2)


def test_save_releasing_on_a_version_conflict_keeps_the_lease(storage: Storage) -> None:
    save = _save_releasing(storage)
    assert storage.save_credential(record(), 0)
    assert storage.acquire_lease(ALICE, "a", 10, NOW)
    assert storage.save_credential(record(sealed="v1.kid.login"), 1)  # a new login meanwhile
    assert not save(record(sealed="v1.kid.refreshed"), 1, "a")
    stored = storage.get_credential(ALICE)
    assert stored is not None
    assert (stored.version, stored.sealed) == (2, "v1.kid.login")
    assert not storage.acquire_lease(ALICE, "b", 10, NOW + 1)  # still a's, to release
    storage.release_lease(ALICE, "a")
    assert storage.acquire_lease(ALICE, "b", 10, NOW + 2)


def test_leases_are_per_credential(storage: Storage) -> None:
    bob = CredentialKey("demo", "bob")
    assert storage.save_credential(record(), 0)
    assert storage.save_credential(record(bob), 0)
    assert storage.acquire_lease(ALICE, "a", 10, NOW)
    assert storage.acquire_lease(bob, "b", 10, NOW)


def test_concurrent_lease_has_one_winner(sync_storage: Storage) -> None:
    assert sync_storage.save_credential(record(), 0)
    barrier = threading.Barrier(8)
    wins: list[str] = []

    def race(owner: str) -> None:
        barrier.wait()
        if sync_storage.acquire_lease(ALICE, owner, 10, NOW):
            wins.append(owner)

    threads = [threading.Thread(target=race, args=(f"o{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1


def test_scan_pages_in_key_order(storage: Storage) -> None:
    keys = [CredentialKey(c, u) for c in ("a", "b") for u in ("u1", "u2", "u3")]
    for key in reversed(keys):
        assert storage.save_credential(record(key), 0)
    seen: list[CredentialKey] = []
    after: CredentialKey | None = None
    while True:
        page = storage.scan_credentials(after=after, limit=4)
        if not page:
            break
        seen.extend(r.key for r in page)
        after = page[-1].key
    assert seen == sorted(keys)


def test_scan_expiring_only_active_with_expiry(storage: Storage) -> None:
    soon = CredentialKey("demo", "soon")
    later = CredentialKey("demo", "later")
    never = CredentialKey("demo", "never")
    marked = CredentialKey("demo", "marked")
    storage.save_credential(record(soon, expires_at=NOW + 60), 0)
    storage.save_credential(record(later, expires_at=NOW + 6000), 0)
    storage.save_credential(record(never, expires_at=None), 0)
    storage.save_credential(record(marked, expires_at=NOW + 1, status=REAUTHENTICATION_REQUIRED), 0)
    found = storage.scan_credentials(after=None, limit=100, expiring_before=NOW + 600)
    assert [r.key for r in found] == [soon]
