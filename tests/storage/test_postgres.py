"""PostgreSQL specifics: a server going down and coming back, leases across pools, pool bounds.

The contract itself runs on PostgreSQL from conftest's BACKENDS; these tests need a real server
(``tests/support/postgres_server.py``), some a private one they can stop.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
import time
from collections.abc import Awaitable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from oauth_vault_mw import ConfigurationError, StorageUnavailable
from oauth_vault_mw.core.model import CredentialKey, StoredCredential
from oauth_vault_mw.storage import AsyncStorage, async_storage_from_url, storage_from_url
from oauth_vault_mw.storage.sql import SQLStorage
from oauth_vault_mw.storage.sql_async import AsyncSQLStorage
from tests.support.postgres_server import PostgresServer

from .test_contract import ALICE, NOW, record

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def private_server() -> Iterator[PostgresServer]:
    """A server of this module's own, so stopping it disturbs no other test."""
    with PostgresServer.start_new() as server:
        yield server


def _database(url: str) -> str:
    return url.rsplit("/", 1)[1]


def _assert_unavailable(caught: pytest.ExceptionInfo[StorageUnavailable]) -> None:
    assert caught.value.status_code == 503
    assert caught.value.description.startswith("storage error: ")
    assert "127.0.0.1" not in caught.value.description  # no URL, no driver message
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


# -- the server goes down and comes back --------------------------------------------------


def test_server_down_is_storage_unavailable_then_recovers(private_server: PostgresServer) -> None:
    store = SQLStorage(private_server.url(), pool_timeout=2)
    try:
        store.setup()
        assert store.save_credential(record(), 0)
        assert store.get_credential(ALICE) is not None  # a pooled connection now exists
        private_server.stop()
        calls = [
            lambda: store.get_credential(ALICE),
            lambda: store.save_credential(record(sealed="x"), 1),
            lambda: store.acquire_lease(ALICE, "a", 10, NOW),
            lambda: store.get_session("s1", NOW),
            store.setup,
        ]
        for call in calls:
            started = time.monotonic()
            with pytest.raises(StorageUnavailable) as caught:
                call()
            assert time.monotonic() - started < 5
            _assert_unavailable(caught)
        private_server.start()  # same port, same data
        stored = store.get_credential(ALICE)
        assert stored is not None
        assert stored.version == 1
        assert store.save_credential(record(sealed="after"), 1)
    finally:
        if not private_server.running:
            private_server.start()
        store.close()


async def test_async_server_down_is_storage_unavailable_then_recovers(
    private_server: PostgresServer,
) -> None:
    store = AsyncSQLStorage(private_server.url(), pool_timeout=2)
    try:
        await store.setup()
        await store.delete_credential(ALICE)
        assert await store.save_credential(record(), 0)
        private_server.stop()
        for call in (
            lambda: store.get_credential(ALICE),
            lambda: store.save_credential(record(sealed="x"), 1),
            lambda: store.take_login_state("h", NOW),
            store.setup,
        ):
            with pytest.raises(StorageUnavailable) as caught:
                await asyncio.wait_for(call(), 5)
            _assert_unavailable(caught)
        private_server.start()
        stored = await store.get_credential(ALICE)
        assert stored is not None
        assert stored.version == 1
        assert await store.save_credential(record(sealed="y"), 1)  # the write pool is back too
    finally:
        if not private_server.running:
            private_server.start()
        await store.close()
    unraisable: list[str] = []
    hook = sys.unraisablehook
    sys.unraisablehook = lambda failure: unraisable.append(repr(failure.exc_value))
    try:
        gc.collect()  # a connection lost with the server and left open warns when collected
    finally:
        sys.unraisablehook = hook
    assert unraisable == []


async def test_reads_beyond_the_read_connections_wait_for_one(
    private_server: PostgresServer,
) -> None:
    """More reads at once than read connections: each waits for one handed back, none takes
    SQLAlchemy's pool (kept for the writes), no connection is opened past the limit, and a
    read that gives up while waiting leaves nothing behind."""
    store = AsyncSQLStorage(private_server.url(), pool_size=4, pool_timeout=2)
    try:
        await store.setup()
        await store.delete_credential(ALICE)
        assert await store.save_credential(record(), 0)
        database = private_server.url().rsplit("/", 1)[1]
        before = private_server.connections(database)
        found = await asyncio.gather(*(store.get_credential(ALICE) for _ in range(200)))
        assert all(r is not None and r.version == 1 for r in found)
        reads = next(iter(store._reads.values()))
        assert reads.opened == 2  # pool_size 4: two for the reads
        assert len(reads.idle) == 2
        assert not reads.waiters
        assert private_server.connections(database) - before <= 2
        # Readers cancelled while waiting: the connections stay usable and accounted for.
        tasks = [asyncio.ensure_future(store.get_credential(ALICE)) for _ in range(20)]
        await asyncio.sleep(0)
        for task in tasks[5:]:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert reads.opened == 2
        assert len(reads.idle) == 2
        assert await store.get_credential(ALICE) is not None
    finally:
        await store.close()


async def test_reads_waiting_for_a_connection_go_together(
    private_server: PostgresServer,
) -> None:
    """Reads that arrive while every read connection is busy wait together and go in one
    round trip per statement: each gets its own row (or None), reads of one key share it,
    a reader cancelled while waiting leaves the others answered, and a failed round trip is
    StorageUnavailable for every reader in it."""
    store = AsyncSQLStorage(private_server.url(), pool_size=2, pool_timeout=2)  # 1 for reads
    try:
        await store.setup()
        users = [f"batch-{i}" for i in range(38)]
        users += ["NULL", 'we{ir}d, "q" \\ \u00fc']  # array syntax in the keys themselves
        for i, user in enumerate(users):
            key = CredentialKey("demo", user)
            await store.delete_credential(key)
            assert await store.save_credential(record(key, sealed=f"s{i}"), 0)
            await store.create_session(f"h-{user}", user, NOW + 3600)
            await store.put_record("batch", user, f"d{i}".encode())
        await store.create_session("h-nobody", "nobody", NOW + 3600)  # a user without one
        await store.create_session("h-old", users[0], NOW - 1)  # an expired session
        round_trips = 0
        run_on = store._on_read_connection

        async def counted(*args: Any) -> Any:
            nonlocal round_trips
            round_trips += 1
            return await run_on(*args)

        store._on_read_connection = counted  # type: ignore[method-assign,assignment]
        keys = [CredentialKey("demo", u) for u in users] + [CredentialKey("demo", "missing")]
        reads: list[Awaitable[Any]] = [store.get_credential(k) for k in keys * 3]  # 3 each
        reads += [store.get_session(f"h-{u}", NOW) for u in users]
        reads += [store.get_record("batch", u) for u in users]
        reads += [store.get_session_credential(f"h-{u}", NOW, "demo") for u in users]
        reads += [store.get_session_credential(h, NOW, "demo") for h in ("h-nobody", "h-old")]
        found = await asyncio.gather(*reads)
        assert round_trips <= 10, round_trips  # 245 reads: one round trip each without batching
        credentials = found[: len(keys) * 3]
        for n, got in enumerate(credentials):
            i = n % len(keys)
            if i == len(users):
                assert got is None
            else:
                assert got is not None
                assert (got.key, got.sealed, got.version) == (keys[i], f"s{i}", 1)
        rest = found[len(keys) * 3 :]
        assert rest[: len(users)] == users
        assert rest[len(users) : 2 * len(users)] == [f"d{i}".encode() for i in range(40)]
        joined = rest[2 * len(users) : 3 * len(users)]
        for i, (user, pair) in enumerate(zip(users, joined, strict=True)):
            assert pair is not None
            assert pair[0] == user
            assert pair[1] is not None
            assert pair[1].sealed == f"s{i}"
        assert rest[3 * len(users) :] == [("nobody", None), None]
        # Cancelled while waiting in a batch: the rest of the batch is answered.
        tasks = [asyncio.ensure_future(store.get_credential(k)) for k in keys]
        await asyncio.sleep(0)
        for task in tasks[::2]:
            task.cancel()
        done = await asyncio.gather(*tasks, return_exceptions=True)
        for n, got in enumerate(done):
            if n % 2 == 0:
                assert isinstance(got, asyncio.CancelledError)
            elif n < len(users):
                assert isinstance(got, StoredCredential)
                assert got.sealed == f"s{n}"
        # The database goes away with a batch waiting: every reader is told so.
        blocker = asyncio.ensure_future(store.get_credential(keys[0]))  # holds the connection
        waiting = [asyncio.ensure_future(store.get_credential(k)) for k in keys[1:10]]
        await asyncio.sleep(0)
        private_server.stop()
        failed = await asyncio.gather(blocker, *waiting, return_exceptions=True)
        assert all(isinstance(f, StorageUnavailable) for f in failed[1:]), failed
        private_server.start()
        assert await store.get_credential(keys[1]) is not None
        assert not store._reads[asyncio.get_running_loop()].tasks
    finally:
        if not private_server.running:
            private_server.start()
        await store.close()


async def test_closing_during_reads_leaves_no_connection_open(
    private_server: PostgresServer,
) -> None:
    """The storage closed while a read runs and a batch waits: the batch ends, the running
    read's connection is closed when it is done, and none is left open for the garbage
    collector (psycopg warns about those)."""
    store = AsyncSQLStorage(private_server.url(), pool_size=2, pool_timeout=2)  # 1 for reads
    await store.setup()
    await store.delete_credential(ALICE)
    assert await store.save_credential(record(), 0)
    reads = store._reads.get(asyncio.get_running_loop())
    tasks = [asyncio.ensure_future(store.get_credential(ALICE)) for _ in range(6)]
    for _ in range(10_000):
        await asyncio.sleep(0)
        reads = store._reads.get(asyncio.get_running_loop())
        if reads is not None and reads.owned and reads.tasks:
            break
    assert reads is not None
    assert reads.tasks  # a batch is waiting for the one read connection
    held = list(reads.owned)
    await store.close()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert not reads.owned
    assert not reads.tasks
    assert all(conn.closed for conn in held)


async def test_read_connections_survive_a_database_restart(
    private_server: PostgresServer,
) -> None:
    """The per-request reads keep their own connections: after a restart the first read on
    a dead one is retried on a fresh connection (no 503 for a database that is back), and
    while the database is down every read is StorageUnavailable."""
    store = AsyncSQLStorage(private_server.url(), pool_size=4, pool_timeout=2)
    try:
        await store.setup()
        await store.delete_credential(ALICE)
        assert await store.save_credential(record(), 0)
        found = await asyncio.gather(*(store.get_credential(ALICE) for _ in range(6)))
        assert all(r is not None for r in found)  # two read connections open now
        private_server.stop()
        private_server.start()
        again = await store.get_credential(ALICE)
        assert again is not None
        assert again.version == 1
        private_server.stop()
        with pytest.raises(StorageUnavailable) as caught:
            await asyncio.wait_for(store.get_credential(ALICE), 5)
        _assert_unavailable(caught)
        private_server.start()
        assert await store.get_credential(ALICE) is not None
    finally:
        if not private_server.running:
            private_server.start()
        await store.close()


def test_unreachable_server_at_startup(private_server: PostgresServer) -> None:
    """Nothing listens on the port: setup fails fast with StorageUnavailable, no trace."""
    url = private_server.url().replace(f":{private_server.port}/", ":9/")
    store = SQLStorage(url)
    try:
        with pytest.raises(StorageUnavailable) as caught:
            store.setup()
        _assert_unavailable(caught)
    finally:
        store.close()


# -- leases and compare-and-set across pools (as across processes) --------------------------


def _race_for_lease(stores: list[SQLStorage], key: CredentialKey) -> list[int]:
    """Every store tries to take the lease at once; returns the winners."""
    barrier = threading.Barrier(len(stores))
    wins: list[int] = []

    def race(n: int) -> None:
        barrier.wait()
        if stores[n].acquire_lease(key, f"owner-{n}", 10, NOW):
            wins.append(n)

    threads = [threading.Thread(target=race, args=(n,)) for n in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return wins


def test_concurrent_lease_across_pools_has_one_winner(postgres_store_url: str) -> None:
    """8 threads, each with its own pool (as 8 processes would): one winner per credential."""
    stores = [SQLStorage(postgres_store_url, pool_size=1) for _ in range(8)]
    try:
        stores[0].setup()
        keys = [CredentialKey("demo", f"user-{n}") for n in range(10)]
        for key in keys:
            assert stores[0].save_credential(record(key), 0)
        for key in keys:
            wins = _race_for_lease(stores, key)
            assert len(wins) == 1, key
            assert not stores[0].acquire_lease(key, "late", 10, NOW + 1)
            stores[wins[0]].release_lease(key, f"owner-{wins[0]}")
            assert stores[0].acquire_lease(key, "next", 10, NOW + 1)
    finally:
        for store in stores:
            store.close()


# -- the pool -------------------------------------------------------------------------------


def test_pool_never_exceeds_pool_size(
    fresh_postgres_url: str, postgres_server: PostgresServer
) -> None:
    store = SQLStorage(fresh_postgres_url, pool_size=3)
    database = _database(fresh_postgres_url)
    try:
        store.setup()
        assert store.save_credential(record(sealed="0"), 0)
        seen: list[int] = []
        stop = threading.Event()

        def watch() -> None:
            while not stop.is_set():
                seen.append(postgres_server.connections(database))
                time.sleep(0.005)

        def work(_n: int) -> None:
            for _ in range(40):
                current = store.get_credential(ALICE)
                assert current is not None
                store.save_credential(record(sealed=current.sealed), current.version)

        watcher = threading.Thread(target=watch)
        watcher.start()
        with ThreadPoolExecutor(12) as pool:
            list(pool.map(work, range(12)))
        stop.set()
        watcher.join()
        assert max(seen) <= 3
        assert max(seen) >= 2  # the threads did share the pool
    finally:
        store.close()
    assert postgres_server.connections_settle(database, expected=0) == 0  # close(): all back


def test_exhausted_pool_is_storage_unavailable_after_the_timeout(postgres_store_url: str) -> None:
    store = SQLStorage(postgres_store_url, pool_size=1, pool_timeout=0.3)
    try:
        store.setup()
        with store.engine.connect():  # the only connection is busy
            started = time.monotonic()
            with pytest.raises(StorageUnavailable) as caught:
                store.get_credential(ALICE)
            assert 0.25 < time.monotonic() - started < 3
            assert caught.value.description == "storage error: TimeoutError"
        assert store.get_credential(ALICE) is None  # free again
    finally:
        store.close()


async def test_async_pool_never_exceeds_pool_size(
    fresh_postgres_url: str, postgres_server: PostgresServer
) -> None:
    store = AsyncSQLStorage(fresh_postgres_url, pool_size=2)
    try:
        await store.setup()
        await store.save_credential(record(), 0)
        found = await asyncio.gather(*(store.get_credential(ALICE) for _ in range(50)))
        assert all(r is not None for r in found)
        assert postgres_server.connections(_database(fresh_postgres_url)) <= 2
        # one read connection of its own, one in SQLAlchemy's pool for the rest
        assert store.engine.sync_engine.pool.size() == 1  # type: ignore[attr-defined]
        assert store._read_limit == 1
        assert await store.save_credential(record(), 1)
        assert postgres_server.connections(_database(fresh_postgres_url)) <= 2
    finally:
        await store.close()


def test_pool_settings_from_the_url(postgres_url: str) -> None:
    store = SQLStorage(f"{postgres_url}?pool_size=4&pool_timeout=2.5")
    try:
        pool = store.engine.pool
        assert pool.size() == 4  # type: ignore[attr-defined]
        assert pool.timeout() == 2.5  # type: ignore[attr-defined]
        assert store.engine.url.query == {}  # not passed on to the driver
        store.setup()
    finally:
        store.close()
    explicit = SQLStorage(f"{postgres_url}?pool_size=4", pool_size=7)
    assert explicit.engine.pool.size() == 7  # type: ignore[attr-defined]
    explicit.close()
    for bad in ("pool_size=0", "pool_size=lots", "pool_timeout=-1"):
        with pytest.raises(ConfigurationError) as info:
            SQLStorage(f"{postgres_url}?{bad}")
        assert str(info.value).startswith("OAUTH_VAULT_STORAGE_URL: pool_")


async def test_prepare_threshold_from_the_url(postgres_url: str) -> None:
    """``?prepare_threshold=none`` reaches every connection the storages open (for PgBouncer
    before 1.21 in transaction mode); absent, psycopg's default (5) stays."""
    sync = SQLStorage(f"{postgres_url}?prepare_threshold=none")
    default = SQLStorage(postgres_url)
    native = AsyncSQLStorage(f"{postgres_url}?prepare_threshold=none&pool_size=2")
    try:
        assert sync.engine.url.query == {}  # not passed on to the driver as a string
        with sync.engine.connect() as conn:
            assert conn.connection.driver_connection.prepare_threshold is None  # type: ignore[union-attr]
        with default.engine.connect() as conn:
            assert conn.connection.driver_connection.prepare_threshold == 5  # type: ignore[union-attr]
        await native.setup()
        assert await native.get_credential(ALICE) is None  # on a read connection
        reads = native._reads[asyncio.get_running_loop()]
        assert [conn.prepare_threshold for conn, _at in reads.idle] == [None]
        async with native.engine.connect() as aconn:
            raw = await aconn.get_raw_connection()
            assert raw.driver_connection.prepare_threshold is None  # type: ignore[union-attr]
    finally:
        sync.close()
        default.close()
        await native.close()
    counted = SQLStorage(f"{postgres_url}?prepare_threshold=0")
    with counted.engine.connect() as conn:
        assert conn.connection.driver_connection.prepare_threshold == 0  # type: ignore[union-attr]
    counted.close()
    with pytest.raises(ConfigurationError, match="prepare_threshold must be none or a whole"):
        SQLStorage(f"{postgres_url}?prepare_threshold=sometimes")


# -- selection --------------------------------------------------------------------------------


async def test_urls_pick_the_postgres_backends(postgres_url: str) -> None:
    sync = storage_from_url(postgres_url)
    assert isinstance(sync, SQLStorage)
    assert sync.engine.dialect.driver == "psycopg"
    sync.close()
    store = async_storage_from_url(postgres_url.replace("vault@", "vault:hunter2@"))
    assert isinstance(store, AsyncSQLStorage)
    assert isinstance(store, AsyncStorage)
    assert store.shared_across_processes is True
    assert repr(store) == "AsyncSQLStorage(dialect='postgresql')"
    await store.close()
    with pytest.raises(ConfigurationError):
        AsyncSQLStorage("sqlite:///x.db")


def test_async_storage_serves_several_event_loops(
    fresh_postgres_url: str, postgres_server: PostgresServer
) -> None:
    """Test clients may run each request on a new loop: each loop gets its own pool, and the
    pools of loops that have closed are closed, not leaked."""
    store = AsyncSQLStorage(fresh_postgres_url, pool_size=3)

    async def use() -> int:
        await store.setup()
        await asyncio.gather(*(store.get_credential(ALICE) for _ in range(10)))
        assert await store.save_credential(record(), 0) in (True, False)
        return postgres_server.connections(_database(fresh_postgres_url))

    unraisable: list[str] = []
    hook = sys.unraisablehook
    sys.unraisablehook = lambda failure: unraisable.append(repr(failure.exc_value))
    try:
        for _ in range(4):
            assert asyncio.run(use()) <= 3
        asyncio.run(store.close())
        gc.collect()  # a connection left open warns when collected: here, not in a later test
    finally:
        sys.unraisablehook = hook
    assert unraisable == []
    assert postgres_server.connections_settle(_database(fresh_postgres_url), expected=0) == 0
