"""SQLite's lease batches run on the event loop's thread unless they would wait.

The async adapter tries each batch inline on a connection that never waits for SQLite's write
lock; when another connection holds it, the batch writes nothing (``WouldWait``) and runs in
a worker thread, which waits while the loop goes on. The checkpoints the inline connection
skips run in a worker thread. A real database file; the lock held by a plain ``sqlite3``
connection, as another process would hold it.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from oauth_vault_mw import AsyncVault
from oauth_vault_mw.core.errors import StorageUnavailable
from oauth_vault_mw.core.model import CredentialKey, StoredCredential
from oauth_vault_mw.jobs import sweep
from oauth_vault_mw.storage import (
    AsyncStorageAdapter,
    WouldWait,
    async_storage_from_url,
    sql,
)
from oauth_vault_mw.storage.sql import SQLStorage
from tests.support.rotating import (
    RotatingTokenEndpoint,
    assert_rotated_once_each,
    seed_expiring,
    settings,
)

KEY = CredentialKey("demo", "alice")
TTL = 30.0


def record(key: CredentialKey, version: int, sealed: str) -> StoredCredential:
    return StoredCredential(key, version, sealed, expires_at=1e10, scope="openid")


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "vault.db"


@pytest.fixture
def store(path: Path) -> Iterator[SQLStorage]:
    store = SQLStorage(f"sqlite:///{path}")
    store.setup()
    yield store
    store.close()


@pytest.fixture
def holder(path: Path) -> Iterator[sqlite3.Connection]:
    """Another connection, to take the write lock as another process's write would."""
    conn = sqlite3.connect(path, timeout=0, isolation_level=None)
    yield conn
    conn.close()


@pytest.fixture
async def adapter(path: Path) -> AsyncIterator[AsyncStorageAdapter]:
    storage = async_storage_from_url(f"sqlite:///{path}")
    assert isinstance(storage, AsyncStorageAdapter)
    await storage.setup()
    yield storage
    await storage.close()


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the functions the adapter sends to a worker thread, in order."""
    seen: list[str] = []
    real = asyncio.to_thread

    async def counted(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        seen.append(getattr(fn, "__name__", "?"))
        return await real(fn, *args, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", counted)  # what the adapter's _thread calls
    return seen


def test_a_batch_tried_while_another_connection_writes_writes_nothing(
    store: SQLStorage, holder: sqlite3.Connection
) -> None:
    assert store.save_credential(record(KEY, 1, "sealed-1"), 0)
    holder.execute("BEGIN IMMEDIATE")
    with pytest.raises(WouldWait):
        store.acquire_leases_reading_now([(KEY, "mine")], TTL, time.time())
    with pytest.raises(WouldWait):
        store.save_credentials_releasing_now([(record(KEY, 2, "sealed-2"), 1, "mine")])
    holder.execute("ROLLBACK")
    assert store.acquire_lease(KEY, "other", TTL, time.time())  # no lease was taken
    stored = store.get_credential(KEY)
    assert stored is not None
    assert (stored.version, stored.sealed) == (1, "sealed-1")  # nothing saved


def test_without_a_writer_the_batches_write_and_the_reads_see_it(store: SQLStorage) -> None:
    assert store.save_credential(record(KEY, 1, "sealed-1"), 0)
    assert store.get_credential(KEY) is not None  # kept by this thread's read cache
    [found] = store.acquire_leases_reading_now([(KEY, "mine")], TTL, time.time())
    assert found is not None
    assert found.sealed == "sealed-1"
    assert not store.acquire_lease(KEY, "other", TTL, time.time())  # the lease is held
    assert store.save_credentials_releasing_now([(record(KEY, 2, "sealed-2"), 1, "mine")]) == [True]
    stored = store.get_credential(KEY)
    assert stored is not None
    assert (stored.version, stored.sealed) == (2, "sealed-2")
    assert store.acquire_lease(KEY, "other", TTL, time.time())  # released with the save
    # the connection behind them never waits for a lock and leaves checkpoints to a thread
    assert store._leases is not None
    conn = store._leases._now._conn()
    assert conn.execute("PRAGMA busy_timeout").fetchone() == (0,)
    assert conn.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)


def test_a_save_of_a_new_record_is_left_to_the_waiting_path(store: SQLStorage) -> None:
    with pytest.raises(WouldWait):  # expected_version 0: an insert, not this batch's update
        store.save_credentials_releasing_now([(record(KEY, 1, "sealed-1"), 0, "mine")])
    assert store.get_credential(KEY) is None


def test_only_a_sqlite_file_writes_without_waiting() -> None:
    memory = SQLStorage("sqlite://")
    try:
        assert not memory.writes_without_waiting
        with pytest.raises(WouldWait):
            memory.acquire_leases_reading_now([(KEY, "mine")], TTL, time.time())
    finally:
        memory.close()


class FailingEnds(sqlite3.Connection):
    """A connection whose COMMIT and ROLLBACK fail (a disk error) while ``failing`` is set."""

    failing = False

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if FailingEnds.failing and sql in ("COMMIT", "ROLLBACK"):
            raise sqlite3.OperationalError("disk I/O error")
        return super().execute(sql, *args)


def test_a_connection_left_in_a_transaction_is_replaced(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_connect = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        return real_connect(*args, **kwargs, factory=FailingEnds)

    store = SQLStorage(f"sqlite:///{path}")
    try:
        store.setup()
        assert store.save_credential(record(KEY, 1, "sealed-1"), 0)
        monkeypatch.setattr(sqlite3, "connect", connect)  # what the storage module calls
        monkeypatch.setattr(FailingEnds, "failing", True)
        with pytest.raises(StorageUnavailable):  # COMMIT fails, then ROLLBACK too
            store.acquire_leases_reading_now([(KEY, "mine")], TTL, time.time())
        monkeypatch.setattr(FailingEnds, "failing", False)
        # the connection was closed, which rolled its transaction back: no lease was taken,
        # the write lock is free, and the next batch gets a connection of its own
        assert store.acquire_lease(KEY, "other", TTL, time.time())
        store.release_lease(KEY, "other")
        [found] = store.acquire_leases_reading_now([(KEY, "mine")], TTL, time.time())
        assert found is not None
    finally:
        store.close()


def test_lock_errors_are_told_from_other_errors() -> None:
    assert sql._busy(sqlite3.OperationalError("database is locked"))
    assert not sql._busy(sqlite3.OperationalError("no such table: credentials"))
    assert not sql._busy(sqlite3.DatabaseError("file is not a database"))


async def test_the_adapter_writes_inline_when_the_lock_is_free(
    adapter: AsyncStorageAdapter, hops: list[str]
) -> None:
    assert await adapter.save_credential(record(KEY, 1, "sealed-1"), 0)
    hops.clear()
    [found] = await adapter.acquire_leases_reading([(KEY, "mine")], TTL, time.time())
    assert found is not None
    assert await adapter.save_credentials_releasing([(record(KEY, 2, "sealed-2"), 1, "mine")]) == [
        True
    ]
    assert hops == []  # no worker thread
    stored = await adapter.get_credential(KEY)
    assert stored is not None
    assert stored.version == 2


async def test_a_held_lock_sends_the_batch_to_a_thread_and_the_loop_goes_on(
    adapter: AsyncStorageAdapter, holder: sqlite3.Connection, hops: list[str]
) -> None:
    assert await adapter.save_credential(record(KEY, 1, "sealed-1"), 0)
    hops.clear()
    holder.execute("BEGIN IMMEDIATE")
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.001)

    ticking = asyncio.create_task(ticker())
    leasing = asyncio.create_task(adapter.acquire_leases_reading([(KEY, "mine")], TTL, time.time()))
    while ticks < 20:  # the loop runs while the batch waits for the lock
        await asyncio.sleep(0.001)
    assert not leasing.done()
    holder.execute("ROLLBACK")
    [found] = await asyncio.wait_for(leasing, 10)
    ticking.cancel()
    assert found is not None
    assert hops == ["acquire_leases_reading"]
    holder.execute("BEGIN IMMEDIATE")
    saving = asyncio.create_task(
        adapter.save_credentials_releasing([(record(KEY, 2, "sealed-2"), 1, "mine")])
    )
    await asyncio.sleep(0.02)
    assert not saving.done()
    holder.execute("ROLLBACK")
    assert await asyncio.wait_for(saving, 10) == [True]
    assert hops == ["acquire_leases_reading", "save_credentials_releasing"]
    stored = await adapter.get_credential(KEY)
    assert stored is not None
    assert (stored.version, stored.sealed) == (2, "sealed-2")


async def test_the_checkpoints_inline_batches_skip_run_in_a_thread(
    adapter: AsyncStorageAdapter, path: Path, hops: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sql, "CHECKPOINT_ROWS", 20)
    keys = [CredentialKey("demo", f"user-{i}") for i in range(10)]
    for key in keys:
        assert await adapter.save_credential(record(key, 1, "sealed"), 0)
    await asyncio.to_thread(_checkpointed, path)
    hops.clear()
    for version in range(1, 41):  # 40 rounds: a lease and a save for each of 10 records
        taken = await adapter.acquire_leases_reading([(k, "mine") for k in keys], TTL, 0)
        assert all(r is not None for r in taken)
        saves = [(record(k, version + 1, f"sealed-{version}"), version, "mine") for k in keys]
        assert await adapter.save_credentials_releasing(saves) == [True] * 10
    # 800 rows written inline: a checkpoint every 20 rows (the batch of 10 that finds 20 or
    # more written since the last runs one first)
    assert hops == ["checkpoint"] * 39
    # each checkpoint emptied the WAL, so it restarted from its head: it holds the pages of
    # about 20 rows (3 pages here), not those of 800 (120 pages without the checkpoints)
    assert (path.parent / (path.name + "-wal")).stat().st_size < 40 * 4096


def _checkpointed(path: Path) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


async def test_a_failed_checkpoint_leaves_the_batch_to_write(
    adapter: AsyncStorageAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    sync = adapter.sync
    assert isinstance(sync, SQLStorage)
    monkeypatch.setattr(sync, "wants_checkpoint", lambda: True)

    def failing() -> None:
        raise StorageUnavailable("storage error: OperationalError")

    monkeypatch.setattr(sync, "checkpoint", failing)
    assert await adapter.save_credential(record(KEY, 1, "sealed-1"), 0)
    [found] = await adapter.acquire_leases_reading([(KEY, "mine")], TTL, time.time())
    assert found is not None


# -- the refresh path, the lock now free and now held ----------------------------------------


class Batches:
    """The vault's storage with its no-wait batches counted and, when ``every_other`` is
    set, every other call of each told to wait (``WouldWait``, nothing written, as under a
    held lock): a count, not a timing, decides the path."""

    def __init__(self, vault: AsyncVault, monkeypatch: pytest.MonkeyPatch, every_other: bool):
        sync = vault.storage.sync  # type: ignore[attr-defined]
        self.calls = {"leases": 0, "saves": 0}
        self.inline = {"leases": 0, "saves": 0}
        self.told_to_wait = {"leases": 0, "saves": 0}
        for name, method in (
            ("leases", "acquire_leases_reading_now"),
            ("saves", "save_credentials_releasing_now"),
        ):
            monkeypatch.setattr(
                sync, method, self._counted(name, getattr(sync, method), every_other)
            )

    def _counted(
        self, name: str, batch: Callable[..., list[Any]], every_other: bool
    ) -> Callable[..., list[Any]]:
        def run(*args: Any) -> list[Any]:
            self.calls[name] += 1
            if every_other and self.calls[name] % 2 == 0:
                self.told_to_wait[name] += 1
                raise WouldWait()
            found = batch(*args)  # WouldWait (the lock really taken): not counted
            self.inline[name] += 1
            return found

        return run


def batch_hops(hops: list[str]) -> list[str]:
    """The lease batches among the worker-thread calls."""
    return [hop for hop in hops if hop.endswith(("_releasing", "_reading"))]


async def swept(path: Path, monkeypatch: pytest.MonkeyPatch, every_other: bool) -> Batches:
    """A sweep of 60 rotating credentials on SQLite at ``path`` (each batch's path decided as
    :class:`Batches` says), checked to have refreshed each once with its rotated refresh
    token stored; the batch counts."""
    endpoint = RotatingTokenEndpoint(delay=0.002)
    vault = AsyncVault(
        settings(f"sqlite:///{path}"), http_transport=httpx.MockTransport(endpoint.handle)
    )
    await vault.startup()
    try:
        keys = await seed_expiring(vault, vault.storage, 60)
        batches = Batches(vault, monkeypatch, every_other)
        report = await sweep(vault, within=600, concurrency=8)
        assert (report.refreshed, report.failed) == (60, 0)
        await assert_rotated_once_each(vault, vault.storage, endpoint, keys)
        return batches
    finally:
        await vault.aclose()


async def test_a_sweep_with_the_lock_free_writes_every_batch_inline(
    path: Path, hops: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    batches = await swept(path, monkeypatch, every_other=False)
    assert batches.inline == batches.calls  # nothing else writes: no batch waited
    assert batches.calls["leases"] > 1
    assert batch_hops(hops) == []


async def test_rotated_tokens_are_all_stored_whichever_path_each_batch_takes(
    path: Path, hops: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    batches = await swept(path, monkeypatch, every_other=True)
    # every other batch of each kind ran in a worker thread, next to those run inline
    # (which may also have found a thread's write under way and followed it there)
    assert batches.told_to_wait["leases"] > 0
    assert batches.told_to_wait["saves"] > 0
    # each batch ran once: inline, or in a worker thread
    assert len(batch_hops(hops)) == sum(batches.calls.values()) - sum(batches.inline.values())
