"""SQL storage on SQLAlchemy Core: SQLite (the embedded default, WAL) and PostgreSQL.

Every statement is parameterised; driver errors become :class:`StorageUnavailable`.
Tables are created by :meth:`SQLStorage.setup` (and ``oauth-vault db init``); a database whose
schema is newer than this library knows is refused with a clear message.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from typing import Any

try:
    import sqlalchemy as sa
    from sqlalchemy import event, exc
except ImportError as _err:  # pragma: no cover - depends on the environment
    raise ImportError("SQL storage needs SQLAlchemy: pip install 'oauth-vault-mw[sql]'") from _err

from .._exceptions import ConfigurationError, StorageUnavailable
from ..core.model import ACTIVE, CredentialKey, StoredCredential

__all__ = ["SCHEMA_VERSION", "SQLStorage", "metadata"]

SCHEMA_VERSION = 1

metadata = sa.MetaData()

credentials = sa.Table(
    "oauth_vault_credentials",
    metadata,
    sa.Column("connection_id", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(128), primary_key=True),
    sa.Column("account", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("expires_at", sa.Float, nullable=True),
    sa.Column("scope", sa.Text, nullable=True),
    sa.Column("sealed", sa.Text, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("lease_owner", sa.String(64), nullable=True),
    sa.Column("lease_until", sa.Float, nullable=True),
    sa.Index("ix_oauth_vault_credentials_user", "user_id"),
    sa.Index("ix_oauth_vault_credentials_expires", "status", "expires_at"),
)

identities = sa.Table(
    "oauth_vault_identities",
    metadata,
    sa.Column("connection_id", sa.String(64), primary_key=True),
    sa.Column("subject", sa.String(255), primary_key=True),
    sa.Column("user_id", sa.String(128), nullable=False, index=True),
)

login_states = sa.Table(
    "oauth_vault_login_states",
    metadata,
    sa.Column("state_hash", sa.String(64), primary_key=True),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False, index=True),
)

sessions = sa.Table(
    "oauth_vault_sessions",
    metadata,
    sa.Column("session_hash", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(128), nullable=False, index=True),
    sa.Column("expires_at", sa.Float, nullable=False),
)

meta = sa.Table(
    "oauth_vault_meta",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(255), nullable=False),
)


@contextlib.contextmanager
def _mapped() -> Iterator[None]:
    try:
        yield
    except exc.IntegrityError:
        raise
    except (exc.DBAPIError, exc.TimeoutError) as err:
        raise StorageUnavailable(
            f"storage error: {type(err.orig if isinstance(err, exc.DBAPIError) else err).__name__}"
        ) from None


def _row(row: Any) -> StoredCredential:
    return StoredCredential(
        key=CredentialKey(row.connection_id, row.user_id, row.account),
        version=row.version,
        sealed=row.sealed,
        status=row.status,
        expires_at=row.expires_at,
        scope=row.scope,
        updated_at=row.updated_at,
    )


class _SQLiteReads:
    """The two reads on every request, on a plain ``sqlite3`` connection per thread.

    A SQLAlchemy checkout, statement cache and result proxy cost ~40 us per read; a held
    connection with fixed SQL ~5 us. In WAL mode readers never wait for writers, and each
    SELECT sees the last committed write. Writes stay on SQLAlchemy.
    """

    CREDENTIAL = (
        "SELECT version, status, expires_at, scope, sealed, updated_at "
        "FROM oauth_vault_credentials WHERE connection_id = ? AND user_id = ? AND account = ?"
    )
    SESSION = "SELECT user_id, expires_at FROM oauth_vault_sessions WHERE session_hash = ?"

    def __init__(self, path: str) -> None:
        self.path = path
        self._local = threading.local()
        self._lock = threading.Lock()
        self._opened: list[sqlite3.Connection] = []

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=10, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout=10000")
            self._local.conn = conn
            with self._lock:
                self._opened.append(conn)
        return conn

    def one(self, sql: str, params: tuple[str, ...]) -> tuple[Any, ...] | None:
        try:
            row: tuple[Any, ...] | None = self._conn().execute(sql, params).fetchone()
        except sqlite3.Error as err:
            raise StorageUnavailable(f"storage error: {type(err).__name__}") from None
        return row

    def close(self) -> None:
        with self._lock:
            for conn in self._opened:
                conn.close()
            self._opened.clear()
        self._local = threading.local()


def _engine(url: str, pool_size: int) -> sa.Engine:
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 10})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=10000")
            cur.close()

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return sa.create_engine(url, pool_size=pool_size, pool_pre_ping=True)


class SQLStorage:
    """Sync SQL storage implementing :class:`~oauth_vault_mw.storage.Storage`."""

    shared_across_processes = True

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        try:
            self.engine = _engine(url, pool_size)
        except (exc.ArgumentError, ImportError) as err:
            raise ConfigurationError(f"OAUTH_VAULT_STORAGE_URL: {err}") from None
        c = credentials.c
        self._get = sa.select(credentials).where(
            c.connection_id == sa.bindparam("cid"),
            c.user_id == sa.bindparam("uid"),
            c.account == sa.bindparam("acc"),
        )
        s = sessions.c
        self._get_session = sa.select(s.user_id, s.expires_at).where(
            s.session_hash == sa.bindparam("sh")
        )
        database = self.engine.url.database
        self._fast: _SQLiteReads | None = None
        if self.engine.dialect.name == "sqlite" and database and database != ":memory:":
            self._fast = _SQLiteReads(database)

    def __repr__(self) -> str:
        return f"SQLStorage(dialect={self.engine.dialect.name!r})"

    # -- schema ---------------------------------------------------------------------------

    def setup(self) -> None:
        with _mapped(), self.engine.begin() as conn:
            metadata.create_all(conn)
            found = conn.execute(
                sa.select(meta.c.value).where(meta.c.name == "schema_version")
            ).scalar()
            if found is None:
                conn.execute(sa.insert(meta).values(name="schema_version",
                                                    value=str(SCHEMA_VERSION)))  # fmt: skip
            elif int(found) > SCHEMA_VERSION:
                raise ConfigurationError(
                    f"OAUTH_VAULT_STORAGE_URL: schema version {found} is newer than this "
                    f"library knows ({SCHEMA_VERSION}); upgrade oauth-vault-mw"
                )

    def close(self) -> None:
        if self._fast is not None:
            self._fast.close()
        self.engine.dispose()

    # -- credentials ----------------------------------------------------------------------

    def get_credential(self, key: CredentialKey) -> StoredCredential | None:
        if self._fast is not None:
            found = self._fast.one(self._fast.CREDENTIAL, key.parts())
            if found is None:
                return None
            version, status, expires_at, scope, sealed, updated_at = found
            return StoredCredential(key, version, sealed, status, expires_at, scope, updated_at)
        with _mapped(), self.engine.connect() as conn:
            row = conn.execute(
                self._get, {"cid": key.connection_id, "uid": key.user_id, "acc": key.account}
            ).first()
        return _row(row) if row is not None else None

    def _where_key(self, key: CredentialKey) -> Any:
        c = credentials.c
        return sa.and_(
            c.connection_id == key.connection_id, c.user_id == key.user_id,
            c.account == key.account,
        )  # fmt: skip

    def save_credential(self, record: StoredCredential, expected_version: int) -> bool:
        values = {
            "version": expected_version + 1,
            "status": record.status,
            "expires_at": record.expires_at,
            "scope": record.scope,
            "sealed": record.sealed,
            "updated_at": record.updated_at,
        }
        if expected_version == 0:
            try:
                with _mapped(), self.engine.begin() as conn:
                    conn.execute(sa.insert(credentials).values(
                        connection_id=record.key.connection_id, user_id=record.key.user_id,
                        account=record.key.account, **values,
                    ))  # fmt: skip
            except exc.IntegrityError:
                return False
            return True
        with _mapped(), self.engine.begin() as conn:
            result = conn.execute(
                sa.update(credentials)
                .where(self._where_key(record.key), credentials.c.version == expected_version)
                .values(**values)
            )
            return result.rowcount == 1

    def delete_credential(self, key: CredentialKey) -> bool:
        with _mapped(), self.engine.begin() as conn:
            return conn.execute(sa.delete(credentials).where(self._where_key(key))).rowcount > 0

    def list_credentials(self, user_id: str) -> list[StoredCredential]:
        c = credentials.c
        query = (
            sa.select(credentials).where(c.user_id == user_id).order_by(c.connection_id, c.account)
        )
        with _mapped(), self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(query)]

    def all_credentials(self) -> list[StoredCredential]:
        c = credentials.c
        query = sa.select(credentials).order_by(c.connection_id, c.user_id, c.account)
        with _mapped(), self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(query)]

    def scan_credentials(
        self,
        *,
        after: CredentialKey | None,
        limit: int,
        expiring_before: float | None = None,
    ) -> list[StoredCredential]:
        c = credentials.c
        query = sa.select(credentials)
        if after is not None:
            query = query.where(
                sa.tuple_(c.connection_id, c.user_id, c.account) > sa.tuple_(*after.parts())
            )
        if expiring_before is not None:
            query = query.where(
                c.status == ACTIVE, c.expires_at.is_not(None), c.expires_at < expiring_before
            )
        query = query.order_by(c.connection_id, c.user_id, c.account).limit(limit)
        with _mapped(), self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(query)]

    def acquire_lease(self, key: CredentialKey, owner: str, ttl: float, now: float) -> bool:
        c = credentials.c
        free = sa.or_(c.lease_until.is_(None), c.lease_until <= now, c.lease_owner == owner)
        with _mapped(), self.engine.begin() as conn:
            result = conn.execute(
                sa.update(credentials)
                .where(self._where_key(key), free)
                .values(lease_owner=owner, lease_until=now + ttl)
            )
            return result.rowcount == 1

    def release_lease(self, key: CredentialKey, owner: str) -> None:
        c = credentials.c
        with _mapped(), self.engine.begin() as conn:
            conn.execute(
                sa.update(credentials)
                .where(self._where_key(key), c.lease_owner == owner)
                .values(lease_owner=None, lease_until=None)
            )

    # -- identities -----------------------------------------------------------------------

    def get_identity(self, connection_id: str, subject: str) -> str | None:
        i = identities.c
        query = sa.select(i.user_id).where(i.connection_id == connection_id, i.subject == subject)
        with _mapped(), self.engine.connect() as conn:
            value = conn.execute(query).scalar()
        return str(value) if value is not None else None

    def link_identity(self, connection_id: str, subject: str, user_id: str) -> str:
        try:
            with _mapped(), self.engine.begin() as conn:
                conn.execute(
                    sa.insert(identities).values(
                        connection_id=connection_id, subject=subject, user_id=user_id
                    )
                )
        except exc.IntegrityError:
            found = self.get_identity(connection_id, subject)
            if found is None:  # deleted in between: try once more
                return self.link_identity(connection_id, subject, user_id)
            return found
        return user_id

    def unlink_identities(self, connection_id: str, user_id: str) -> None:
        i = identities.c
        with _mapped(), self.engine.begin() as conn:
            conn.execute(
                sa.delete(identities).where(i.connection_id == connection_id, i.user_id == user_id)
            )

    # -- login states and sessions --------------------------------------------------------

    def put_login_state(self, state_hash: str, data: bytes, expires_at: float) -> None:
        with _mapped(), self.engine.begin() as conn:
            conn.execute(
                sa.insert(login_states).values(
                    state_hash=state_hash, data=data, expires_at=expires_at
                )
            )

    def take_login_state(self, state_hash: str, now: float) -> bytes | None:
        s = login_states.c
        with _mapped(), self.engine.begin() as conn:
            row = conn.execute(
                sa.delete(login_states)
                .where(s.state_hash == state_hash)
                .returning(s.data, s.expires_at)
            ).first()
            conn.execute(sa.delete(login_states).where(s.expires_at <= now))
        if row is None or row.expires_at <= now:
            return None
        return bytes(row.data)

    def create_session(self, session_hash: str, user_id: str, expires_at: float) -> None:
        with _mapped(), self.engine.begin() as conn:
            conn.execute(
                sa.insert(sessions).values(
                    session_hash=session_hash, user_id=user_id, expires_at=expires_at
                )
            )

    def get_session(self, session_hash: str, now: float) -> str | None:
        if self._fast is not None:
            found = self._fast.one(self._fast.SESSION, (session_hash,))
        else:
            with _mapped(), self.engine.connect() as conn:
                row = conn.execute(self._get_session, {"sh": session_hash}).first()
            found = None if row is None else (row.user_id, row.expires_at)
        if found is None or found[1] <= now:
            return None
        return str(found[0])

    def delete_session(self, session_hash: str) -> None:
        with _mapped(), self.engine.begin() as conn:
            conn.execute(sa.delete(sessions).where(sessions.c.session_hash == session_hash))
