"""SQL storage on SQLAlchemy Core: SQLite (the embedded default, WAL) and PostgreSQL (psycopg 3).

Every storage step is one parameterised statement, defined once in
:class:`~oauth_vault_mw.storage._sql_statements.SQLStatements` and run by :class:`SQLStorage`
here and by :class:`~oauth_vault_mw.storage.sql_async.AsyncSQLStorage` (PostgreSQL through
asyncio). Driver, pool and connection errors become :class:`StorageUnavailable`.

The schema is versioned by the Alembic migrations in ``oauth_vault_mw/storage/migrations``;
:meth:`SQLStorage.setup` (and ``oauth-vault db init|upgrade``) applies them. A host app that
runs its own Alembic finds the tables in :data:`metadata` (see docs/storage.md).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal, TypeVar

try:
    import sqlalchemy as sa
    from sqlalchemy import event, exc
except ImportError as _err:  # pragma: no cover - depends on the environment
    raise ImportError("SQL storage needs SQLAlchemy: pip install 'oauth-vault-mw[sql]'") from _err

from ..core.errors import ConfigurationError, StorageUnavailable
from ..core.model import CredentialKey, StoredCredential
from ._protocol import WouldWait
from ._sql_statements import (
    CREDENTIAL_SQL,
    RECORD_SQL,
    SESSION_CREDENTIAL_SQL,
    SESSION_SQL,
    Op,
    SQLStatements,
    credential_from_row,
    map_errors,
    session_credential_row,
)
from ._sql_statements import credentials as credentials
from ._sql_statements import events as events
from ._sql_statements import identities as identities
from ._sql_statements import login_states as login_states
from ._sql_statements import meta as meta
from ._sql_statements import metadata as metadata
from ._sql_statements import records as records
from ._sql_statements import sessions as sessions

__all__ = ["SQLStorage", "metadata", "postgres_engine_options", "upgrade_schema"]

T = TypeVar("T")


# -- engines --------------------------------------------------------------------------------

DEFAULT_POOL_SIZE = 10
DEFAULT_POOL_TIMEOUT = 10.0
CONNECT_TIMEOUT = 5


def _query_number(url: sa.URL, name: str) -> float | None:
    raw = url.query.get(name)
    if raw is None:
        return None
    try:
        value = float(raw if isinstance(raw, str) else raw[-1])
    except ValueError:
        value = 0.0
    if value <= 0:
        raise ConfigurationError(f"OAUTH_VAULT_STORAGE_URL: {name} must be a positive number")
    return value


_PREPARE_THRESHOLD = "prepare_threshold"


def _prepare_threshold(url: sa.URL) -> tuple[bool, int | None]:
    """``?prepare_threshold=`` as psycopg takes it: ``none`` (never prepare: PgBouncer's
    transaction pooling before 1.21) or a count of executions; (False, None) when absent."""
    raw = url.query.get(_PREPARE_THRESHOLD)
    if raw is None:
        return False, None
    value = (raw if isinstance(raw, str) else raw[-1]).strip().lower()
    if value in ("none", "null", "off"):
        return True, None
    if value.isdigit():
        return True, int(value)
    raise ConfigurationError(
        "OAUTH_VAULT_STORAGE_URL: prepare_threshold must be none or a whole number"
    )


def postgres_engine_options(
    url: str, pool_size: int | None, pool_timeout: float | None
) -> tuple[sa.URL, dict[str, Any]]:
    """The engine URL and arguments for PostgreSQL, for the sync and the async engine alike.

    ``postgresql://`` means psycopg 3 (sync and asyncio). ``pool_size`` and ``pool_timeout``
    come from the arguments, else from the URL's query (``?pool_size=20&pool_timeout=5``),
    else 10 connections and 10 s. The pool never grows past ``pool_size``; a request that waits
    longer than ``pool_timeout`` for a connection gets :class:`StorageUnavailable`.
    ``?prepare_threshold=none`` turns off psycopg's server-side prepared statements (behind a
    pooler in transaction mode that does not keep them, such as PgBouncer before 1.21).
    """
    try:
        parsed = sa.make_url(url)
    except exc.ArgumentError as err:
        raise ConfigurationError(f"OAUTH_VAULT_STORAGE_URL: {err}") from None
    size = pool_size or int(_query_number(parsed, "pool_size") or DEFAULT_POOL_SIZE)
    timeout = pool_timeout or _query_number(parsed, "pool_timeout") or DEFAULT_POOL_TIMEOUT
    given, threshold = _prepare_threshold(parsed)
    parsed = parsed.difference_update_query(["pool_size", "pool_timeout", _PREPARE_THRESHOLD])
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    connect_args: dict[str, Any] = {}
    if "connect_timeout" not in parsed.query:
        connect_args["connect_timeout"] = CONNECT_TIMEOUT
    if given:
        connect_args[_PREPARE_THRESHOLD] = threshold
    options: dict[str, Any] = {
        "pool_size": size,
        "max_overflow": 0,
        "pool_timeout": timeout,
        # no pre-ping (a round trip per checkout): a connection found dead fails one call
        # with StorageUnavailable and SQLAlchemy then recycles the whole pool
        "pool_pre_ping": False,
        "pool_recycle": 1800,
        # one statement per step, each atomic: no BEGIN/COMMIT round trips; migrations
        # switch their connection back to READ COMMITTED
        "isolation_level": "AUTOCOMMIT",
        "connect_args": connect_args,
    }
    return parsed, options


_WAL_WAIT = 10.0


def _wal(cur: sqlite3.Cursor) -> None:
    """Switch the database to WAL (kept in the file). The switch may fail at once with
    "database is locked", without the busy timeout, while another connection holds a lock:
    processes opening a new database together (``setup()`` at start-up) retry for a while."""
    deadline = time.monotonic() + _WAL_WAIT
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


def _sqlite_engine(url: str) -> sa.Engine:
    engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 10})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        _wal(cur)
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=10000")
        cur.close()

    return engine


def _engine(url: str, pool_size: int | None, pool_timeout: float | None) -> sa.Engine:
    if url.lower().startswith("sqlite"):
        return _sqlite_engine(url)
    parsed, options = postgres_engine_options(url, pool_size, pool_timeout)
    return sa.create_engine(parsed, **options)


def driver_missing(err: ImportError) -> ConfigurationError:
    return ConfigurationError(
        f"OAUTH_VAULT_STORAGE_URL: the database driver is not installed ({err.name}); "
        "for PostgreSQL: pip install 'oauth-vault-mw[postgresql]'"
    )


def upgrade_schema(conn: sa.Connection) -> None:
    """Apply the migrations on a fresh connection, one process at a time.

    SQLite: in a ``BEGIN IMMEDIATE`` transaction (the database's write lock). PostgreSQL: in
    one transaction holding an advisory lock (see :mod:`~oauth_vault_mw.storage.migrations`).
    """
    from . import migrations

    if conn.dialect.name == "sqlite":
        conn.execution_options(isolation_level="AUTOCOMMIT")  # we issue BEGIN ourselves
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            migrations.upgrade(conn)
        except BaseException:
            with contextlib.suppress(exc.DBAPIError):
                conn.exec_driver_sql("ROLLBACK")
            raise
        conn.exec_driver_sql("COMMIT")
        return
    conn.execution_options(isolation_level="READ COMMITTED")
    with conn.begin():
        migrations.upgrade(conn)


# -- the SQLite fast read path ------------------------------------------------------------


DATA_VERSION_SQL = "PRAGMA data_version"
READ_CACHE_SIZE = 256
"""Rows each thread's read connection keeps (:class:`_SQLiteReads`); past it, they are dropped
and the cache fills again."""


def _versioned(sql: str) -> str:
    """``sql`` (a ``SELECT``) with the connection's ``data_version`` as its first column,
    read in the same statement and so of the same snapshot as the row."""
    assert sql.startswith("SELECT ")
    head = "SELECT (SELECT data_version FROM pragma_data_version), "  # sql: our constants
    return head + sql[len("SELECT ") :]


def _unavailable(err: sqlite3.Error) -> StorageUnavailable:
    return StorageUnavailable(f"storage error: {type(err).__name__}")


class _ThreadConnections:
    """A plain ``sqlite3`` connection per thread on ``path`` (the engine's busy timeout),
    each set up by :meth:`_setup` when the thread first asks; :meth:`close` closes them all."""

    # sqlite3's default mode: it begins (deferred) transactions itself, before a write
    isolation_level: Literal["DEFERRED", "IMMEDIATE", "EXCLUSIVE"] | None = "DEFERRED"
    busy_timeout_ms = 10_000  # as the engine's connections: wait that long for a lock

    def __init__(self, path: str) -> None:
        self.path = path
        self._local = self._new_local()
        self._lock = threading.Lock()
        self._opened: list[sqlite3.Connection] = []

    def _new_local(self) -> threading.local:
        return threading.local()

    def _setup(self, conn: sqlite3.Connection) -> None:
        """Set up a new connection (pragmas)."""

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path,
                timeout=self.busy_timeout_ms / 1000,
                check_same_thread=False,
                isolation_level=self.isolation_level,
            )
            conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
            self._setup(conn)
            self._local.conn = conn
            with self._lock:
                self._opened.append(conn)
        return conn

    def close(self) -> None:
        with self._lock:
            for conn in self._opened:
                conn.close()
            self._opened.clear()
        self._local = self._new_local()

    def discard(self, conn: sqlite3.Connection) -> None:
        """Close this thread's ``conn`` (which rolls back what it left open) and forget it:
        the thread's next call opens another."""
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None
        with self._lock:
            if conn in self._opened:
                self._opened.remove(conn)
        with contextlib.suppress(sqlite3.Error):
            conn.close()


class _ThreadReads(threading.local):
    """One thread's read connection and the rows it read at ``version``."""

    conn: sqlite3.Connection | None = None
    version: int = -1
    rows: dict[tuple[str, tuple[str, ...]], tuple[Any, ...]]
    built: dict[int, tuple[tuple[Any, ...], Any]]  # id(row) -> (row, what was built of it)

    def __init__(self) -> None:
        self.rows = {}
        self.built = {}


class _SQLiteReads(_ThreadConnections):
    """The reads on every request (credential, session; access key and client on the
    service route), on a plain ``sqlite3`` connection per thread.

    A SQLAlchemy checkout, statement cache and result proxy cost ~40 us per read; a held
    connection with fixed SQL ~5 us. In WAL mode readers never wait for writers, and each
    SELECT sees the last committed write. Writes stay on SQLAlchemy.

    Each thread keeps the rows its connection read, valid while SQLite's ``data_version``
    of that connection is unchanged: it changes whenever any other connection, in this
    process or another, commits to the database (this connection never writes). A row is
    read with the version of its snapshot (one statement); a row read again is answered
    from the cache after ``PRAGMA data_version`` (one read transaction, no table lookup)
    shows nothing was committed since, so a cached answer is the one the query would give.
    The first commit seen drops every cached row. Rows not found are not kept.
    """

    _local: _ThreadReads

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self._versioned: dict[str, str] = {}
        self.cached = True

    def _new_local(self) -> _ThreadReads:
        return _ThreadReads()

    def _setup(self, conn: sqlite3.Connection) -> None:
        try:  # a SQLite built without the pragma functions reads without the cache
            conn.execute("SELECT data_version FROM pragma_data_version").fetchone()
        except sqlite3.DatabaseError:
            self.cached = False

    def one(self, sql: str, params: tuple[str, ...]) -> tuple[Any, ...] | None:
        local = self._local
        key = (sql, params)
        try:
            conn = self._conn()
            if not self.cached:
                plain: tuple[Any, ...] | None = conn.execute(sql, params).fetchone()
                return plain
            if key in local.rows:
                version = conn.execute(DATA_VERSION_SQL).fetchone()[0]
                if version == local.version:
                    return local.rows[key]
            versioned = self._versioned.get(sql) or self._versioned.setdefault(sql, _versioned(sql))
            found: tuple[Any, ...] | None = conn.execute(versioned, params).fetchone()
        except sqlite3.Error as err:
            raise _unavailable(err) from None
        if found is None:
            return None
        version, row = found[0], found[1:]
        rows = local.rows
        if version != local.version or len(rows) >= READ_CACHE_SIZE:
            rows.clear()
            local.built.clear()
            local.version = version
        rows[key] = row
        return row

    def built(self, row: tuple[Any, ...], build: Callable[[], T]) -> T:
        """``build()``, made once for a row this thread keeps (an immutable answer, such as
        the record of a credential row: one is built per read otherwise)."""
        memo = self._local.built
        hit = memo.get(id(row))
        if hit is not None and hit[0] is row:  # the memo holds the row: its id is not reused
            value: T = hit[1]
            return value
        value = build()
        if len(memo) >= READ_CACHE_SIZE:
            memo.clear()
        memo[id(row)] = (row, value)
        return value


CHECKPOINT_ROWS = 300
"""Rows written by the lease writes that do not wait (:class:`_NoWaitConnections`) after which
:meth:`SQLStorage.wants_checkpoint` asks for a checkpoint: about SQLite's own automatic one,
every 1,000 WAL pages, at a few pages a row."""


def _busy(err: sqlite3.Error) -> bool:
    """The error of a statement that found a lock taken and did not wait for it."""
    code = getattr(err, "sqlite_errorcode", None)  # Python 3.11+
    if code is not None:
        return code & 0xFF in (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED (and their extended codes)
    text = str(err).lower()
    return isinstance(err, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


class _NoWaitConnections(_ThreadConnections):
    """The lease writes tried on the event loop's thread: a connection per thread that never
    waits for a lock (busy timeout 0: ``BEGIN IMMEDIATE`` fails at once while another
    connection writes) and never checkpoints (its commits only append to the WAL, with no
    fsync; :meth:`SQLStorage.checkpoint` copies the WAL into the database, in a worker
    thread, when :meth:`SQLStorage.wants_checkpoint` says so)."""

    isolation_level = None  # transactions begun here: BEGIN IMMEDIATE
    busy_timeout_ms = 0

    def _setup(self, conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA synchronous=NORMAL")  # as the engine's connections
        conn.execute("PRAGMA wal_autocheckpoint=0")


class _SQLiteLeaseWrites(_ThreadConnections):
    """The refresh path's two writes, on a plain ``sqlite3`` connection per thread: leases
    taken with their records read (:meth:`SQLStorage.acquire_leases_reading`) and refreshed
    records saved with their leases let go (:meth:`SQLStorage.save_credentials_releasing`).

    The statements are SQLAlchemy's own (:class:`SQLStatements`), compiled once for SQLite, so
    the SQL is the same as on the engine; what goes is SQLAlchemy's checkout, compile-cache
    and result work around each (measured: 178 us against 45 us for a lease and a save). Each
    batch is one ``BEGIN IMMEDIATE`` transaction. These connections never serve reads: a
    commit here changes the read connections' ``data_version``, which drops their cached rows.

    ``wait=False``: the batch on a connection of :class:`_NoWaitConnections`; when another
    connection holds the write lock it raises :class:`WouldWait` with nothing written.
    """

    isolation_level = None  # transactions begun here: BEGIN IMMEDIATE

    def __init__(self, path: str, statements: SQLStatements, dialect: sa.Dialect) -> None:
        super().__init__(path)
        self._statements = statements
        self._acquire = self._compiled(statements._acquire, dialect)
        self._save = self._compiled(statements._update_releasing, dialect)
        self._now = _NoWaitConnections(path)
        self.rows_unchecked = 0  # rows the no-wait connections wrote since the last checkpoint

    @staticmethod
    def _compiled(statement: Any, dialect: sa.Dialect) -> tuple[str, tuple[str, ...]]:
        compiled = statement.compile(dialect=dialect)
        assert compiled.positiontup is not None
        return compiled.string, tuple(compiled.positiontup)

    def _setup(self, conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA synchronous=NORMAL")  # as the engine's connections

    def close(self) -> None:
        self._now.close()
        super().close()

    @contextlib.contextmanager
    def _transaction(self, wait: bool) -> Iterator[sqlite3.Connection]:
        try:
            conn = self._conn() if wait else self._now._conn()
            before = conn.total_changes
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as err:
            raise self._error(err, wait) from None
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException as err:
            if conn.in_transaction:  # a failed COMMIT leaves it open
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            if conn.in_transaction:  # so did a failed ROLLBACK: never use it again
                (self if wait else self._now).discard(conn)
            if isinstance(err, sqlite3.Error):
                raise self._error(err, wait) from None
            raise
        if not wait:
            self.rows_unchecked += conn.total_changes - before

    @staticmethod
    def _error(err: sqlite3.Error, wait: bool) -> Exception:
        """What a failed batch raises (it wrote nothing: its transaction rolled back)."""
        if not wait and _busy(err):
            return WouldWait()
        return _unavailable(err)

    def checkpoint(self) -> None:
        """Copy the WAL into the database as far as no reader needs it (``PASSIVE``: it waits
        for nothing), on this thread's waiting connection."""
        try:
            self._conn().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as err:
            raise _unavailable(err) from None

    def leases_reading(
        self, leases: Sequence[tuple[CredentialKey, str]], ttl: float, now: float, *, wait: bool
    ) -> list[StoredCredential | None]:
        sql, names = self._acquire
        found: list[StoredCredential | None] = []
        with self._transaction(wait) as conn:
            for key, owner in leases:
                params = self._statements.acquire_lease(key, owner, ttl, now).params
                assert isinstance(params, dict)
                if conn.execute(sql, [params[name] for name in names]).rowcount != 1:
                    found.append(None)
                    continue
                row = conn.execute(CREDENTIAL_SQL, key.parts()).fetchone()
                found.append(None if row is None else credential_from_row(key, row))
        return found

    def saves_releasing(
        self, saves: Sequence[tuple[StoredCredential, int, str]], *, wait: bool
    ) -> list[bool]:
        """Saves of records already stored (``expected_version`` > 0)."""
        sql, names = self._save
        written: list[bool] = []
        with self._transaction(wait) as conn:
            for record, expected_version, owner in saves:
                op = self._statements.save_credential_releasing(record, expected_version, owner)
                params = op.params
                assert isinstance(params, dict)
                assert expected_version > 0
                written.append(conn.execute(sql, [params[n] for n in names]).rowcount == 1)
        return written


# -- the sync storage ---------------------------------------------------------------------


class SQLStorage:
    """Sync SQL storage implementing :class:`~oauth_vault_mw.storage.Storage`.

    ``SQLStorage("sqlite:///vault.db")`` or ``SQLStorage("postgresql://user:pw@host/db",
    pool_size=10, pool_timeout=10)``; call :meth:`setup` once before use (the vault does).
    """

    shared_across_processes = True

    def __init__(
        self, url: str, *, pool_size: int | None = None, pool_timeout: float | None = None
    ) -> None:
        self.url = url
        try:
            self.engine = _engine(url, pool_size, pool_timeout)
        except exc.ArgumentError as err:
            raise ConfigurationError(f"OAUTH_VAULT_STORAGE_URL: {err}") from None
        except ImportError as err:
            raise driver_missing(err) from None
        self._sql = SQLStatements(self.engine.dialect.name)
        database = self.engine.url.database
        self._fast: _SQLiteReads | None = None
        self._leases: _SQLiteLeaseWrites | None = None
        if self.engine.dialect.name == "sqlite" and database and database != ":memory:":
            self._fast = _SQLiteReads(database)
            self._leases = _SQLiteLeaseWrites(database, self._sql, self.engine.dialect)

    def __repr__(self) -> str:
        return f"SQLStorage(dialect={self.engine.dialect.name!r})"

    def _run(self, op: Op[T]) -> T:
        with map_errors():
            if op.write:
                with self.engine.begin() as conn:
                    return op.result(op.on(conn))
            with self.engine.connect() as conn:
                return op.result(op.on(conn))

    def setup(self) -> None:
        """Create or upgrade the schema (Alembic, to head); idempotent, safe to run at once
        from several processes. A database newer than this library raises
        :class:`ConfigurationError`."""
        with map_errors(), self.engine.connect() as conn:
            upgrade_schema(conn)

    def close(self) -> None:
        if self._fast is not None:
            self._fast.close()
        if self._leases is not None:
            self._leases.close()
        self.engine.dispose()

    # -- credentials ----------------------------------------------------------------------

    def get_credential(self, key: CredentialKey) -> StoredCredential | None:
        fast = self._fast
        if fast is not None:
            found = fast.one(CREDENTIAL_SQL, key.parts())
            if found is None:
                return None
            return fast.built(found, lambda: credential_from_row(key, found))
        return self._run(self._sql.get_credential(key))

    def save_credential(self, record: StoredCredential, expected_version: int) -> bool:
        return self._run(self._sql.save_credential(record, expected_version))

    def save_credential_releasing(
        self, record: StoredCredential, expected_version: int, owner: str
    ) -> bool:
        return self._run(self._sql.save_credential_releasing(record, expected_version, owner))

    def acquire_leases_reading(
        self, leases: Sequence[tuple[CredentialKey, str]], ttl: float, now: float
    ) -> list[StoredCredential | None]:
        """:class:`~oauth_vault_mw.storage.LeaseBatches`: each lease and, where taken, the
        read of its record, in one transaction (SQLite) or one connection (PostgreSQL)."""
        if self._leases is not None:
            return self._leases.leases_reading(leases, ttl, now, wait=True)
        found: list[StoredCredential | None] = []
        with map_errors(), self.engine.begin() as conn:
            for key, owner in leases:
                take = self._sql.acquire_lease(key, owner, ttl, now)
                if not take.result(take.on(conn)):
                    found.append(None)
                    continue
                read = self._sql.get_credential(key)
                found.append(read.result(read.on(conn)))
        return found

    def save_credentials_releasing(
        self, saves: Sequence[tuple[StoredCredential, int, str]]
    ) -> list[bool]:
        """:class:`~oauth_vault_mw.storage.LeaseBatches`: the saves in one transaction
        (SQLite) or one connection (PostgreSQL)."""
        if self._leases is not None and all(save[1] > 0 for save in saves):
            return self._leases.saves_releasing(saves, wait=True)
        with map_errors(), self.engine.begin() as conn:
            return [
                op.result(op.on(conn))
                for op in (self._sql.save_credential_releasing(*save) for save in saves)
            ]

    # :class:`~oauth_vault_mw.storage.NoWaitLeaseBatches`: the async adapter tries the lease
    # batches on its event loop's thread first, and in a worker thread when they would wait.

    @property
    def writes_without_waiting(self) -> bool:
        """True for a SQLite database in a file: the ``*_now`` lease batches may write."""
        return self._leases is not None

    def acquire_leases_reading_now(
        self, leases: Sequence[tuple[CredentialKey, str]], ttl: float, now: float
    ) -> list[StoredCredential | None]:
        """:meth:`acquire_leases_reading` if it needs no wait for a lock; else (another
        connection is writing) :class:`WouldWait`, with nothing written."""
        if self._leases is None:
            raise WouldWait()
        return self._leases.leases_reading(leases, ttl, now, wait=False)

    def save_credentials_releasing_now(
        self, saves: Sequence[tuple[StoredCredential, int, str]]
    ) -> list[bool]:
        """:meth:`save_credentials_releasing` if it needs no wait for a lock; else
        :class:`WouldWait`, with nothing written."""
        if self._leases is None or not all(save[1] > 0 for save in saves):
            raise WouldWait()
        return self._leases.saves_releasing(saves, wait=False)

    def wants_checkpoint(self) -> bool:
        """True once the batches above wrote :data:`CHECKPOINT_ROWS` rows since the last
        time it said so: their connections leave checkpoints to :meth:`checkpoint`."""
        leases = self._leases
        if leases is None or leases.rows_unchecked < CHECKPOINT_ROWS:
            return False
        leases.rows_unchecked = 0
        return True

    def checkpoint(self) -> None:
        """Copy the WAL into the database file (``PASSIVE``: as far as readers allow; blocks
        on disk writes, so the async adapter runs it in a worker thread)."""
        if self._leases is not None:
            self._leases.checkpoint()

    def delete_credential(self, key: CredentialKey) -> bool:
        return self._run(self._sql.delete_credential(key))

    def list_credentials(self, user_id: str) -> list[StoredCredential]:
        return self._run(self._sql.list_credentials(user_id))

    def all_credentials(self) -> list[StoredCredential]:
        return self._run(self._sql.all_credentials())

    def scan_credentials(
        self,
        *,
        after: CredentialKey | None,
        limit: int,
        expiring_before: float | None = None,
    ) -> list[StoredCredential]:
        return self._run(self._sql.scan_credentials(after, limit, expiring_before))

    def acquire_lease(self, key: CredentialKey, owner: str, ttl: float, now: float) -> bool:
        return self._run(self._sql.acquire_lease(key, owner, ttl, now))

    def release_lease(self, key: CredentialKey, owner: str) -> None:
        self._run(self._sql.release_lease(key, owner))

    # -- identities -----------------------------------------------------------------------

    def get_identity(self, connection_id: str, subject: str) -> str | None:
        return self._run(self._sql.get_identity(connection_id, subject))

    def link_identity(self, connection_id: str, subject: str, user_id: str) -> str:
        while True:
            if self._run(self._sql.insert_identity(connection_id, subject, user_id)):
                return user_id
            found = self.get_identity(connection_id, subject)
            if found is not None:  # else unlinked in between: try again
                return found

    def unlink_identities(self, connection_id: str, user_id: str) -> None:
        self._run(self._sql.unlink_identities(connection_id, user_id))

    def list_identities(self, connection_id: str, user_id: str) -> list[str]:
        return self._run(self._sql.list_identities(connection_id, user_id))

    # -- login states and sessions --------------------------------------------------------

    def put_login_state(self, state_hash: str, data: bytes, expires_at: float) -> None:
        self._run(self._sql.put_login_state(state_hash, data, expires_at))

    def take_login_state(self, state_hash: str, now: float) -> bytes | None:
        return self._run(self._sql.take_login_state(state_hash, now))

    def create_session(self, session_hash: str, user_id: str, expires_at: float) -> None:
        self._run(self._sql.create_session(session_hash, user_id, expires_at))

    def get_session(self, session_hash: str, now: float) -> str | None:
        if self._fast is None:
            return self._run(self._sql.get_session(session_hash, now))
        found = self._fast.one(SESSION_SQL, (session_hash,))
        if found is None or found[1] <= now:
            return None
        return str(found[0])

    def get_session_credential(
        self, session_hash: str, now: float, connection_id: str, account: str = "default"
    ) -> tuple[str, StoredCredential | None] | None:
        if self._fast is None:
            return self._run(
                self._sql.get_session_credential(session_hash, now, connection_id, account)
            )
        fast = self._fast
        row = fast.one(SESSION_CREDENTIAL_SQL, (connection_id, account, session_hash))
        if row is None or row[1] <= now:
            return None
        return fast.built(row, lambda: session_credential_row(row, now, connection_id, account))

    def delete_session(self, session_hash: str) -> None:
        self._run(self._sql.delete_session(session_hash))

    # -- records and events ---------------------------------------------------------------

    def put_record(
        self, kind: str, name: str, data: bytes, *, only_if_absent: bool = False
    ) -> bool:
        return self._run(self._sql.put_record(kind, name, data, only_if_absent))

    def get_record(self, kind: str, name: str) -> bytes | None:
        if self._fast is None:
            return self._run(self._sql.get_record(kind, name))
        found = self._fast.one(RECORD_SQL, (kind, name))
        return None if found is None else bytes(found[0])

    def delete_record(self, kind: str, name: str) -> bool:
        return self._run(self._sql.delete_record(kind, name))

    def list_records(self, kind: str) -> list[tuple[str, bytes]]:
        return self._run(self._sql.list_records(kind))

    def append_events(self, events: Sequence[tuple[float, bytes]]) -> None:
        if events:
            self._run(self._sql.append_events(events))

    def read_events(self, since: float, limit: int) -> list[tuple[float, bytes]]:
        return self._run(self._sql.read_events(since, limit))
