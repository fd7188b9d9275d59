"""Native async PostgreSQL storage: SQLAlchemy's asyncio engine over psycopg 3.

The statements are :class:`~oauth_vault_mw.storage._sql_statements.SQLStatements`, shared
with the sync :class:`~oauth_vault_mw.storage.sql.SQLStorage`; this module only awaits them.
SQLite has no async path of its own: :func:`~oauth_vault_mw.storage.async_storage_from_url`
wraps the sync storage (reads inline, writes in a thread).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from sqlalchemy import event, exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from ..core.errors import ConfigurationError, StorageUnavailable
from ..core.model import CredentialKey, StoredCredential
from ._sql_statements import (
    CREDENTIAL_SQL,
    CREDENTIALS_BATCH_SQL,
    RECORD_SQL,
    RECORDS_BATCH_SQL,
    SESSION_CREDENTIAL_SQL,
    SESSION_CREDENTIALS_BATCH_SQL,
    SESSION_SQL,
    SESSIONS_BATCH_SQL,
    Op,
    SQLStatements,
    credential_from_row,
    map_errors,
    psycopg_sql,
    session_credential_row,
)
from .sql import driver_missing, postgres_engine_options, upgrade_schema

__all__ = ["AsyncSQLStorage"]

T = TypeVar("T")


READ_CONNECTIONS = 2
"""Per event loop: at most this many connections (and half of ``pool_size``) carry the
per-request reads. With 500 users read in turns at 50 connections, one run each: 5 read
connections ~10,800 req/s, 2 ~12,100, 1 ~12,700 (2 keeps reads of one kind from waiting
behind a batch of another); client CPU per batched read 15-16 us with 5, 12.8 us with 2."""


@dataclass(frozen=True, eq=False)
class _Read:
    """A per-request read: its statement for one key (psycopg's placeholders) and for many
    (one array per column of the key; rows led by the key's position, see
    ``CREDENTIALS_BATCH_SQL``)."""

    single: str
    batch: str


_CREDENTIAL = _Read(psycopg_sql(CREDENTIAL_SQL), CREDENTIALS_BATCH_SQL)
_SESSION = _Read(psycopg_sql(SESSION_SQL), SESSIONS_BATCH_SQL)
_RECORD = _Read(psycopg_sql(RECORD_SQL), RECORDS_BATCH_SQL)
_SESSION_CREDENTIAL = _Read(psycopg_sql(SESSION_CREDENTIAL_SQL), SESSION_CREDENTIALS_BATCH_SQL)


class _Batch:
    """Reads of one statement waiting for a read connection together: their futures by key
    (reads of one key share the row)."""

    __slots__ = ("waiting",)

    def __init__(self) -> None:
        self.waiting: dict[tuple[str, ...], list[asyncio.Future[Sequence[Any] | None]]] = {}


HELD_RECYCLE = 1800.0  # s: a read connection is replaced after this long (as pool_recycle)


def _finish(conn: Any) -> None:
    """Close a psycopg connection's socket without awaiting (no loop to await on, or none
    left to wait for)."""
    with contextlib.suppress(Exception):
        conn.pgconn.finish()


class _ReadConnections:
    """One event loop's psycopg connections for the per-request reads, next to the loop's
    SQLAlchemy pool (whose checkout, check-in and result handling cost more than the read):
    at most ``limit`` of them, opened when needed, each used by one read at a time. When all
    are busy, a read waits for the next one handed back (first come, first served): under
    load that is cheaper than a SQLAlchemy checkout, and keeps the pool for the writes.
    """

    __slots__ = (
        "batches",
        "closing",
        "connect",
        "idle",
        "limit",
        "opened",
        "owned",
        "tasks",
        "waiters",
    )

    def __init__(self, limit: int, connect: Callable[[], Awaitable[Any]]) -> None:
        self.limit = limit
        self.connect = connect
        self.opened = 0
        self.idle: list[tuple[Any, float]] = []  # (psycopg connection, opened at: monotonic)
        self.owned: set[Any] = set()  # every open one: idle, in a read, or handed to a waiter
        # reads waiting for a connection: given one, or None (open a new one: one was dropped)
        self.waiters: collections.deque[asyncio.Future[tuple[Any, float] | None]]
        self.waiters = collections.deque()
        self.batches: dict[_Read, _Batch] = {}  # the reads waiting together, by statement
        self.tasks: set[asyncio.Task[None]] = set()  # the batches' reads under way
        self.closing = False

    async def take(self, wait: float) -> tuple[Any, float]:
        """An idle connection, a new one while fewer than ``limit`` are open, else the next
        one handed back within ``wait`` seconds (``TimeoutError`` after)."""
        while True:
            while self.idle:
                conn, opened_at = self.idle.pop()
                if time.monotonic() - opened_at < HELD_RECYCLE and not conn.closed:
                    return conn, opened_at
                await self.drop(conn)
            if self.opened < self.limit:
                self.opened += 1
                try:
                    conn = await self.connect()
                except BaseException:
                    self.opened -= 1
                    self._wake(None)
                    raise
                self.owned.add(conn)
                return conn, time.monotonic()
            waiter: asyncio.Future[tuple[Any, float] | None]
            waiter = asyncio.get_running_loop().create_future()
            self.waiters.append(waiter)
            try:
                handed = await asyncio.wait_for(asyncio.shield(waiter), wait)
            except BaseException:
                late = waiter.result() if waiter.done() and not waiter.cancelled() else None
                if late is not None:
                    self.give(*late)  # handed over as this read gave up: pass it on
                else:
                    waiter.cancel()
                    with contextlib.suppress(ValueError):
                        self.waiters.remove(waiter)
                raise
            if handed is not None:
                return handed

    def give(self, conn: Any, opened_at: float) -> None:
        """A read is done with ``conn``: to the first waiting read, else idle (closed if the
        storage was closed while the read ran)."""
        if self.closing:
            self.opened -= 1
            self.owned.discard(conn)
            _finish(conn)
        elif not self._wake((conn, opened_at)):
            self.idle.append((conn, opened_at))

    def _wake(self, handed: tuple[Any, float] | None) -> bool:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(handed)
                return True
        return False

    async def drop(self, conn: Any) -> None:
        self.opened -= 1
        self.owned.discard(conn)
        self._wake(None)  # a waiting read may open a connection in its place
        try:
            await conn.close()
        except BaseException as err:  # failed or cancelled: close the socket at least
            _finish(conn)
            if not isinstance(err, Exception):
                raise

    async def close(self) -> None:
        """Close the idle connections, end the batches under way; a read still running
        closes its connection when it is done (:meth:`give`)."""
        self.closing = True
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await self.close_idle()

    async def close_idle(self) -> None:
        idle, self.idle = self.idle, []
        for conn, _at in idle:
            await self.drop(conn)

    def abandon(self) -> None:
        """Close the sockets of a closed loop's connections (nothing there can be awaited):
        idle ones, and any a read or a waiter still held when the loop stopped."""
        for conn in self.owned:
            _finish(conn)
        self.owned.clear()
        self.idle.clear()
        self.waiters.clear()
        self.batches.clear()
        self.opened = 0


class AsyncSQLStorage:
    """Async PostgreSQL storage implementing :class:`~oauth_vault_mw.storage.AsyncStorage`.

    ``AsyncSQLStorage("postgresql://user:pw@host/db", pool_size=10, pool_timeout=10)``: at
    most ``pool_size`` connections per event loop, half of them (rounded down) for the
    per-request reads (credential, session, service records) on psycopg directly, the rest in
    SQLAlchemy's pool for everything else. Call :meth:`setup` once (the vault does at
    start-up).
    """

    shared_across_processes = True

    def __init__(
        self, url: str, *, pool_size: int | None = None, pool_timeout: float | None = None
    ) -> None:
        if not url.lower().startswith("postgresql"):
            raise ConfigurationError(
                "OAUTH_VAULT_STORAGE_URL: AsyncSQLStorage is for postgresql:// URLs "
                "(use async_storage_from_url for the others)"
            )
        self.url = url
        self._url, self._options = postgres_engine_options(url, pool_size, pool_timeout)
        # Half the connections, at most READ_CONNECTIONS, serve the per-request reads directly
        # (_ReadConnections), the rest are SQLAlchemy's pool for everything else: together
        # never more than pool_size. Few read connections make big batches: each round trip
        # costs the app's CPU more than the reads in it.
        size = int(self._options["pool_size"])
        self._read_limit = min(size // 2, READ_CONNECTIONS)
        self._options["pool_size"] = size - self._read_limit
        self._read_wait = float(self._options["pool_timeout"])  # as long as a pool checkout
        self._opened: dict[AsyncEngine, weakref.WeakSet[Any]] = {}
        first = self._new_engine()  # a bad URL or a missing driver fails here, at start-up
        self._dialect = first.dialect.name
        self._sql = SQLStatements(self._dialect)
        self._unclaimed: AsyncEngine | None = first
        self._engines: dict[asyncio.AbstractEventLoop, AsyncEngine] = {}
        self._reads: dict[asyncio.AbstractEventLoop, _ReadConnections] = {}
        _args, kwargs = first.dialect.create_connect_args(first.url)
        kwargs.pop("context", None)  # SQLAlchemy's adapters: the reads use psycopg's own
        self._read_args: dict[str, Any] = {**kwargs, **self._options["connect_args"]}

    def __repr__(self) -> str:
        return f"AsyncSQLStorage(dialect={self._dialect!r})"

    def _new_engine(self) -> AsyncEngine:
        try:
            engine = create_async_engine(self._url, **self._options)
        except (exc.ArgumentError, exc.InvalidRequestError) as err:  # e.g. a sync-only driver
            raise ConfigurationError(f"OAUTH_VAULT_STORAGE_URL: {err}") from None
        except ImportError as err:
            raise driver_missing(err) from None
        # Every psycopg connection the engine's pool opens, to close the sockets of a loop
        # that has stopped: its connections cannot be awaited any more (see _retire).
        opened: weakref.WeakSet[Any] = weakref.WeakSet()

        def remember(dbapi_connection: Any, _record: Any) -> None:
            opened.add(dbapi_connection.driver_connection)

        def invalidated(dbapi_connection: Any, _record: Any, _error: Any) -> None:
            # Thrown away (a lost server, a failed statement): its graceful close may fail on
            # a dead socket and leave it to the garbage collector; close the socket first.
            if dbapi_connection is not None:
                _finish(dbapi_connection.driver_connection)

        event.listen(engine.sync_engine, "connect", remember)
        event.listen(engine.sync_engine, "invalidate", invalidated)
        self._opened[engine] = opened
        return engine

    def _retire(self, engine: AsyncEngine) -> None:
        """Let go of the engine of a loop that has stopped: close its connections' sockets
        (nothing of that loop can be awaited) and drop its pool."""
        for conn in list(self._opened.pop(engine, ())):
            _finish(conn)
        with contextlib.suppress(Exception):
            engine.sync_engine.dispose(close=False)

    @property
    def engine(self) -> AsyncEngine:
        """The running event loop's engine: pooled connections belong to one loop, so each
        loop that uses the storage gets its own pool (an app has one; test clients may start
        several). Engines of loops that have closed are disposed of when a new one is made."""
        loop = asyncio.get_running_loop()
        engine = self._engines.get(loop)
        if engine is None:
            for old_loop in [old for old in self._engines if old.is_closed()]:
                self._retire(self._engines.pop(old_loop))
                reads = self._reads.pop(old_loop, None)
                if reads is not None:
                    reads.abandon()
            engine = self._unclaimed or self._new_engine()
            self._unclaimed = None
            self._engines[loop] = engine
        return engine

    async def _run(self, op: Op[T]) -> T:
        engine = self.engine
        with map_errors():
            conn: AsyncConnection
            if op.write:
                async with engine.begin() as conn:
                    return op.result(await op.on(conn))
            async with engine.connect() as conn:
                return op.result(await op.on(conn))

    async def setup(self) -> None:
        """Create or upgrade the schema; see :meth:`SQLStorage.setup
        <oauth_vault_mw.storage.sql.SQLStorage.setup>`."""
        with map_errors():
            async with self.engine.connect() as conn:
                await conn.run_sync(upgrade_schema)

    async def close(self) -> None:
        """Close every pooled connection (of every loop that used the storage)."""
        running = asyncio.get_running_loop()
        for loop, reads in list(self._reads.items()):
            if loop is running:
                await reads.close()
            elif loop.is_closed():
                reads.abandon()
            else:  # a loop running in another thread closes its own
                asyncio.run_coroutine_threadsafe(reads.close(), loop)
        self._reads = {}
        engines, self._engines = self._engines, {}
        if self._unclaimed is not None:
            self._retire(self._unclaimed)
            self._unclaimed = None
        for loop, engine in engines.items():
            if loop.is_closed():
                self._retire(engine)  # nothing of a stopped loop can be awaited
                continue
            opened = self._opened.pop(engine, ())
            if loop is running:
                with contextlib.suppress(Exception):
                    await engine.dispose()
                for conn in list(opened):  # any the pool no longer held (checked out, lost)
                    if not conn.closed:
                        _finish(conn)
            else:
                asyncio.run_coroutine_threadsafe(engine.dispose(), loop)

    # -- credentials ----------------------------------------------------------------------

    async def _fetchone(self, read: _Read, params: tuple[str, ...]) -> Sequence[Any] | None:
        """The per-request reads: fixed SQL on one of the loop's read connections (see
        :class:`_ReadConnections`), skipping SQLAlchemy's checkout, statement compilation and
        result processing. When every read connection is busy, the reads of one statement
        that arrive meanwhile wait together and go in one round trip (:class:`_Batch`)."""
        loop = asyncio.get_running_loop()
        reads = self._reads.get(loop)
        if reads is None:  # the loop's first read (the engine lets go of closed loops' reads)
            engine = self.engine
            if self._read_limit == 0:
                return await self._fetchone_once(engine, read.single, params)
            reads = self._reads[loop] = _ReadConnections(self._read_limit, self._connect)
        batch = reads.batches.get(read)
        if batch is None:
            if reads.idle or reads.opened < reads.limit:

                async def one(conn: Any) -> tuple[Any, ...] | None:
                    cursor = await conn.execute(read.single, params)
                    row: tuple[Any, ...] | None = await cursor.fetchone()
                    return row

                return await self._on_read_connection(reads, one)
            batch = reads.batches[read] = _Batch()
            task = loop.create_task(self._read_batch(reads, read, batch))
            reads.tasks.add(task)
            task.add_done_callback(reads.tasks.discard)
        future: asyncio.Future[Sequence[Any] | None] = loop.create_future()
        batch.waiting.setdefault(params, []).append(future)
        return await future

    async def _read_batch(self, reads: _ReadConnections, read: _Read, batch: _Batch) -> None:
        """Read every key of ``batch`` on the next free read connection; the batch takes
        no more keys once it has one (later reads start the next batch)."""
        keys: list[tuple[str, ...]] = []

        def close() -> None:
            if reads.batches.get(read) is batch:
                del reads.batches[read]

        async def run(conn: Any) -> dict[tuple[str, ...], Sequence[Any]]:
            if not keys:
                close()
                keys.extend(batch.waiting)
            if len(keys) == 1:
                cursor = await conn.execute(read.single, keys[0])
                row = await cursor.fetchone()
                return {} if row is None else {keys[0]: row}
            cursor = await conn.execute(
                read.batch, [list(column) for column in zip(*keys, strict=True)]
            )
            return {keys[row[0] - 1]: row[1:] for row in await cursor.fetchall()}

        try:
            found = await self._on_read_connection(reads, run)
        except BaseException as err:
            close()
            for futures in batch.waiting.values():
                for future in futures:
                    if future.done():
                        continue
                    if isinstance(err, asyncio.CancelledError):
                        future.cancel()
                    elif isinstance(err, StorageUnavailable):
                        future.set_exception(StorageUnavailable(str(err)))
                    else:
                        future.set_exception(err)
            if isinstance(err, asyncio.CancelledError):
                raise
            return
        for key, futures in batch.waiting.items():
            row = found.get(key)
            for future in futures:
                if not future.done():
                    future.set_result(row)

    async def _on_read_connection(
        self, reads: _ReadConnections, run: Callable[[Any], Awaitable[T]]
    ) -> T:
        """``run`` on one of ``reads`` (waiting for one when they are all busy)."""
        for attempt in (1, 2):
            try:
                conn, opened_at = await reads.take(self._read_wait)
            except psycopg.Error as err:
                raise StorageUnavailable(f"storage error: {type(err).__name__}") from None
            except TimeoutError:
                raise StorageUnavailable("storage error: no read connection in time") from None
            try:
                result = await run(conn)
            except BaseException as err:
                # Failed or cancelled mid-read: the connection's state is unknown; close it.
                await asyncio.shield(reads.drop(conn))
                lost = isinstance(err, psycopg.OperationalError)
                if lost and attempt == 1:
                    # A lost connection (a database restart, an idle timeout): the idle ones
                    # are likely gone too. The read is a SELECT: once more on a new
                    # connection, which fails as StorageUnavailable if the database is down.
                    await reads.close_idle()
                    continue
                if isinstance(err, psycopg.Error):
                    raise StorageUnavailable(f"storage error: {type(err).__name__}") from None
                raise
            reads.give(conn, opened_at)
            return result
        raise AssertionError("unreachable")

    async def _connect(self) -> Any:
        return await psycopg.AsyncConnection.connect(autocommit=True, **self._read_args)

    async def _fetchone_once(
        self, engine: AsyncEngine, sql: str, params: tuple[str, ...]
    ) -> tuple[Any, ...] | None:
        """One read on a connection checked out for it alone."""
        try:
            with map_errors():
                async with engine.connect() as conn:
                    raw = await conn.get_raw_connection()
                    driver: Any = raw.driver_connection
                    cursor = await driver.execute(sql, params)
                    row: tuple[Any, ...] | None = await cursor.fetchone()
                    return row
        except psycopg.Error as err:
            raise StorageUnavailable(f"storage error: {type(err).__name__}") from None

    async def get_credential(self, key: CredentialKey) -> StoredCredential | None:
        found = await self._fetchone(_CREDENTIAL, key.parts())
        return None if found is None else credential_from_row(key, found)

    async def save_credential(self, record: StoredCredential, expected_version: int) -> bool:
        return await self._run(self._sql.save_credential(record, expected_version))

    async def save_credential_releasing(
        self, record: StoredCredential, expected_version: int, owner: str
    ) -> bool:
        return await self._run(self._sql.save_credential_releasing(record, expected_version, owner))

    async def delete_credential(self, key: CredentialKey) -> bool:
        return await self._run(self._sql.delete_credential(key))

    async def list_credentials(self, user_id: str) -> list[StoredCredential]:
        return await self._run(self._sql.list_credentials(user_id))

    async def all_credentials(self) -> list[StoredCredential]:
        return await self._run(self._sql.all_credentials())

    async def scan_credentials(
        self,
        *,
        after: CredentialKey | None,
        limit: int,
        expiring_before: float | None = None,
    ) -> list[StoredCredential]:
        return await self._run(self._sql.scan_credentials(after, limit, expiring_before))

    async def acquire_lease(self, key: CredentialKey, owner: str, ttl: float, now: float) -> bool:
        return await self._run(self._sql.acquire_lease(key, owner, ttl, now))

    async def release_lease(self, key: CredentialKey, owner: str) -> None:
        await self._run(self._sql.release_lease(key, owner))

    # -- identities -----------------------------------------------------------------------

    async def get_identity(self, connection_id: str, subject: str) -> str | None:
        return await self._run(self._sql.get_identity(connection_id, subject))

    async def link_identity(self, connection_id: str, subject: str, user_id: str) -> str:
        while True:
            if await self._run(self._sql.insert_identity(connection_id, subject, user_id)):
                return user_id
            found = await self.get_identity(connection_id, subject)
            if found is not None:  # else unlinked in between: try again
                return found

    async def unlink_identities(self, connection_id: str, user_id: str) -> None:
        await self._run(self._sql.unlink_identities(connection_id, user_id))

    async def list_identities(self, connection_id: str, user_id: str) -> list[str]:
        return await self._run(self._sql.list_identities(connection_id, user_id))

    # -- login states and sessions --------------------------------------------------------

    async def put_login_state(self, state_hash: str, data: bytes, expires_at: float) -> None:
        await self._run(self._sql.put_login_state(state_hash, data, expires_at))

    async def take_login_state(self, state_hash: str, now: float) -> bytes | None:
        return await self._run(self._sql.take_login_state(state_hash, now))

    async def create_session(self, session_hash: str, user_id: str, expires_at: float) -> None:
        await self._run(self._sql.create_session(session_hash, user_id, expires_at))

    async def get_session(self, session_hash: str, now: float) -> str | None:
        found = await self._fetchone(_SESSION, (session_hash,))
        if found is None or found[1] <= now:
            return None
        return str(found[0])

    async def get_session_credential(
        self, session_hash: str, now: float, connection_id: str, account: str = "default"
    ) -> tuple[str, StoredCredential | None] | None:
        row = await self._fetchone(_SESSION_CREDENTIAL, (connection_id, account, session_hash))
        return session_credential_row(row, now, connection_id, account)

    async def delete_session(self, session_hash: str) -> None:
        await self._run(self._sql.delete_session(session_hash))

    # -- records and events ---------------------------------------------------------------

    async def put_record(
        self, kind: str, name: str, data: bytes, *, only_if_absent: bool = False
    ) -> bool:
        return await self._run(self._sql.put_record(kind, name, data, only_if_absent))

    async def get_record(self, kind: str, name: str) -> bytes | None:
        found = await self._fetchone(_RECORD, (kind, name))
        return None if found is None else bytes(found[0])

    async def delete_record(self, kind: str, name: str) -> bool:
        return await self._run(self._sql.delete_record(kind, name))

    async def list_records(self, kind: str) -> list[tuple[str, bytes]]:
        return await self._run(self._sql.list_records(kind))

    async def append_events(self, events: Sequence[tuple[float, bytes]]) -> None:
        if events:
            await self._run(self._sql.append_events(events))

    async def read_events(self, since: float, limit: int) -> list[tuple[float, bytes]]:
        return await self._run(self._sql.read_events(since, limit))
