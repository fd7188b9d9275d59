"""The Redis backend on a Redis Cluster (``redis+cluster://``): what the contract tests, which
run on the cluster too, cannot see. Every script and every multi-key step touches one hash
slot; the cluster client is the one chosen; the URL is checked at start-up; the event
counter's move to the events key's slot keeps an old store's count."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import redis.asyncio.cluster
import redis.cluster
from redis.crc import key_slot

from oauth_vault_mw.core.errors import ConfigurationError, StorageUnavailable
from oauth_vault_mw.core.model import CredentialKey
from oauth_vault_mw.storage import async_storage_from_url, storage_from_url
from oauth_vault_mw.storage._redis_ops import (
    SCRIPTS,
    SINGLE_SERVER_SCRIPTS,
    Command,
    Eval,
    RedisOps,
    stages,
)
from oauth_vault_mw.storage.redis import AsyncRedisStorage, RedisStorage, _Cluster

from .test_contract import ALICE, NOW, record

pytestmark = pytest.mark.integration

ODD = CredentialKey("demo}", "we{ir}d", "%7D}{")


@pytest.fixture
def store(redis_cluster_store_url: str) -> Iterator[RedisStorage]:
    storage = RedisStorage(redis_cluster_store_url)
    storage.setup()
    yield storage
    storage.close()


def _workload(store: RedisStorage) -> None:
    """Every operation of the storage, the ones with scripts several times over."""
    keys = [ALICE, ODD, *(CredentialKey("demo", f"user-{i}") for i in range(6))]
    for key in keys:
        assert store.save_credential(record(key), 0)
        assert store.save_credential(record(key, sealed="again"), 1)
        assert store.acquire_lease(key, "me", 10, NOW)
        store.release_lease(key, "me")
        assert store.acquire_lease(key, "me", 10, NOW)
        assert store.save_credential_releasing(record(key, sealed="refreshed"), 2, "me")
    assert store.list_credentials("alice")
    assert store.scan_credentials(after=None, limit=3, expiring_before=NOW + 7200)
    assert store.scan_credentials(after=ALICE, limit=100)
    assert store.link_identity("demo", "sub-1", "alice") == "alice"
    assert store.link_identity("demo", "sub-2", "alice") == "alice"
    assert store.list_identities("demo", "alice") == ["sub-1", "sub-2"]
    store.unlink_identities("demo", "alice")
    store.put_login_state("h", b"data", NOW + 60)
    assert store.take_login_state("h", NOW) == b"data"
    store.create_session("s", "alice", NOW + 60)
    assert store.get_session("s", NOW) == "alice"
    store.delete_session("s")
    assert store.put_record("client", "c", b"x", only_if_absent=True)
    assert store.list_records("client") == [("c", b"x")]
    store.append_events([(NOW, b"one"), (NOW, b"two")])
    assert store.read_events(0, 10) == [(NOW, b"one"), (NOW, b"two")]
    assert store.delete_credential(ODD)


def test_every_script_touches_one_hash_slot(
    store: RedisStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Record every batch the storage runs on the real cluster: each script's keys are in
    one slot (the cluster would refuse them otherwise), and every script was run but those
    for a single server."""
    batches: list[list[Command]] = []
    execute = store._redis.execute

    def recording(batch: list[Command]) -> list[Any]:
        batches.append(batch)
        return execute(batch)

    monkeypatch.setattr(store._redis, "execute", recording)
    _workload(store)
    scripts = [c for batch in batches for c in batch if isinstance(c, Eval)]
    assert {c.script for c in scripts} == set(SCRIPTS) - SINGLE_SERVER_SCRIPTS
    for call in scripts:
        assert len({key_slot(k) for k in call.keys}) == 1, call
    # a batch that touches several slots is cut into stages wherever order matters
    assert any(len(stages(batch)) > 1 for batch in batches)


@pytest.mark.parametrize("prefix", ["oauth_vault", "a", "app:one", "x" * 40])
def test_script_keys_share_a_slot_for_any_ids(prefix: str) -> None:
    """No server: the key builders put each script's keys in one slot, whatever the ids."""
    ops = RedisOps(prefix)
    ids = ["alice", "}", "{", "{}", "%7D", "a}b{c", "\x00", "é", "x" * 200]
    for cid in ids:
        for uid in ids:
            key = CredentialKey(cid, uid, "default")
            assert key_slot(ops.record(key)) == key_slot(ops.lease(key))
    assert key_slot(ops.events) == key_slot(ops.event_seq)
    assert ops.event_seq.startswith(prefix.encode() + b":")  # still under the prefix


def test_cluster_urls_pick_the_cluster_clients(redis_cluster_url: str) -> None:
    sync = storage_from_url(redis_cluster_url)
    native = async_storage_from_url(redis_cluster_url)
    assert isinstance(sync, RedisStorage)
    assert isinstance(native, AsyncRedisStorage)
    port = redis_cluster_url.rsplit(":", 1)[1].split("/")[0]
    assert repr(sync) == (
        f"RedisStorage(host='127.0.0.1', port={port}, cluster=True, prefix='oauth_vault')"
    )
    try:
        sync.setup()
        assert isinstance(sync._redis, _Cluster)
        assert isinstance(sync._redis.connect(), redis.cluster.RedisCluster)

        async def native_client() -> object:
            await native.setup()
            try:
                return native._client().redis
            finally:
                await native.close()

        assert isinstance(asyncio.run(native_client()), redis.asyncio.cluster.RedisCluster)
    finally:
        sync.close()
    tls = storage_from_url("rediss+cluster://127.0.0.1:1/0")
    assert repr(tls).startswith("RedisStorage(host='127.0.0.1', port=1, cluster=True")
    tls.close()


@pytest.mark.parametrize("make", [RedisStorage, AsyncRedisStorage])
def test_bad_cluster_urls_fail_at_startup(make: Any) -> None:
    with pytest.raises(ConfigurationError, match="database 0 only"):
        make("redis+cluster://127.0.0.1:1/3")
    with pytest.raises(ConfigurationError, match="colour"):
        make("redis+cluster://vault:s3cret@127.0.0.1:1/0?colour=blue")
    with pytest.raises(ConfigurationError, match="not a valid"):
        make("redis+cluster://127.0.0.1:1/0?socket_timeout=soon")


def test_cluster_down_is_storage_unavailable_not_a_startup_crash() -> None:
    """The cluster client reads the topology when it is built: built at the first command,
    so an unreachable cluster fails that command (as a single server does), and no secret
    reaches the message."""
    store = RedisStorage("redis+cluster://vault:s3cret@127.0.0.1:1/0?socket_connect_timeout=0.2")
    with pytest.raises(StorageUnavailable) as caught:
        store.get_credential(ALICE)
    assert "s3cret" not in str(caught.value)
    store.close()

    async def async_down() -> None:
        native = AsyncRedisStorage("redis+cluster://127.0.0.1:1/0?socket_connect_timeout=0.2")
        try:
            with pytest.raises(StorageUnavailable):
                await native.get_credential(ALICE)
        finally:
            await native.close()

    asyncio.run(async_down())


def test_the_event_counter_moved_keeps_its_count(redis_store_url: str) -> None:
    """A store written before the counter moved to the events key's slot: ``setup`` carries
    the count over, so new events keep numbers after the old ones (single server)."""
    raw = redis.Redis.from_url(redis_store_url)
    try:
        raw.set("oauth_vault:events:seq", 41)
        store = RedisStorage(redis_store_url)
        store.setup()
        store.append_events([(NOW, b"next")])
        store.close()
        member = raw.zrange("oauth_vault:events", 0, -1)[0]
        assert member == b"%020d:next" % 42
        assert raw.get(store._ops.event_seq) == b"42"
    finally:
        raw.close()
