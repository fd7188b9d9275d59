"""Redis storage: :class:`RedisStorage` (redis-py, sync) and :class:`AsyncRedisStorage`
(``redis.asyncio``, natively async), for several app processes sharing one Redis or one
Redis Cluster.

    storage = RedisStorage("redis://:password@redis.internal:6379/0", prefix="oauth_vault")
    storage = storage_from_url("rediss://redis.internal:6380/0?prefix=myapp")  # TLS
    storage = storage_from_url("redis+cluster://redis-node-1.internal:6379/0")  # a cluster

Every operation is written once, as a generator that yields batches of Redis commands and
receives their replies (:class:`RedisOps`); the sync and async classes only run those batches
(one command alone, several in one pipeline). Redis errors become
:class:`~oauth_vault_mw.StorageUnavailable` naming the error class only; sockets time out after
2 s unless the URL says otherwise: redis-py's URL options (``?socket_timeout=0.5``,
``max_connections``...) win over these defaults; ``?prefix=`` sets the key prefix.

``redis+cluster://`` (``rediss+cluster://`` with TLS) names one node of a Redis Cluster, from
which the client (``redis.cluster.RedisCluster``, ``redis.asyncio.cluster.RedisCluster``)
discovers the others; database 0 only. Each script touches one hash slot (see
:mod:`._redis_ops`); a batch runs as one cluster pipeline per stage between its fences.
``max_connections`` is then per node.

The keys and the operations on them are in :mod:`._redis_ops`.
"""

from __future__ import annotations

import asyncio
import collections
import re
import threading
import weakref
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any, TypeVar

try:
    import redis
    import redis.asyncio
    import redis.asyncio.cluster
    import redis.asyncio.connection
    import redis.cluster
    import redis.connection
except ImportError as _err:  # pragma: no cover - depends on the environment
    raise ImportError("Redis storage needs redis-py: pip install 'oauth-vault-mw[redis]'") from _err

from ..core.errors import ConfigurationError
from ..core.model import CredentialKey, StoredCredential
from ._protocol import session_credential_by_two_reads
from ._redis_ops import (
    DEFAULT_PREFIX,
    POOL_WAIT,
    REDIS_ERRORS,
    SCHEMA_VERSION,
    SCRIPTS,
    SOCKET_TIMEOUT,
    Command,
    Eval,
    Fence,
    Op,
    RedisOps,
    eval_command,
    mapped_errors,
    merge_reads,
    stages,
    unavailable,
)

__all__ = ["CLUSTER_SCHEMES", "SCHEMA_VERSION", "AsyncRedisStorage", "RedisStorage"]

T = TypeVar("T")

CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
"""URL schemes of a Redis Cluster, and the plain scheme each stands for."""


def is_cluster_url(url: str) -> bool:
    return url.split("://", 1)[0].lower() in CLUSTER_SCHEMES


def _pool_options(
    module: Any, url: str, prefix: str | None, max_connections: int
) -> tuple[dict[str, Any], str]:
    """Pool options from the URL (``redis.connection`` or ``redis.asyncio.connection``), checked
    now: a bad option fails at start-up, not in the first request. A cluster URL gives the
    options of its seed node, without ``db``."""
    scheme, _, rest = url.partition("://")
    cluster = scheme.lower() in CLUSTER_SCHEMES
    if cluster:
        url = f"{CLUSTER_SCHEMES[scheme.lower()]}://{rest}"
    try:
        parsed: dict[str, Any] = dict(module.parse_url(url))
    except ValueError:
        raise ConfigurationError(
            "OAUTH_VAULT_STORAGE_URL: not a valid redis://, rediss:// or redis+cluster:// URL"
        ) from None
    if cluster and parsed.pop("db", 0) != 0:
        raise ConfigurationError(
            "OAUTH_VAULT_STORAGE_URL: a Redis Cluster has database 0 only (redis+cluster://host:port/0)"
        )
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


def _describe(cls: str, options: dict[str, Any], prefix: str, cluster: bool) -> str:
    where = (
        f"path={options['path']!r}"
        if "path" in options
        else f"host={options.get('host', 'localhost')!r}, port={options.get('port', 6379)}"
    )
    if cluster:
        return f"{cls}({where}, cluster=True, prefix={prefix!r})"
    return f"{cls}({where}, db={options.get('db', 0)}, prefix={prefix!r})"


class _Standalone:
    """One Redis server: a blocking pool, and a batch as one pipeline (one connection, so
    its commands apply in order, fences or not)."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.pool = redis.BlockingConnectionPool(**options)  # type: ignore[no-untyped-call]
        self.client = redis.Redis(connection_pool=self.pool)
        self.scripts = {name: self.client.register_script(s) for name, s in SCRIPTS.items()}

    def call(self, client: Any, command: tuple[Any, ...] | Eval) -> Any:
        if isinstance(command, Eval):
            return self.scripts[command.script](command.keys, command.args, client=client)
        return client.execute_command(*command)

    def execute(self, batch: list[Command]) -> list[Any]:
        commands = [c for c in batch if not isinstance(c, Fence)]
        if len(commands) == 1:
            return [self.call(self.client, commands[0])]
        with self.client.pipeline(transaction=False) as pipe:
            for command in commands:
                self.call(pipe, command)
            replies: list[Any] = pipe.execute()
            return replies

    def close(self) -> None:
        self.client.close()
        self.pool.disconnect()


class _Cluster:
    """A Redis Cluster through ``redis.cluster.RedisCluster``, which reads the cluster's
    topology as it is built: built at the first command (a cluster that is down fails that
    command, not the app's start-up), again after a failed attempt."""

    def __init__(self, options: dict[str, Any]) -> None:
        allowed = set(redis.cluster.REDIS_ALLOWED_KEYS) - set(redis.cluster.KWARGS_DISABLED_KEYS)
        unsupported = sorted(set(options) - allowed - {"host", "port"})
        if unsupported:
            raise ConfigurationError(
                f"OAUTH_VAULT_STORAGE_URL: Redis URL option {unsupported[0]} is not supported "
                "with redis+cluster://"
            )
        self.options = {**options, "connection_pool_class": redis.BlockingConnectionPool}
        self.lock = threading.Lock()
        self.client: redis.cluster.RedisCluster | None = None
        self.scripts: dict[str, Any] = {}

    def connect(self) -> redis.cluster.RedisCluster:
        client = self.client
        if client is not None:
            return client
        with self.lock:
            if self.client is None:
                client = redis.cluster.RedisCluster(**self.options)
                self.scripts = {name: client.register_script(s) for name, s in SCRIPTS.items()}
                self.client = client
            return self.client

    def execute(self, batch: list[Command]) -> list[Any]:
        client = self.connect()
        replies: list[Any] = []
        for stage in stages(batch):
            if len(stage) == 1:
                command = stage[0]
                if isinstance(command, Eval):  # EVALSHA, SCRIPT LOAD on NOSCRIPT
                    replies.append(self.scripts[command.script](command.keys, command.args))
                else:
                    replies.append(client.execute_command(*command))  # type: ignore[no-untyped-call]
                continue
            with client.pipeline(transaction=False) as pipe:  # type: ignore[no-untyped-call]
                for command in stage:
                    if isinstance(command, Eval):
                        command = eval_command(command)
                    pipe.execute_command(*command)
                replies += pipe.execute()
        return replies

    def close(self) -> None:
        with self.lock:
            client, self.client = self.client, None
        if client is not None:
            client.close()


class RedisStorage:
    """Sync Redis storage implementing :class:`~oauth_vault_mw.storage.Storage` (thread-safe).

    ``prefix`` namespaces every key (else the URL's ``?prefix=``, else ``oauth_vault``);
    ``max_connections`` sizes the pool (callers beyond it wait up to 5 s for a connection).
    """

    shared_across_processes = True

    def __init__(self, url: str, *, prefix: str | None = None, max_connections: int = 20) -> None:
        options, prefix = _pool_options(redis.connection, url, prefix, max_connections)
        cluster = is_cluster_url(url)
        self._ops = RedisOps(prefix)
        self._repr = _describe(type(self).__name__, options, prefix, cluster)
        self._redis: _Standalone | _Cluster = (_Cluster if cluster else _Standalone)(options)
        self._cluster = cluster

    def __repr__(self) -> str:
        return self._repr

    def _run(self, op: Op[T]) -> T:
        with mapped_errors():
            replies: Any = None
            try:
                while True:
                    replies = self._redis.execute(op.send(replies))
            except StopIteration as done:
                result: T = done.value
                return result

    def setup(self) -> None:
        self._run(self._ops.setup())

    def close(self) -> None:
        with mapped_errors():
            self._redis.close()

    def get_credential(self, key: CredentialKey) -> StoredCredential | None:
        return self._run(self._ops.get_credential(key))

    def save_credential(self, record: StoredCredential, expected_version: int) -> bool:
        return self._run(self._ops.save_credential(record, expected_version))

    def save_credential_releasing(
        self, record: StoredCredential, expected_version: int, owner: str
    ) -> bool:
        return self._run(self._ops.save_credential(record, expected_version, owner))

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

    def list_identities(self, connection_id: str, user_id: str) -> list[str]:
        return self._run(self._ops.list_identities(connection_id, user_id))

    def put_login_state(self, state_hash: str, data: bytes, expires_at: float) -> None:
        self._run(self._ops.put_login_state(state_hash, data, expires_at))

    def take_login_state(self, state_hash: str, now: float) -> bytes | None:
        return self._run(self._ops.take_login_state(state_hash, now))

    def create_session(self, session_hash: str, user_id: str, expires_at: float) -> None:
        self._run(self._ops.create_session(session_hash, user_id, expires_at))

    def get_session(self, session_hash: str, now: float) -> str | None:
        return self._run(self._ops.get_session(session_hash, now))

    def get_session_credential(
        self, session_hash: str, now: float, connection_id: str, account: str = "default"
    ) -> tuple[str, StoredCredential | None] | None:
        if self._cluster:  # the two keys are in different slots
            return session_credential_by_two_reads(self, session_hash, now, connection_id, account)
        return self._run(
            self._ops.get_session_credential(session_hash, now, connection_id, account)
        )

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


READS_IN_FLIGHT = 1
"""Per event loop: how many per-request reads go to Redis one by one at a time; those that
come while as many are under way wait together and go as one pipeline (:class:`_Reads`).
One: a read that finds none under way goes at once, and under load each round trip carries
every read that came during the one before (endpoint at 50 connections, 500 users, one
run: 1 in flight ~11,000 req/s, 4 ~9,800, 16 ~9,900)."""


class _Reads:
    """One event loop's per-request reads (one command each): sent alone while fewer than
    :data:`READS_IN_FLIGHT` are under way, else gathered and sent together when the next
    one is answered (identical commands share one reply; calls of a per-key script become
    one call, see :func:`merge_reads`). A client that is CPU-bound pays the per-command
    cost once per batch instead of once per read."""

    __slots__ = ("execute", "in_flight", "pending", "tasks")

    def __init__(self, execute: Callable[[list[Command]], Awaitable[list[Any]]]) -> None:
        self.execute = execute
        self.in_flight = 0
        self.pending: dict[tuple[Any, ...] | Eval, list[asyncio.Future[Any]]] | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def read(self, command: tuple[Any, ...] | Eval) -> Any:
        if self.pending is None and self.in_flight < READS_IN_FLIGHT:
            self.in_flight += 1
            try:
                (reply,) = await self.execute([command])
            finally:
                self._answered()
            return reply
        if self.pending is None:
            self.pending = {}
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending.setdefault(command, []).append(future)
        return await future

    def _answered(self) -> None:
        self.in_flight -= 1
        if self.pending:
            batch, self.pending = self.pending, None
            self.in_flight += 1
            task = asyncio.get_running_loop().create_task(self._send(batch))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _send(self, batch: dict[tuple[Any, ...] | Eval, list[asyncio.Future[Any]]]) -> None:
        try:
            commands, split = merge_reads(list(batch))
            replies = split(await self.execute(list[Command](commands)))
        except BaseException as err:
            for futures in batch.values():
                for future in futures:
                    if future.done():
                        continue
                    if isinstance(err, asyncio.CancelledError):
                        future.cancel()
                    else:
                        future.set_exception(err)
            if isinstance(err, asyncio.CancelledError):
                raise
        else:
            for futures, reply in zip(batch.values(), replies, strict=True):
                for future in futures:
                    if not future.done():
                        future.set_result(reply)
        finally:
            self._answered()


class _ReadLane:
    """One event loop's per-request reads on a connection of their own, pipelined: each
    batch of commands is written as soon as it comes, behind those still unanswered, and one
    task reads the replies in order (Redis answers in order). redis-py's pool checkout,
    retries and per-command timers are left out of the way: one timer per ``timeout``
    checks that replies keep coming, else every waiting read fails with ``TimeoutError``.

    A read that finds the lane broken (the server closed it, a restart) or a script not yet
    loaded (``NOSCRIPT``) goes again through ``fallback``, the pool's ordinary path."""

    def __init__(
        self,
        pool: redis.asyncio.ConnectionPool,
        scripts: dict[str, Any],
        fallback: Callable[[list[Command]], Awaitable[list[Any]]],
    ) -> None:
        kwargs = dict(pool.connection_kwargs)
        self.timeout: float | None = kwargs.get("socket_timeout")
        kwargs["socket_timeout"] = None  # the watchdog below times the lane as a whole
        self._new_connection = partial(pool.connection_class, **kwargs)
        self._shas = {name: script.sha for name, script in scripts.items()}
        self._fallback = fallback
        self._conn: Any = None
        self._connecting: asyncio.Future[Any] | None = None
        self._waiting: collections.deque[tuple[asyncio.Future[list[Any]], int, list[Any]]]
        self._waiting = collections.deque()
        self._reader: asyncio.Task[None] | None = None
        self._answered = 0  # replies read so far: the watchdog's measure of progress
        self._watchdog: asyncio.TimerHandle | None = None

    async def execute(self, commands: list[Command]) -> list[Any]:
        try:
            replies = await self._send(commands)
        except (redis.exceptions.ConnectionError, OSError):
            return await self._fallback(commands)  # one more try, on the pool
        again = [
            n
            for n, reply in enumerate(replies)
            if isinstance(reply, redis.exceptions.NoScriptError)
        ]
        if again:  # the pool's scripts load themselves
            retried = await self._fallback([commands[n] for n in again])
            for n, reply in zip(again, retried, strict=True):
                replies[n] = reply
        for reply in replies:
            if isinstance(reply, redis.exceptions.ResponseError):
                raise reply
        return replies

    async def _send(self, commands: list[Command]) -> list[Any]:
        conn = self._conn
        if conn is None:
            conn = await self._connect()
        packed = conn.pack_commands([self._args(command) for command in commands])
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Any]] = loop.create_future()
        self._waiting.append((future, len(commands), []))
        try:  # written at once: no await comes before the write on a connected connection
            await conn.send_packed_command(packed, check_health=False)
        except BaseException as err:
            self._break(conn, err)
            if future.done() and not future.cancelled():
                future.exception()  # this caller raises err itself
            raise
        if self._reader is None:
            self._reader = loop.create_task(self._read(conn))
            if self._watchdog is None and self.timeout:
                self._watchdog = loop.call_later(self.timeout, self._check, self._answered)
        return await future

    def _args(self, command: Command) -> tuple[Any, ...]:
        if isinstance(command, Eval):
            sha = self._shas[command.script]
            return ("EVALSHA", sha, len(command.keys), *command.keys, *command.args)
        if isinstance(command, Fence):
            raise TypeError("a read is one command")
        return command

    async def _connect(self) -> Any:
        """The lane's connection, made once for all the reads that need it meanwhile."""
        if self._connecting is not None:
            return await asyncio.shield(self._connecting)
        connecting = self._connecting = asyncio.get_running_loop().create_future()
        conn: Any = self._new_connection()
        try:  # the handshake's replies have the socket timeout the lane's reads do not
            await asyncio.wait_for(conn.connect(), self.timeout)
        except BaseException as err:
            await conn.disconnect(nowait=True)
            shared = err  # what the reads waiting for this connection raise
            if isinstance(err, asyncio.TimeoutError):  # TimeoutError itself from Python 3.11
                shared = redis.exceptions.TimeoutError("Timeout connecting")
            elif isinstance(err, asyncio.CancelledError):  # they go through the pool
                shared = redis.exceptions.ConnectionError("connect cancelled")
            connecting.set_exception(shared)
            connecting.exception()  # the waiters raise it; nobody else looks
            if shared is err or isinstance(err, asyncio.CancelledError):
                raise
            raise shared from None
        else:
            self._conn = conn
            connecting.set_result(conn)
            return conn
        finally:
            self._connecting = None

    async def _read(self, conn: Any) -> None:
        try:
            while self._waiting and conn is self._conn:
                future, expected, replies = self._waiting[0]
                try:
                    reply = await conn.read_response()
                except redis.exceptions.ResponseError as err:
                    reply = err  # that command's error; the connection is in step
                self._answered += 1
                replies.append(reply)
                if len(replies) == expected:
                    self._waiting.popleft()
                    if not future.done():
                        future.set_result(replies)
        except BaseException as err:
            self._break(conn, err)
            if isinstance(err, asyncio.CancelledError):
                raise
        finally:
            if self._reader is asyncio.current_task():
                self._reader = None

    def _check(self, answered: int) -> None:
        self._watchdog = None
        if not self._waiting:
            return
        if self._answered == answered:  # no reply in a whole timeout
            self._break(self._conn, redis.exceptions.TimeoutError("Timeout reading"))
            return
        self._watchdog = asyncio.get_running_loop().call_later(
            self.timeout or 0.0, self._check, self._answered
        )

    def _break(self, conn: Any, err: BaseException) -> None:
        """Fail every read waiting on ``conn`` and let go of it (the next read connects)."""
        if conn is not self._conn or conn is None:
            return
        self._conn = None
        reader, self._reader = self._reader, None
        if reader is not None and reader is not asyncio.current_task():
            reader.cancel()
        if not isinstance(err, redis.exceptions.RedisError | OSError):
            err = redis.exceptions.ConnectionError(type(err).__name__)
        while self._waiting:
            future, _, _ = self._waiting.popleft()
            if not future.done():
                future.set_exception(err)
        task = asyncio.get_running_loop().create_task(conn.disconnect(nowait=True))
        _closing.add(task)
        task.add_done_callback(_closing.discard)

    async def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        conn, self._conn = self._conn, None
        if self._reader is not None:
            self._reader.cancel()
        for future, _, _ in self._waiting:
            if not future.done():
                future.set_exception(redis.exceptions.ConnectionError("closed"))
        self._waiting.clear()
        if conn is not None:
            await conn.disconnect()


_closing: set[asyncio.Task[Any]] = set()  # lanes' connections being closed


class _LoopClient:
    """One ``redis.asyncio`` client, its pool and its scripts: they belong to one event loop."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.pool = redis.asyncio.BlockingConnectionPool(**options)
        self.redis = redis.asyncio.Redis(connection_pool=self.pool)
        self.scripts = {name: self.redis.register_script(s) for name, s in SCRIPTS.items()}
        self.lane = _ReadLane(self.pool, self.scripts, self.execute)
        self.reads = _Reads(self.lane.execute)

    async def execute(self, batch: list[Command]) -> list[Any]:
        commands = [c for c in batch if not isinstance(c, Fence)]
        if len(commands) == 1:
            command = commands[0]
            if isinstance(command, Eval):
                return [await self.scripts[command.script](command.keys, command.args)]
            return [await self.redis.execute_command(*command)]  # type: ignore[no-untyped-call]
        async with self.redis.pipeline(transaction=False) as pipe:
            for command in commands:
                if isinstance(command, Eval):
                    script = self.scripts[command.script]
                    await script(command.keys, command.args, client=pipe)
                else:
                    pipe.execute_command(*command)
            replies: list[Any] = await pipe.execute()
            return replies

    async def close(self) -> None:
        await self.lane.close()
        await self.redis.aclose()
        await self.pool.disconnect()


def _cluster_options(options: dict[str, Any]) -> dict[str, Any]:
    """The async cluster client's arguments: it takes ``ssl=True``, not a connection class,
    and has no pool to wait on (:class:`_LoopCluster` waits instead)."""
    options = {k: v for k, v in options.items() if k != "timeout"}
    connection = options.pop("connection_class", None)
    if connection is not None and issubclass(connection, redis.asyncio.SSLConnection):
        options["ssl"] = True
    return options


class _LoopCluster:
    """One ``redis.asyncio.cluster.RedisCluster`` and its scripts, for one event loop.

    Its nodes' pools do not wait for a free connection (they fail at once), so a batch first
    takes one of ``max_connections`` slots here, waiting up to 5 s as the blocking pool of a
    single server does: a batch holds at most one connection per node.
    """

    def __init__(self, options: dict[str, Any]) -> None:
        self.redis = redis.asyncio.cluster.RedisCluster(**options)
        self.scripts = {name: self.redis.register_script(s) for name, s in SCRIPTS.items()}
        self.slots = asyncio.Semaphore(options["max_connections"])
        self.reads = _Reads(self.execute)

    async def execute(self, batch: list[Command]) -> list[Any]:
        try:
            await asyncio.wait_for(self.slots.acquire(), POOL_WAIT)
        except asyncio.TimeoutError:
            raise redis.exceptions.ConnectionError("no connection available") from None
        try:
            replies: list[Any] = []
            for stage in stages(batch):
                replies += await self._stage(stage)
            return replies
        finally:
            self.slots.release()

    async def _stage(self, stage: list[tuple[Any, ...] | Eval]) -> list[Any]:
        if len(stage) == 1:
            command = stage[0]
            if isinstance(command, Eval):  # EVALSHA, SCRIPT LOAD on NOSCRIPT
                return [await self.scripts[command.script](command.keys, command.args)]
            return [await self.redis.execute_command(*command)]
        async with self.redis.pipeline(transaction=False) as pipe:
            for command in stage:
                pipe.execute_command(
                    *(eval_command(command) if isinstance(command, Eval) else command)
                )
            replies: list[Any] = await pipe.execute()
            return replies

    async def close(self) -> None:
        await self.redis.aclose()


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
        cluster = is_cluster_url(url)
        self._cluster = cluster
        self._ops = RedisOps(prefix)
        self._repr = _describe(type(self).__name__, self._options, prefix, cluster)
        self._new_client: type[_LoopClient] | type[_LoopCluster] = _LoopClient
        if cluster:
            self._options = _cluster_options(self._options)
            self._new_client = _LoopCluster
            try:  # checks the options now; it connects only when first used
                redis.asyncio.cluster.RedisCluster(**self._options)
            except (TypeError, redis.exceptions.RedisClusterException) as err:
                name = re.search(r"'(\w+)'", str(err))
                raise ConfigurationError(
                    "OAUTH_VAULT_STORAGE_URL: unsupported Redis URL option "
                    f"{name[0] if name else ''} with redis+cluster://"
                ) from None
        self._clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, _LoopClient | _LoopCluster
        ] = weakref.WeakKeyDictionary()
        # the loop used last (weakly) and its client
        self._last: tuple[Callable[[], object], _LoopClient | _LoopCluster | None]
        self._last = (lambda: None, None)

    def __repr__(self) -> str:
        return self._repr

    def _client(self) -> _LoopClient | _LoopCluster:
        loop = asyncio.get_running_loop()
        last_loop, last = self._last
        if last_loop() is loop and last is not None:
            return last  # an app has one loop: no weak-keyed lookup per request
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = self._new_client(self._options)
        self._last = (weakref.ref(loop), client)
        return client

    async def _run(self, op: Op[T]) -> T:
        client = self._client()
        with mapped_errors():
            replies: Any = None
            try:
                while True:
                    replies = await client.execute(op.send(replies))
            except StopIteration as done:
                result: T = done.value
                return result

    async def _read(self, op: Op[T]) -> T:
        """An operation of one read command (see :class:`_Reads`)."""
        (command,) = next(op)
        if isinstance(command, Fence):
            raise TypeError("a read is one command")
        reads = self._client().reads
        try:  # mapped_errors() inline: a context manager per read costs more than the read
            reply = await reads.read(command)
        except REDIS_ERRORS as err:
            raise unavailable(err) from None
        try:
            op.send([reply])
        except StopIteration as done:
            result: T = done.value
            return result
        raise AssertionError("a read is one command")

    async def setup(self) -> None:
        await self._run(self._ops.setup())

    async def close(self) -> None:
        self._last = (lambda: None, None)
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            with mapped_errors():
                await client.close()

    async def get_credential(self, key: CredentialKey) -> StoredCredential | None:
        return await self._read(self._ops.get_credential(key))

    async def save_credential(self, record: StoredCredential, expected_version: int) -> bool:
        return await self._run(self._ops.save_credential(record, expected_version))

    async def save_credential_releasing(
        self, record: StoredCredential, expected_version: int, owner: str
    ) -> bool:
        return await self._run(self._ops.save_credential(record, expected_version, owner))

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

    async def list_identities(self, connection_id: str, user_id: str) -> list[str]:
        return await self._run(self._ops.list_identities(connection_id, user_id))

    async def put_login_state(self, state_hash: str, data: bytes, expires_at: float) -> None:
        await self._run(self._ops.put_login_state(state_hash, data, expires_at))

    async def take_login_state(self, state_hash: str, now: float) -> bytes | None:
        return await self._run(self._ops.take_login_state(state_hash, now))

    async def create_session(self, session_hash: str, user_id: str, expires_at: float) -> None:
        await self._run(self._ops.create_session(session_hash, user_id, expires_at))

    async def get_session(self, session_hash: str, now: float) -> str | None:
        return await self._read(self._ops.get_session(session_hash, now))

    async def get_session_credential(
        self, session_hash: str, now: float, connection_id: str, account: str = "default"
    ) -> tuple[str, StoredCredential | None] | None:
        if self._cluster:  # the two keys are in different slots: two reads
            user_id = await self.get_session(session_hash, now)
            if user_id is None:
                return None
            return user_id, await self.get_credential(
                CredentialKey(connection_id, user_id, account)
            )
        return await self._read(
            self._ops.get_session_credential(session_hash, now, connection_id, account)
        )

    async def delete_session(self, session_hash: str) -> None:
        await self._run(self._ops.delete_session(session_hash))

    async def put_record(
        self, kind: str, name: str, data: bytes, *, only_if_absent: bool = False
    ) -> bool:
        return await self._run(self._ops.put_record(kind, name, data, only_if_absent))

    async def get_record(self, kind: str, name: str) -> bytes | None:
        return await self._read(self._ops.get_record(kind, name))

    async def delete_record(self, kind: str, name: str) -> bool:
        return await self._run(self._ops.delete_record(kind, name))

    async def list_records(self, kind: str) -> list[tuple[str, bytes]]:
        return await self._run(self._ops.list_records(kind))

    async def append_events(self, events: Sequence[tuple[float, bytes]]) -> None:
        await self._run(self._ops.append_events(events))

    async def read_events(self, since: float, limit: int) -> list[tuple[float, bytes]]:
        return await self._run(self._ops.read_events(since, limit))
