"""Redis storage: :class:`RedisStorage` (redis-py, sync) and :class:`AsyncRedisStorage`
(``redis.asyncio``, natively async), for several app processes sharing one Redis.

    storage = RedisStorage("redis://:password@redis.internal:6379/0", prefix="oauth_vault")
    storage = storage_from_url("rediss://redis.internal:6380/0?prefix=myapp")  # TLS

Every operation is written once, as a generator that yields batches of Redis commands and
receives their replies (:class:`RedisOps`); the sync and async classes only run those batches
(one command alone, several in one pipeline). Redis errors become
:class:`~oauth_vault_mw.StorageUnavailable` naming the error class only; sockets time out after
2 s unless the URL says otherwise: redis-py's URL options (``?socket_timeout=0.5``,
``max_connections``...) win over these defaults; ``?prefix=`` sets the key prefix.

The keys and the operations on them are in :mod:`._redis_ops`.
"""

from __future__ import annotations

import asyncio
import re
import weakref
from collections.abc import Sequence
from typing import Any, TypeVar

try:
    import redis
    import redis.asyncio
    import redis.asyncio.connection
    import redis.connection
except ImportError as _err:  # pragma: no cover - depends on the environment
    raise ImportError("Redis storage needs redis-py: pip install 'oauth-vault-mw[redis]'") from _err

from ..core.errors import ConfigurationError
from ..core.model import CredentialKey, StoredCredential
from ._redis_ops import (
    DEFAULT_PREFIX,
    POOL_WAIT,
    SCHEMA_VERSION,
    SCRIPTS,
    SOCKET_TIMEOUT,
    Command,
    Eval,
    Op,
    RedisOps,
    mapped_errors,
)

__all__ = ["SCHEMA_VERSION", "AsyncRedisStorage", "RedisStorage"]

T = TypeVar("T")


def _pool_options(
    module: Any, url: str, prefix: str | None, max_connections: int
) -> tuple[dict[str, Any], str]:
    """Pool options from the URL (``redis.connection`` or ``redis.asyncio.connection``), checked
    now: a bad option fails at start-up, not in the first request."""
    try:
        parsed: dict[str, Any] = dict(module.parse_url(url))
    except ValueError:
        raise ConfigurationError(
            "OAUTH_VAULT_STORAGE_URL: not a valid redis:// or rediss:// URL"
        ) from None
    url_prefix = parsed.pop("prefix", None)
    options = {
        "socket_timeout": SOCKET_TIMEOUT,
        "socket_connect_timeout": SOCKET_TIMEOUT,
        "max_connections": max_connections,
        "timeout": POOL_WAIT,
        **parsed,
        "decode_responses": False,
    }
    connection = options.get("connection_class", module.Connection)
    try:  # builds a connection object; it connects only when used
        connection(
            **{
                k: v
                for k, v in options.items()
                if k not in ("max_connections", "timeout", "connection_class")
            }
        )
    except TypeError as err:
        name = re.search(r"'(\w+)'", str(err))
        raise ConfigurationError(
            f"OAUTH_VAULT_STORAGE_URL: unsupported Redis URL option {name[0] if name else ''}"
        ) from None
    return options, prefix or url_prefix or DEFAULT_PREFIX


def _describe(cls: str, options: dict[str, Any], prefix: str) -> str:
    where = (
        f"path={options['path']!r}"
        if "path" in options
        else f"host={options.get('host', 'localhost')!r}, port={options.get('port', 6379)}"
    )
    return f"{cls}({where}, db={options.get('db', 0)}, prefix={prefix!r})"


class RedisStorage:
    """Sync Redis storage implementing :class:`~oauth_vault_mw.storage.Storage` (thread-safe).

    ``prefix`` namespaces every key (else the URL's ``?prefix=``, else ``oauth_vault``);
    ``max_connections`` sizes the pool (callers beyond it wait up to 5 s for a connection).
    """

    shared_across_processes = True

    def __init__(self, url: str, *, prefix: str | None = None, max_connections: int = 20) -> None:
        options, prefix = _pool_options(redis.connection, url, prefix, max_connections)
        self._ops = RedisOps(prefix)
        self._repr = _describe(type(self).__name__, options, prefix)
        self._pool = redis.BlockingConnectionPool(**options)  # type: ignore[no-untyped-call]
        self._client = redis.Redis(connection_pool=self._pool)
        self._scripts = {name: self._client.register_script(s) for name, s in SCRIPTS.items()}

    def __repr__(self) -> str:
        return self._repr

    def _call(self, client: Any, command: Command) -> Any:
        if isinstance(command, Eval):
            return self._scripts[command.script](command.keys, command.args, client=client)
        return client.execute_command(*command)

    def _run(self, op: Op[T]) -> T:
        with mapped_errors():
            replies: Any = None
            try:
                while True:
                    batch = op.send(replies)
                    if len(batch) == 1:
                        replies = [self._call(self._client, batch[0])]
                        continue
                    with self._client.pipeline(transaction=False) as pipe:
                        for command in batch:
                            self._call(pipe, command)
                        replies = pipe.execute()
            except StopIteration as done:
                result: T = done.value
                return result

    def setup(self) -> None:
        self._run(self._ops.setup())

    def close(self) -> None:
        with mapped_errors():
            self._client.close()
            self._pool.disconnect()

    def get_credential(self, key: CredentialKey) -> StoredCredential | None:
        return self._run(self._ops.get_credential(key))

    def save_credential(self, record: StoredCredential, expected_version: int) -> bool:
        return self._run(self._ops.save_credential(record, expected_version))

    def delete_credential(self, key: CredentialKey) -> bool:
        return self._run(self._ops.delete_credential(key))

    def list_credentials(self, user_id: str) -> list[StoredCredential]:
        return self._run(self._ops.list_credentials(user_id))

    def scan_credentials(
        self, *, after: CredentialKey | None, limit: int, expiring_before: float | None = None
    ) -> list[StoredCredential]:
        return self._run(self._ops.scan_credentials(after, limit, expiring_before))

    def acquire_lease(self, key: CredentialKey, owner: str, ttl: float, now: float) -> bool:
        return self._run(self._ops.acquire_lease(key, owner, ttl, now))

    def release_lease(self, key: CredentialKey, owner: str) -> None:
        self._run(self._ops.release_lease(key, owner))

    def get_identity(self, connection_id: str, subject: str) -> str | None:
        return self._run(self._ops.get_identity(connection_id, subject))

    def link_identity(self, connection_id: str, subject: str, user_id: str) -> str:
        return self._run(self._ops.link_identity(connection_id, subject, user_id))

    def unlink_identities(self, connection_id: str, user_id: str) -> None:
        self._run(self._ops.unlink_identities(connection_id, user_id))

    def put_login_state(self, state_hash: str, data: bytes, expires_at: float) -> None:
        self._run(self._ops.put_login_state(state_hash, data, expires_at))

    def take_login_state(self, state_hash: str, now: float) -> bytes | None:
        return self._run(self._ops.take_login_state(state_hash, now))

    def create_session(self, session_hash: str, user_id: str, expires_at: float) -> None:
        self._run(self._ops.create_session(session_hash, user_id, expires_at))

    def get_session(self, session_hash: str, now: float) -> str | None:
        return self._run(self._ops.get_session(session_hash, now))

    def delete_session(self, session_hash: str) -> None:
        self._run(self._ops.delete_session(session_hash))

    def put_record(
        self, kind: str, name: str, data: bytes, *, only_if_absent: bool = False
    ) -> bool:
        return self._run(self._ops.put_record(kind, name, data, only_if_absent))

    def get_record(self, kind: str, name: str) -> bytes | None:
        return self._run(self._ops.get_record(kind, name))

    def delete_record(self, kind: str, name: str) -> bool:
        return self._run(self._ops.delete_record(kind, name))

    def list_records(self, kind: str) -> list[tuple[str, bytes]]:
        return self._run(self._ops.list_records(kind))

    def append_events(self, events: Sequence[tuple[float, bytes]]) -> None:
        self._run(self._ops.append_events(events))

    def read_events(self, since: float, limit: int) -> list[tuple[float, bytes]]:
        return self._run(self._ops.read_events(since, limit))


class _LoopClient:
    """One ``redis.asyncio`` client, its pool and its scripts: they belong to one event loop."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.pool = redis.asyncio.BlockingConnectionPool(**options)
        self.redis = redis.asyncio.Redis(connection_pool=self.pool)
        self.scripts = {name: self.redis.register_script(s) for name, s in SCRIPTS.items()}

    async def one(self, command: Command) -> Any:
        if isinstance(command, Eval):
            return await self.scripts[command.script](command.keys, command.args)
        return await self.redis.execute_command(*command)  # type: ignore[no-untyped-call]

    async def pipeline(self, batch: list[Command]) -> list[Any]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for command in batch:
                if isinstance(command, Eval):
                    script = self.scripts[command.script]
                    await script(command.keys, command.args, client=pipe)
                else:
                    pipe.execute_command(*command)
            replies: list[Any] = await pipe.execute()
            return replies


class AsyncRedisStorage:
    """Async Redis storage on ``redis.asyncio`` implementing
    :class:`~oauth_vault_mw.storage.AsyncStorage`: no worker threads. Same options as
    :class:`RedisStorage`. Connections belong to an event loop, so each loop that uses the
    storage gets its own pool (as the provider client does); :meth:`close` closes the
    current loop's.
    """

    shared_across_processes = True

    def __init__(self, url: str, *, prefix: str | None = None, max_connections: int = 20) -> None:
        self._options, prefix = _pool_options(
            redis.asyncio.connection, url, prefix, max_connections
        )
        self._ops = RedisOps(prefix)
        self._repr = _describe(type(self).__name__, self._options, prefix)
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClient]
        self._clients = weakref.WeakKeyDictionary()

    def __repr__(self) -> str:
        return self._repr

    def _client(self) -> _LoopClient:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = _LoopClient(self._options)
        return client

    async def _run(self, op: Op[T]) -> T:
        client = self._client()
        with mapped_errors():
            replies: Any = None
            try:
                while True:
                    batch = op.send(replies)
                    if len(batch) == 1:
                        replies = [await client.one(batch[0])]
                    else:
                        replies = await client.pipeline(batch)
            except StopIteration as done:
                result: T = done.value
                return result

    async def setup(self) -> None:
        await self._run(self._ops.setup())

    async def close(self) -> None:
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            with mapped_errors():
                await client.redis.aclose()
                await client.pool.disconnect()

    async def get_credential(self, key: CredentialKey) -> StoredCredential | None:
        return await self._run(self._ops.get_credential(key))

    async def save_credential(self, record: StoredCredential, expected_version: int) -> bool:
        return await self._run(self._ops.save_credential(record, expected_version))

    async def delete_credential(self, key: CredentialKey) -> bool:
        return await self._run(self._ops.delete_credential(key))

    async def list_credentials(self, user_id: str) -> list[StoredCredential]:
        return await self._run(self._ops.list_credentials(user_id))

    async def scan_credentials(
        self, *, after: CredentialKey | None, limit: int, expiring_before: float | None = None
    ) -> list[StoredCredential]:
        return await self._run(self._ops.scan_credentials(after, limit, expiring_before))

    async def acquire_lease(self, key: CredentialKey, owner: str, ttl: float, now: float) -> bool:
        return await self._run(self._ops.acquire_lease(key, owner, ttl, now))

    async def release_lease(self, key: CredentialKey, owner: str) -> None:
        await self._run(self._ops.release_lease(key, owner))

    async def get_identity(self, connection_id: str, subject: str) -> str | None:
        return await self._run(self._ops.get_identity(connection_id, subject))

    async def link_identity(self, connection_id: str, subject: str, user_id: str) -> str:
        return await self._run(self._ops.link_identity(connection_id, subject, user_id))

    async def unlink_identities(self, connection_id: str, user_id: str) -> None:
        await self._run(self._ops.unlink_identities(connection_id, user_id))

    async def put_login_state(self, state_hash: str, data: bytes, expires_at: float) -> None:
        await self._run(self._ops.put_login_state(state_hash, data, expires_at))

    async def take_login_state(self, state_hash: str, now: float) -> bytes | None:
        return await self._run(self._ops.take_login_state(state_hash, now))

    async def create_session(self, session_hash: str, user_id: str, expires_at: float) -> None:
        await self._run(self._ops.create_session(session_hash, user_id, expires_at))

    async def get_session(self, session_hash: str, now: float) -> str | None:
        return await self._run(self._ops.get_session(session_hash, now))

    async def delete_session(self, session_hash: str) -> None:
        await self._run(self._ops.delete_session(session_hash))

    async def put_record(
        self, kind: str, name: str, data: bytes, *, only_if_absent: bool = False
    ) -> bool:
        return await self._run(self._ops.put_record(kind, name, data, only_if_absent))

    async def get_record(self, kind: str, name: str) -> bytes | None:
        return await self._run(self._ops.get_record(kind, name))

    async def delete_record(self, kind: str, name: str) -> bool:
        return await self._run(self._ops.delete_record(kind, name))

    async def list_records(self, kind: str) -> list[tuple[str, bytes]]:
        return await self._run(self._ops.list_records(kind))

    async def append_events(self, events: Sequence[tuple[float, bytes]]) -> None:
        await self._run(self._ops.append_events(events))

    async def read_events(self, since: float, limit: int) -> list[tuple[float, bytes]]:
        return await self._run(self._ops.read_events(since, limit))
