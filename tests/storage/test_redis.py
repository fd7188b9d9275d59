"""What the contract tests cannot see of the Redis backend: its keys, its failure modes, its
expiries, and that the async twin runs on ``redis.asyncio`` with no worker thread."""

from __future__ import annotations

import asyncio
import importlib
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.crc import key_slot

from oauth_vault_mw.core.crypto import Sealer
from oauth_vault_mw.core.errors import ConfigurationError, StorageUnavailable
from oauth_vault_mw.core.model import (
    REAUTHENTICATION_REQUIRED,
    CredentialKey,
    StoredCredential,
    TokenSet,
)
from oauth_vault_mw.storage import (
    AsyncStorageAdapter,
    async_storage_from_url,
    storage_from_url,
)
from oauth_vault_mw.storage._redis_ops import Eval, merge_reads
from oauth_vault_mw.storage.redis import READS_IN_FLIGHT, AsyncRedisStorage, RedisStorage
from tests.support.redis_server import RedisServer

from .test_contract import ALICE, NOW, record

pytestmark = pytest.mark.integration

ODD = CredentialKey("demo}", "we{ir}d", "%7D}{")  # ids are validated upstream; be safe anyway


@pytest.fixture
def store(redis_store_url: str) -> Iterator[RedisStorage]:
    storage = RedisStorage(redis_store_url)
    storage.setup()
    yield storage
    storage.close()


@pytest.fixture
async def astore(redis_store_url: str) -> AsyncIterator[AsyncRedisStorage]:
    storage = AsyncRedisStorage(redis_store_url)
    await storage.setup()
    yield storage
    await storage.close()


@pytest.fixture
def raw(redis_store_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_store_url)
    yield client
    client.close()


def _keys(raw: redis.Redis) -> list[bytes]:
    return sorted(bytes(k) for k in raw.scan_iter())


def _slot_tag(key: bytes) -> bytes:
    start = key.index(b"{")
    return key[start + 1 : key.index(b"}", start + 1)]


# -- keys -------------------------------------------------------------------------------------


def test_record_and_lease_share_one_hash_tag(store: RedisStorage, raw: redis.Redis) -> None:
    others = [CredentialKey("demo", f"user-{i}") for i in range(8)]
    for key in [ALICE, ODD, *others]:
        assert store.save_credential(record(key), 0)
        assert store.acquire_lease(key, "me", 10, NOW)
        cred, lease = store._ops.record(key), store._ops.lease(key)
        assert raw.exists(cred, lease) == 2
        assert key_slot(cred) == key_slot(lease)
        assert _slot_tag(cred) == _slot_tag(lease) == cred[cred.index(b"{") + 1 : -1]
    # the tag is the whole credential key, not a constant: credentials spread over slots
    assert len({key_slot(store._ops.record(k)) for k in others}) > 4
    assert raw.hgetall(store._ops.record(ALICE))[b"sealed"] == b"v1.kid.sealed-1"
    assert _keys(raw) == sorted(
        [b"oauth_vault:schema_version", b"oauth_vault:credentials", b"oauth_vault:expiring"]
        + [b"oauth_vault:user:{" + _slot_tag(store._ops.user(k.user_id)) + b"}"
           for k in [ALICE, ODD, *others]]
        + [store._ops.record(k) for k in [ALICE, ODD, *others]]
        + [store._ops.lease(k) for k in [ALICE, ODD, *others]]
    )  # fmt: skip


def test_odd_ids_round_trip(store: RedisStorage) -> None:
    twin = CredentialKey("demo}", "we{ir}d", "%7D%7D")
    for key in (ODD, twin, CredentialKey("a\x00b", "\x01"), CredentialKey("a", "\x00b")):
        assert store.save_credential(record(key), 0)
        found = store.get_credential(key)
        assert found is not None
        assert found.key == key
    assert [r.key for r in store.list_credentials("we{ir}d")] == sorted([ODD, twin])
    scanned = store.scan_credentials(after=None, limit=10)
    assert [r.key for r in scanned] == sorted(r.key for r in scanned)
    assert len(scanned) == 4


async def test_session_credential_script_finds_odd_ids(
    store: RedisStorage, astore: AsyncRedisStorage
) -> None:
    """The one-round-trip read escapes the user id in Lua as the key builders do in Python:
    every odd id finds its own record, never a twin's, on both clients."""
    ids = ["we{ir}d", "%7D", "}", "a\x00b", "\x01", "\x01\x02", "x\x01\x01y", "é", "a b"]
    for n, user in enumerate(ids):
        for connection, account in (("demo}", "%7D}{"), ("a\x00b", "default")):
            key = CredentialKey(connection, user, account)
            await astore.delete_credential(key)
            assert await astore.save_credential(record(key, sealed=f"s{n}"), 0)
        await astore.create_session(f"h{n}", user, NOW + 60)
    for n, user in enumerate(ids):
        for connection, account in (("demo}", "%7D}{"), ("a\x00b", "default")):
            for found in (
                store.get_session_credential(f"h{n}", NOW, connection, account),
                await astore.get_session_credential(f"h{n}", NOW, connection, account),
            ):
                assert found is not None
                assert found[0] == user
                assert found[1] is not None
                assert (found[1].key, found[1].sealed) == (
                    CredentialKey(connection, user, account),
                    f"s{n}",
                )
        assert store.get_session_credential(f"h{n}", NOW, "demo}", "other") == (user, None)
        assert await astore.get_session_credential(f"h{n}", NOW + 61, "demo}") is None


async def test_reads_beyond_those_in_flight_go_as_one_pipeline(
    astore: AsyncRedisStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Per-request reads past READS_IN_FLIGHT wait together and go as one pipeline: each
    gets its own reply, identical reads share one, a reader cancelled while waiting leaves
    the others answered, and a failed pipeline is StorageUnavailable for each reader."""
    keys = [CredentialKey("demo", f"pipe-{i}") for i in range(30)]
    for i, key in enumerate(keys):
        await astore.delete_credential(key)
        assert await astore.save_credential(record(key, sealed=f"s{i}"), 0)
        await astore.create_session(f"ph{i}", key.user_id, NOW + 60)
    client = astore._client()
    sent: list[int] = []
    execute = client.execute

    async def counted(batch: list[Any]) -> list[Any]:
        sent.append(len(batch))
        return await execute(batch)

    monkeypatch.setattr(client.reads, "execute", counted)
    reads: list[Any] = [astore.get_credential(k) for k in keys * 2]
    reads += [astore.get_session_credential(f"ph{i}", NOW, "demo") for i in range(30)]
    reads += [astore.get_session(f"ph{i}", NOW) for i in range(30)]
    reads += [astore.get_credential(CredentialKey("demo", "nobody"))]
    found = await asyncio.gather(*reads)
    assert len(sent) < 20, sent  # 121 reads; READS_IN_FLIGHT alone, the rest pipelined
    assert max(sent) > 1
    for n, got in enumerate(found[:60]):
        assert got is not None
        assert (got.key, got.sealed) == (keys[n % 30], f"s{n % 30}")
    for i, pair in enumerate(found[60:90]):
        assert pair is not None
        assert pair[0] == keys[i].user_id
        assert pair[1] is not None
        assert pair[1].sealed == f"s{i}"
    assert found[90:120] == [k.user_id for k in keys]
    assert found[120] is None
    tasks = [asyncio.ensure_future(astore.get_credential(k)) for k in keys]
    await asyncio.sleep(0)
    for task in tasks[5::2]:
        task.cancel()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    for n, got in enumerate(done):
        if n >= 5 and n % 2:
            assert isinstance(got, asyncio.CancelledError)
        else:
            assert got is not None
            assert getattr(got, "sealed", None) == f"s{n}"

    async def failing(batch: list[Any]) -> list[Any]:
        if len(batch) > 1:
            raise redis.exceptions.ConnectionError("gone")
        return await execute(batch)

    monkeypatch.setattr(client.reads, "execute", failing)
    outcome = await asyncio.gather(
        *(astore.get_credential(k) for k in keys), return_exceptions=True
    )
    alone = outcome[:READS_IN_FLIGHT]
    assert all(o is not None and not isinstance(o, BaseException) for o in alone)
    assert all(isinstance(o, StorageUnavailable) for o in outcome[READS_IN_FLIGHT:]), outcome
    for _ in range(3):
        await asyncio.sleep(0)  # the tasks' done callbacks
    assert not client.reads.tasks
    assert client.reads.in_flight == 0


def test_prefixes_keep_stores_apart(redis_store_url: str, raw: redis.Redis) -> None:
    one = RedisStorage(redis_store_url, prefix="app1")
    two = storage_from_url(redis_store_url + "?prefix=app2")
    try:
        assert one.save_credential(record(), 0)
        assert two.get_credential(ALICE) is None
        assert two.scan_credentials(after=None, limit=10) == []
        assert two.save_credential(record(sealed="other"), 0)
        assert {k.split(b":")[0] for k in _keys(raw)} == {b"app1", b"app2"}
    finally:
        one.close()
        two.close()
    with pytest.raises(ConfigurationError, match="prefix"):
        RedisStorage(redis_store_url, prefix="a{b}")


def test_setup_refuses_a_newer_schema(store: RedisStorage, raw: redis.Redis) -> None:
    raw.set("oauth_vault:schema_version", 99)
    with pytest.raises(ConfigurationError, match="newer"):
        store.setup()


# -- indexes ----------------------------------------------------------------------------------


def test_indexes_follow_writes(store: RedisStorage, raw: redis.Redis) -> None:
    ops, member = store._ops, b"demo\x00alice\x00default"
    assert store.save_credential(record(expires_at=NOW + 60), 0)
    assert raw.zscore(ops.expiring, member) == NOW + 60
    assert store.save_credential(record(expires_at=NOW + 600), 1)
    assert raw.zscore(ops.expiring, member) == NOW + 600
    assert store.save_credential(record(status=REAUTHENTICATION_REQUIRED), 2)
    assert raw.zscore(ops.expiring, member) is None
    assert store.save_credential(record(expires_at=None), 3)
    assert raw.zscore(ops.expiring, member) is None
    assert raw.smembers(ops.user("alice")) == {member}
    assert not store.save_credential(record(expires_at=NOW), 1)  # lost: indexes untouched
    assert raw.zscore(ops.expiring, member) is None
    assert store.delete_credential(ALICE)
    assert raw.zcard(ops.all) == raw.zcard(ops.expiring) == raw.scard(ops.user("alice")) == 0


def test_stale_index_entries_are_skipped(store: RedisStorage, raw: redis.Redis) -> None:
    keys = [CredentialKey("demo", "alice", f"acc{i}") for i in range(5)]
    for key in keys:
        assert store.save_credential(record(key, expires_at=NOW + 60), 0)
    raw.delete(store._ops.record(keys[1]), store._ops.record(keys[2]))  # a crash mid-delete
    alive = [keys[0], keys[3], keys[4]]
    assert [r.key for r in store.list_credentials("alice")] == alive
    assert [r.key for r in store.scan_credentials(after=None, limit=2)] == alive[:2]
    assert [r.key for r in store.scan_credentials(after=keys[0], limit=2)] == alive[1:]
    soon = store.scan_credentials(after=None, limit=2, expiring_before=NOW + 61)
    assert [r.key for r in soon] == alive[:2]
    assert not store.delete_credential(keys[1])  # a delete cleans the stale entries
    assert raw.zrangebylex(store._ops.all, "-", "+") == [
        f"demo\x00alice\x00acc{i}".encode() for i in (0, 2, 3, 4)
    ]


def test_stale_identity_links_are_skipped(store: RedisStorage, raw: redis.Redis) -> None:
    assert store.link_identity("demo", "sub-1", "alice") == "alice"
    assert store.link_identity("demo", "sub-2", "alice") == "alice"
    links = store._ops.links("demo", "alice")
    raw.sadd(links, "sub-0", "sub-3")  # a crash before the identity was bound
    raw.delete(store._ops.identity("demo", "sub-2"))  # removed behind the index's back
    raw.set(store._ops.identity("demo", "sub-3"), "bob")  # bound to someone else
    assert store.list_identities("demo", "alice") == ["sub-1"]
    assert raw.scard(links) == 4  # a read: the index is left as it is


def test_expiring_scan_pages_in_key_order(store: RedisStorage) -> None:
    keys = [CredentialKey("demo", f"u{i:02}") for i in range(12)]
    for i, key in enumerate(keys):
        expires = NOW + (60 if i % 3 else 6000)  # every third one expires later
        assert store.save_credential(record(key, expires_at=expires - i), 0)
    seen: list[CredentialKey] = []
    after: CredentialKey | None = None
    while page := store.scan_credentials(after=after, limit=3, expiring_before=NOW + 600):
        seen += [r.key for r in page]
        after = page[-1].key
    assert seen == [k for i, k in enumerate(keys) if i % 3]


# -- values -----------------------------------------------------------------------------------


def test_only_sealed_tokens_reach_redis(store: RedisStorage, raw: redis.Redis) -> None:
    sealer = Sealer([b"k" * 32])
    tokens = TokenSet("ACCESS-plaintext", "REFRESH-plaintext", expires_at=NOW + 60)
    envelope = sealer.seal(tokens.to_bytes(), ALICE.aad())
    assert store.save_credential(record(sealed=envelope), 0)
    dump = b""
    for name in _keys(raw):
        kind = raw.type(name)
        if kind == b"hash":
            fields: dict[bytes, bytes] = raw.hgetall(name)  # type: ignore[assignment]
            dump += b"".join(k + v for k, v in fields.items())
        elif kind == b"string":
            value: bytes = raw.get(name)  # type: ignore[assignment]
            dump += value
    assert envelope.encode() in dump
    assert b"plaintext" not in dump
    found = store.get_credential(ALICE)
    assert found is not None
    assert TokenSet.from_bytes(sealer.unseal(found.sealed, ALICE.aad())) == tokens


def test_states_and_sessions_expire_in_redis_too(store: RedisStorage, raw: redis.Redis) -> None:
    store.put_login_state("h1", b"data", time.time() + 600)
    store.create_session("s1", "alice", time.time() + 3600)
    assert 600_000 < raw.pttl("oauth_vault:state:h1") <= 660_000
    assert 3_600_000 < raw.pttl("oauth_vault:session:s1") <= 3_660_000
    assert store.take_login_state("h1", time.time()) == b"data"
    assert not raw.exists("oauth_vault:state:h1")


# -- leases -----------------------------------------------------------------------------------


def test_lease_expires_in_redis_time(store: RedisStorage, raw: redis.Redis) -> None:
    """A holder that dies frees the lease after ``ttl`` even if every caller's clock lags."""
    assert store.save_credential(record(), 0)
    assert store.acquire_lease(ALICE, "dead", 0.2, NOW)
    assert 0 < raw.pttl(store._ops.lease(ALICE)) <= 200
    assert not store.acquire_lease(ALICE, "b", 0.2, NOW)  # same `now`: still held
    time.sleep(0.3)
    assert store.acquire_lease(ALICE, "b", 10, NOW)
    assert raw.get(store._ops.lease(ALICE)) == b"1700000010.0 b"


def test_delete_drops_the_lease(store: RedisStorage, raw: redis.Redis) -> None:
    assert store.save_credential(record(), 0)
    assert store.acquire_lease(ALICE, "a", 10, NOW)
    assert store.delete_credential(ALICE)
    assert not raw.exists(store._ops.lease(ALICE))
    assert store.save_credential(record(), 0)
    assert store.acquire_lease(ALICE, "b", 10, NOW)


async def test_async_lease_race_has_one_winner(astore: AsyncRedisStorage) -> None:
    assert await astore.save_credential(record(), 0)
    wins = await asyncio.gather(*(astore.acquire_lease(ALICE, f"o{i}", 10, NOW) for i in range(8)))
    assert wins.count(True) == 1


# -- failures ---------------------------------------------------------------------------------


@pytest.fixture
def private_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A server of this test's own, to stop, freeze and restart."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


def test_server_down_is_storage_unavailable(private_server: RedisServer) -> None:
    store = RedisStorage(private_server.url)
    try:
        store.setup()
        assert store.save_credential(record(), 0)
        private_server.stop()
        for call in (
            lambda: store.get_credential(ALICE),
            lambda: store.save_credential(record(), 1),
        ):
            started = time.monotonic()
            with pytest.raises(StorageUnavailable) as caught:
                call()
            assert time.monotonic() - started < 1
            assert str(caught.value) == "storage error: ConnectionError"
            assert caught.value.__cause__ is None
            assert caught.value.__suppress_context__
        private_server.start()  # same port, empty
        assert store.get_credential(ALICE) is None
        assert store.save_credential(record(), 0)
        assert store.get_credential(ALICE) is not None
    finally:
        store.close()


async def test_async_server_down_is_storage_unavailable(private_server: RedisServer) -> None:
    store = AsyncRedisStorage(private_server.url)
    try:
        await store.setup()
        assert await store.save_credential(record(), 0)
        private_server.stop()
        with pytest.raises(StorageUnavailable, match=r"^storage error: ConnectionError$"):
            await store.get_credential(ALICE)
        private_server.start()
        assert await store.get_credential(ALICE) is None
        assert await store.save_credential(record(), 0)
    finally:
        await store.close()


def test_hung_server_times_out(private_server: RedisServer) -> None:
    store = RedisStorage(private_server.url + "?socket_timeout=0.3")
    try:
        store.setup()
        private_server.pause()
        started = time.monotonic()
        with pytest.raises(StorageUnavailable, match=r"^storage error: TimeoutError$"):
            store.get_credential(ALICE)
        assert time.monotonic() - started < 1.5
        private_server.resume()
        assert store.get_credential(ALICE) is None
    finally:
        private_server.resume()
        store.close()


def test_merge_reads_groups_per_key_script_calls_by_their_arguments() -> None:
    """Calls of a per-key script with the same ARGV go as one call over their keys (each
    key once); other commands as they are; each command gets back its own reply."""
    a1 = Eval("session_credential", (b"s1",), (b"x",))
    a2 = Eval("session_credential", (b"s2",), (b"x",))
    b1 = Eval("session_credential", (b"s1",), (b"y",))
    get = ("GET", b"k")
    other = Eval("append", (b"e", b"q"), (b"1",))
    sent, split = merge_reads([a1, get, b1, a2, other])
    assert sent == [
        Eval("session_credential", (b"s1", b"s2"), (b"x",)),
        get,
        Eval("session_credential", (b"s1",), (b"y",)),
        other,
    ]
    replies = split([["one", "two"], b"v", ["three"], 7])
    assert replies == [["one"], b"v", ["three"], ["two"], 7]


async def test_async_reads_pipeline_on_one_connection_and_stay_in_step(
    astore: AsyncRedisStorage, raw: redis.Redis
) -> None:
    """The per-request reads share one connection of their own, written back to back: every
    reader gets its own reply, and readers cancelled while waiting leave the connection in
    step (their replies are read and dropped)."""
    keys = [CredentialKey("demo", f"lane-{i}") for i in range(40)]
    for i, key in enumerate(keys):
        await astore.delete_credential(key)
        assert await astore.save_credential(record(key, sealed=f"s{i}"), 0)
        await astore.create_session(f"lh{i}", key.user_id, NOW + 60)
    before = len(raw.client_list())
    for _ in range(3):
        tasks: list[asyncio.Future[Any]] = [
            asyncio.ensure_future(astore.get_credential(k)) for k in keys
        ]
        tasks += [
            asyncio.ensure_future(astore.get_session_credential(f"lh{i}", NOW, "demo"))
            for i in range(40)
        ]
        await asyncio.sleep(0)
        for task in tasks[3::4]:
            task.cancel()
        done = await asyncio.gather(*tasks, return_exceptions=True)
        for n, got in enumerate(done):
            if n % 4 == 3:
                assert isinstance(got, asyncio.CancelledError)
            elif n < 40:
                assert isinstance(got, StoredCredential)
                assert (got.key, got.sealed) == (keys[n], f"s{n}")
            else:
                assert isinstance(got, tuple)
                assert got[0] == keys[n - 40].user_id
                assert got[1] is not None
                assert got[1].sealed == f"s{n - 40}"
    assert len(raw.client_list()) <= before + 1  # the reads' own connection


async def test_async_reads_time_out_on_a_hung_server(private_server: RedisServer) -> None:
    """A server that stops answering fails the waiting reads with a timeout (the lane's
    watchdog: within two socket timeouts), and the reads work again once it answers."""
    store = AsyncRedisStorage(private_server.url + "?socket_timeout=0.3")
    try:
        await store.setup()
        assert await store.get_credential(ALICE) is None  # the lane is connected
        private_server.pause()
        started = time.monotonic()
        outcome = await asyncio.gather(
            *(store.get_credential(ALICE) for _ in range(5)), return_exceptions=True
        )
        assert time.monotonic() - started < 1.5
        for err in outcome:
            assert isinstance(err, StorageUnavailable)
            assert str(err) == "storage error: TimeoutError"
        private_server.resume()
        assert await store.get_credential(ALICE) is None
    finally:
        private_server.resume()
        await store.close()


async def test_async_reads_come_through_a_restart(private_server: RedisServer) -> None:
    """The reads' connection, closed by a restart while idle, is found broken by the next
    read, which goes again on the pool (as redis-py retries its own) instead of failing."""
    store = AsyncRedisStorage(private_server.url)
    try:
        await store.setup()
        assert await store.save_credential(record(), 0)
        assert await store.get_credential(ALICE) is not None
        private_server.stop()
        private_server.start()  # same port, empty
        assert await store.get_credential(ALICE) is None
        assert await store.get_session("nobody", NOW) is None
        assert await store.save_credential(record(), 0)
        assert await store.get_credential(ALICE) is not None
    finally:
        await store.close()


async def test_async_reads_authenticate_and_select_the_database(
    private_server: RedisServer,
) -> None:
    """The reads' own connection is made with the URL's password and database, as the
    pool's are: the reads find what the writes stored, in that database only."""
    admin = redis.Redis.from_url(private_server.url)
    admin.config_set("requirepass", "s3cret")
    admin.close()
    url = f"redis://:s3cret@127.0.0.1:{private_server.port}/3"
    store = AsyncRedisStorage(url)
    try:
        await store.setup()
        assert await store.save_credential(record(), 0)
        await store.create_session("pw-h", ALICE.user_id, NOW + 60)
        found = await asyncio.gather(
            *(store.get_session_credential("pw-h", NOW, ALICE.connection_id) for _ in range(20)),
            *(store.get_credential(ALICE) for _ in range(20)),
        )
        for pair in found[:20]:
            assert isinstance(pair, tuple)
            assert pair[1] is not None
        assert all(isinstance(r, StoredCredential) for r in found[20:])
        with redis.Redis.from_url(url) as db3:
            assert db3.dbsize() > 0
        with redis.Redis.from_url(url.replace("/3", "/0")) as db0:
            assert db0.dbsize() == 0
    finally:
        await store.close()


async def test_async_reads_reload_flushed_scripts(
    astore: AsyncRedisStorage, raw: redis.Redis
) -> None:
    """A script the server no longer has (SCRIPT FLUSH, a failover to a fresh replica) is
    loaded again and the read answered."""
    await astore.delete_credential(ALICE)
    assert await astore.save_credential(record(), 0)
    await astore.create_session("flushed", ALICE.user_id, NOW + 60)
    found = await astore.get_session_credential("flushed", NOW, ALICE.connection_id)
    assert found is not None
    assert found[1] is not None
    raw.script_flush()
    again = await asyncio.gather(
        *(astore.get_session_credential("flushed", NOW, ALICE.connection_id) for _ in range(5))
    )
    assert again == [found] * 5


def test_no_secret_in_repr_or_errors() -> None:
    store = RedisStorage("redis://vault:s3cret@127.0.0.1:1/3", prefix="p")
    assert repr(store) == "RedisStorage(host='127.0.0.1', port=1, db=3, prefix='p')"
    with pytest.raises(StorageUnavailable) as caught:
        store.get_credential(ALICE)
    assert "s3cret" not in str(caught.value)
    store.close()
    with pytest.raises(ConfigurationError) as bad:
        RedisStorage("redis://vault:s3cret@127.0.0.1:1/0?socket_timeout=soon")
    assert "s3cret" not in str(bad.value)
    with pytest.raises(ConfigurationError, match="unsupported Redis URL option 'colour'"):
        AsyncRedisStorage("redis://vault:s3cret@127.0.0.1:1/0?colour=blue")  # at start-up


def test_missing_redis_py_gives_an_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    monkeypatch.delitem(sys.modules, "oauth_vault_mw.storage.redis")
    with pytest.raises(ImportError, match=r"pip install 'oauth-vault-mw\[redis\]'"):
        importlib.import_module("oauth_vault_mw.storage.redis")


# -- async ------------------------------------------------------------------------------------


def test_urls_pick_the_redis_backends(redis_url: str) -> None:
    sync = storage_from_url(redis_url)
    tls = storage_from_url("rediss://127.0.0.1:6380/0")
    native = async_storage_from_url(redis_url)
    assert isinstance(sync, RedisStorage)
    assert isinstance(tls, RedisStorage)
    assert isinstance(native, AsyncRedisStorage)
    assert not isinstance(native, AsyncStorageAdapter)
    sync.close()
    tls.close()
    asyncio.run(native.close())


async def test_async_backend_uses_no_thread(
    redis_store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_threads(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("the async Redis backend must not use a worker thread")

    loop = asyncio.get_running_loop()
    monkeypatch.setattr(asyncio, "to_thread", no_threads)
    monkeypatch.setattr(loop, "run_in_executor", no_threads)
    threads = threading.active_count()
    store = async_storage_from_url(redis_store_url)
    await store.setup()
    assert await store.save_credential(record(), 0)
    assert await store.get_credential(ALICE) is not None
    assert await store.acquire_lease(ALICE, "a", 10, NOW)
    assert [r.key for r in await store.list_credentials("alice")] == [ALICE]
    assert len(await store.scan_credentials(after=None, limit=5, expiring_before=NOW + 7200)) == 1
    await store.create_session("s1", "alice", NOW + 60)
    assert await store.get_session("s1", NOW) == "alice"
    await store.close()
    assert threading.active_count() == threads


def test_async_backend_serves_successive_event_loops(redis_store_url: str) -> None:
    """A storage built at import time outlives ``asyncio.run`` loops (tests, CLI, workers)."""
    store = AsyncRedisStorage(redis_store_url)

    async def use(sealed: str, version: int) -> str | None:
        try:
            assert await store.save_credential(record(sealed=sealed), version)
            found = await store.get_credential(ALICE)
            return None if found is None else found.sealed
        finally:
            await store.close()

    assert asyncio.run(use("first", 0)) == "first"
    assert asyncio.run(use("second", 1)) == "second"
