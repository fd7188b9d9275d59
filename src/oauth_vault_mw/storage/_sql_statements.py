"""The SQL schema and the statement of every storage step, shared by the sync
:class:`~oauth_vault_mw.storage.sql.SQLStorage` and the async
:class:`~oauth_vault_mw.storage.sql_async.AsyncSQLStorage`: each builds :class:`Op` values here
and only runs them (``conn.execute`` or ``await conn.execute``), so the SQL exists once.

The tables here are what the code queries; the migrations (``migrations/versions``) write the
same schema out frozen, and a test compares the two. Import :data:`metadata` from
:mod:`oauth_vault_mw.storage.sql`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.dialects import postgresql, sqlite

from ..core.errors import ConfigurationError, StorageUnavailable
from ..core.model import ACTIVE, CredentialKey, StoredCredential

__all__ = [
    "CREDENTIALS_BATCH_SQL",
    "CREDENTIAL_SQL",
    "RECORDS_BATCH_SQL",
    "RECORD_SQL",
    "SESSIONS_BATCH_SQL",
    "SESSION_CREDENTIALS_BATCH_SQL",
    "SESSION_CREDENTIAL_SQL",
    "SESSION_SQL",
    "Op",
    "SQLStatements",
    "credential_from_row",
    "map_errors",
    "metadata",
    "psycopg_sql",
    "session_credential_row",
]

T = TypeVar("T")

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
    sa.Column("expires_at", sa.Float, nullable=False, index=True),  # the batched purge
)

records = sa.Table(  # small documents: service clients, access keys
    "oauth_vault_records",
    metadata,
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

events = sa.Table(  # the audit trail, append-only; `id` orders events of the same instant
    "oauth_vault_events",
    metadata,
    # BIGSERIAL on PostgreSQL; on SQLite only INTEGER PRIMARY KEY is the rowid
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("at", sa.Float, nullable=False, index=True),
    sa.Column("data", sa.LargeBinary, nullable=False),
)

meta = sa.Table(  # the library's own settings, if it ever needs any; the version is Alembic's
    "oauth_vault_meta",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(255), nullable=False),
)


@contextlib.contextmanager
def map_errors() -> Iterator[None]:
    """Driver, pool and connection errors become :class:`StorageUnavailable` (no URL in it)."""
    try:
        yield
    except (exc.DBAPIError, exc.TimeoutError, exc.DisconnectionError) as err:
        cause = err.orig if isinstance(err, exc.DBAPIError) and err.orig is not None else err
        raise StorageUnavailable(f"storage error: {type(cause).__name__}") from None


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


# -- statements: one definition for the sync and the async storage ------------------------


@dataclass(frozen=True, slots=True)
class Op(Generic[T]):
    """One storage step as data: run ``statement`` with ``params`` (in a transaction when
    ``write``), then read the buffered result with ``result``."""

    statement: sa.Executable | str  # a str: the driver's own SQL, with a tuple of params
    params: dict[str, Any] | list[dict[str, Any]] | tuple[Any, ...] | None  # a list: executemany
    write: bool
    result: Callable[[sa.CursorResult[Any]], T]

    def on(self, conn: Any) -> Any:
        """Run the statement on ``conn`` (a SQLAlchemy ``Connection``: its result; an
        ``AsyncConnection``: the awaitable of it)."""
        if isinstance(self.statement, str):
            return conn.exec_driver_sql(self.statement, self.params)
        return conn.execute(self.statement, self.params)


# -- the per-request reads as fixed SQL, for the drivers' own cursors ---------------------
# The same statements SQLStatements builds, run on sqlite3 or psycopg directly (a SQLAlchemy
# checkout and result proxy cost more than these reads). ``?`` placeholders as sqlite3 takes
# them; :func:`psycopg_sql` gives psycopg's.

CREDENTIAL_SQL = (
    "SELECT version, status, expires_at, scope, sealed, updated_at FROM oauth_vault_credentials"
    " WHERE connection_id = ? AND user_id = ? AND account = ?"
)
SESSION_SQL = "SELECT user_id, expires_at FROM oauth_vault_sessions WHERE session_hash = ?"
RECORD_SQL = "SELECT data FROM oauth_vault_records WHERE kind = ? AND name = ?"
SESSION_CREDENTIAL_SQL = (
    "SELECT s.user_id, s.expires_at, c.version, c.status, c.expires_at, c.scope, c.sealed,"
    " c.updated_at FROM oauth_vault_sessions s LEFT JOIN oauth_vault_credentials c"
    " ON c.connection_id = ? AND c.user_id = s.user_id AND c.account = ?"
    " WHERE s.session_hash = ?"
)
"""The session and its user's credential in one statement (a LEFT JOIN on the credentials'
primary key; the credential's columns as in :data:`CREDENTIAL_SQL`): parameters (connection
id, account, session hash)."""


# The same reads for many keys at once, PostgreSQL only (``unnest ... WITH ORDINALITY``): one
# array parameter per column of the key, in the order of the single statement's parameters;
# each row starts with the 1-based position of its key in the arrays (no row: no match).
CREDENTIALS_BATCH_SQL = (
    "SELECT q.i, c.version, c.status, c.expires_at, c.scope, c.sealed, c.updated_at"
    " FROM unnest(%s::text[], %s::text[], %s::text[]) WITH ORDINALITY AS q(cid, uid, acc, i)"
    " JOIN oauth_vault_credentials c"
    " ON c.connection_id = q.cid AND c.user_id = q.uid AND c.account = q.acc"
)
SESSIONS_BATCH_SQL = (
    "SELECT q.i, s.user_id, s.expires_at FROM unnest(%s::text[]) WITH ORDINALITY AS q(h, i)"
    " JOIN oauth_vault_sessions s ON s.session_hash = q.h"
)
RECORDS_BATCH_SQL = (
    "SELECT q.i, r.data FROM unnest(%s::text[], %s::text[]) WITH ORDINALITY AS q(k, n, i)"
    " JOIN oauth_vault_records r ON r.kind = q.k AND r.name = q.n"
)
SESSION_CREDENTIALS_BATCH_SQL = (
    "SELECT q.i, s.user_id, s.expires_at, c.version, c.status, c.expires_at, c.scope, c.sealed,"
    " c.updated_at"
    " FROM unnest(%s::text[], %s::text[], %s::text[]) WITH ORDINALITY AS q(cid, acc, h, i)"
    " JOIN oauth_vault_sessions s ON s.session_hash = q.h"
    " LEFT JOIN oauth_vault_credentials c"
    " ON c.connection_id = q.cid AND c.user_id = s.user_id AND c.account = q.acc"
)


def psycopg_sql(sql: str) -> str:
    """A statement above with psycopg's ``%s`` placeholders."""
    return sql.replace("?", "%s")


def credential_from_row(key: CredentialKey, columns: Sequence[Any]) -> StoredCredential:
    """The record from the columns of :data:`CREDENTIAL_SQL`, in their order."""
    version, status, expires_at, scope, sealed, updated_at = columns
    return StoredCredential(key, version, sealed, status, expires_at, scope, updated_at)


def session_credential_row(
    row: Sequence[Any] | None, now: float, connection_id: str, account: str
) -> tuple[str, StoredCredential | None] | None:
    """The row of :data:`SESSION_CREDENTIAL_SQL` as ``get_session_credential`` answers."""
    if row is None or row[1] <= now:
        return None
    user_id = str(row[0])
    if row[2] is None:
        return user_id, None
    return user_id, credential_from_row(CredentialKey(connection_id, user_id, account), row[2:])


def _first_credential(result: sa.CursorResult[Any]) -> StoredCredential | None:
    row = result.first()
    return _row(row) if row is not None else None


def _credentials(result: sa.CursorResult[Any]) -> list[StoredCredential]:
    return [_row(r) for r in result]


def _one_row(result: sa.CursorResult[Any]) -> bool:
    return result.rowcount == 1


def _some_rows(result: sa.CursorResult[Any]) -> bool:
    return result.rowcount > 0


def _nothing(_result: sa.CursorResult[Any]) -> None:
    return None


def _written(_result: sa.CursorResult[Any]) -> bool:
    return True


def _bytes_or_none(result: sa.CursorResult[Any]) -> bytes | None:
    value = result.scalar()
    return bytes(value) if value is not None else None


def _records(result: sa.CursorResult[Any]) -> list[tuple[str, bytes]]:
    # sorted here, not by ORDER BY: PostgreSQL would sort by the database's collation, the
    # contract (and SQLite, and Redis) by code point
    return sorted((str(row.name), bytes(row.data)) for row in result)


def _oldest_first(result: sa.CursorResult[Any]) -> list[tuple[float, bytes]]:
    return [(float(row.at), bytes(row.data)) for row in result][::-1]


def _subjects(result: sa.CursorResult[Any]) -> list[str]:
    # sorted here by code point, not by the database's collation (see _records)
    return sorted(str(row.subject) for row in result)


def _text_or_none(result: sa.CursorResult[Any]) -> str | None:
    value = result.scalar()
    return str(value) if value is not None else None


def _key(key: CredentialKey) -> dict[str, Any]:
    return {"cid": key.connection_id, "uid": key.user_id, "acc": key.account}


def _update_params(record: StoredCredential, expected_version: int) -> dict[str, Any]:
    return {
        **_key(record.key),
        "expected": expected_version,
        "new_version": expected_version + 1,
        "new_status": record.status,
        "new_expires_at": record.expires_at,
        "new_scope": record.scope,
        "new_sealed": record.sealed,
        "new_updated_at": record.updated_at,
    }


class SQLStatements:
    """The statements of every storage step for one dialect (``sqlite`` or ``postgresql``).

    All are single statements, so each is atomic on its own: compare-and-set and leases are
    conditional ``UPDATE``\\ s (PostgreSQL re-checks the condition on the row it locked), inserts
    are ``INSERT ... ON CONFLICT DO NOTHING`` (no failed statement, no aborted transaction), and a
    login state is taken with ``DELETE ... RETURNING``. A batch of events is one ``INSERT`` run
    with all its parameter sets, all or nothing: in SQLite's transaction; on PostgreSQL
    psycopg pipelines them up to one Sync, one implicit transaction even in autocommit.
    """

    def __init__(self, dialect: str) -> None:
        if dialect == "postgresql":
            insert: Callable[[sa.Table], Any] = postgresql.insert
        elif dialect == "sqlite":
            insert = sqlite.insert
        else:
            raise ConfigurationError(
                f"OAUTH_VAULT_STORAGE_URL: unsupported database {dialect!r} (sqlite, postgresql)"
            )
        c, i, s, ls = credentials.c, identities.c, sessions.c, login_states.c
        bp = sa.bindparam
        key = sa.and_(c.connection_id == bp("cid"), c.user_id == bp("uid"), c.account == bp("acc"))
        self._get = sa.select(credentials).where(key)
        # rowcount of an INSERT is kept only on request
        counted = {"preserve_rowcount": True}
        self._insert = insert(credentials).on_conflict_do_nothing().execution_options(**counted)
        self._update = (
            sa.update(credentials)
            .where(key, c.version == bp("expected"))
            .values(
                version=bp("new_version"),
                status=bp("new_status"),
                expires_at=bp("new_expires_at"),
                scope=bp("new_scope"),
                sealed=bp("new_sealed"),
                updated_at=bp("new_updated_at"),
            )
        )
        # the same write, also letting go of the writer's lease: SET sees the old row, so
        # both columns test the old owner
        ours = c.lease_owner == bp("owner")
        self._update_releasing = self._update.values(
            lease_owner=sa.case((ours, None), else_=c.lease_owner),
            lease_until=sa.case((ours, None), else_=c.lease_until),
        )
        self._delete = sa.delete(credentials).where(key)
        self._list = (
            sa.select(credentials)
            .where(c.user_id == bp("uid"))
            .order_by(c.connection_id, c.account)
        )
        self._all = sa.select(credentials).order_by(c.connection_id, c.user_id, c.account)
        free = sa.or_(
            c.lease_until.is_(None), c.lease_until <= bp("now"), c.lease_owner == bp("owner")
        )
        self._acquire = (
            sa.update(credentials)
            .where(key, free)
            .values(lease_owner=bp("owner"), lease_until=bp("until"))
        )
        self._release = (
            sa.update(credentials)
            .where(key, c.lease_owner == bp("owner"))
            .values(lease_owner=None, lease_until=None)
        )
        self._get_identity = sa.select(i.user_id).where(
            i.connection_id == bp("cid"), i.subject == bp("sub")
        )
        self._link = insert(identities).on_conflict_do_nothing().execution_options(**counted)
        self._unlink = sa.delete(identities).where(
            i.connection_id == bp("cid"), i.user_id == bp("uid")
        )
        self._list_identities = sa.select(i.subject).where(
            i.connection_id == bp("cid"), i.user_id == bp("uid")
        )
        self._put_state = sa.insert(login_states)
        self._take_state = (
            sa.delete(login_states)
            .where(sa.or_(ls.state_hash == bp("sh"), ls.expires_at <= bp("now")))
            .returning(ls.state_hash, ls.data, ls.expires_at)
        )
        self._create_session = sa.insert(sessions)
        self._get_session = sa.select(s.user_id, s.expires_at).where(s.session_hash == bp("sh"))
        joined = sessions.outerjoin(
            credentials,
            sa.and_(
                c.connection_id == bp("cid"), c.user_id == s.user_id, c.account == bp("account")
            ),
        )
        self._session_credential = (
            sa.select(
                s.user_id,
                s.expires_at,
                c.version,
                c.status,
                c.expires_at,
                c.scope,
                c.sealed,
                c.updated_at,
            )
            .select_from(joined)
            .where(s.session_hash == bp("sh"))
        )
        self._delete_session = sa.delete(sessions).where(s.session_hash == bp("sh"))
        r, e = records.c, events.c
        record = sa.and_(r.kind == bp("kind"), r.name == bp("name"))
        self._add_record = insert(records).on_conflict_do_nothing().execution_options(**counted)
        upsert = insert(records)
        self._put_record = upsert.on_conflict_do_update(
            index_elements=[r.kind, r.name],
            set_={"data": upsert.excluded.data, "updated_at": upsert.excluded.updated_at},
        )
        self._get_record = sa.select(r.data).where(record)
        self._delete_record = sa.delete(records).where(record)
        self._list_records = sa.select(r.name, r.data).where(r.kind == bp("kind"))
        self._append_events = sa.insert(events)
        # PostgreSQL: a batch is one statement over two arrays sent in binary (psycopg would
        # pipeline one INSERT per event, each parsed and planned by the server: ~15 us an
        # event, against ~3 for the arrays; a bytea[] in text form is escaped element by
        # element on both sides), in the batch's order so that `id` orders events of one
        # instant. Driver SQL: SQLAlchemy's placeholders cannot ask psycopg for binary.
        self._append_events_arrays = (
            "INSERT INTO oauth_vault_events (at, data) SELECT at, data"
            " FROM unnest(%b::double precision[], %b::bytea[])"
            " WITH ORDINALITY AS batch(at, data, n) ORDER BY n"
            if dialect == "postgresql"
            else None
        )
        self._read_events = (
            sa.select(e.at, e.data)
            .where(e.at >= bp("since"))
            .order_by(e.at.desc(), e.id.desc())
            .limit(bp("limit", type_=sa.Integer))
        )

    # credentials

    def get_credential(self, key: CredentialKey) -> Op[StoredCredential | None]:
        return Op(self._get, _key(key), False, _first_credential)

    def save_credential(self, record: StoredCredential, expected_version: int) -> Op[bool]:
        if expected_version == 0:
            values = {
                "connection_id": record.key.connection_id,
                "user_id": record.key.user_id,
                "account": record.key.account,
                "version": 1,
                "status": record.status,
                "expires_at": record.expires_at,
                "scope": record.scope,
                "sealed": record.sealed,
                "updated_at": record.updated_at,
            }
            return Op(self._insert, values, True, _one_row)
        return Op(self._update, _update_params(record, expected_version), True, _one_row)

    def save_credential_releasing(
        self, record: StoredCredential, expected_version: int, owner: str
    ) -> Op[bool]:
        """:meth:`save_credential`, and on the written row ``release_lease(owner)``: one
        statement. A new record (``expected_version`` 0) has no lease to let go."""
        if expected_version == 0:
            return self.save_credential(record, 0)
        params = {**_update_params(record, expected_version), "owner": owner}
        return Op(self._update_releasing, params, True, _one_row)

    def delete_credential(self, key: CredentialKey) -> Op[bool]:
        return Op(self._delete, _key(key), True, _some_rows)

    def list_credentials(self, user_id: str) -> Op[list[StoredCredential]]:
        return Op(self._list, {"uid": user_id}, False, _credentials)

    def all_credentials(self) -> Op[list[StoredCredential]]:
        return Op(self._all, None, False, _credentials)

    def scan_credentials(
        self, after: CredentialKey | None, limit: int, expiring_before: float | None
    ) -> Op[list[StoredCredential]]:
        c = credentials.c
        query = sa.select(credentials)
        if after is not None:  # a row-value comparison: SQLite >= 3.15, PostgreSQL
            query = query.where(
                sa.tuple_(c.connection_id, c.user_id, c.account) > sa.tuple_(*after.parts())
            )
        if expiring_before is not None:
            query = query.where(
                c.status == ACTIVE, c.expires_at.is_not(None), c.expires_at < expiring_before
            )
        query = query.order_by(c.connection_id, c.user_id, c.account).limit(limit)
        return Op(query, None, False, _credentials)

    def acquire_lease(self, key: CredentialKey, owner: str, ttl: float, now: float) -> Op[bool]:
        params = {**_key(key), "owner": owner, "now": now, "until": now + ttl}
        return Op(self._acquire, params, True, _one_row)

    def release_lease(self, key: CredentialKey, owner: str) -> Op[None]:
        return Op(self._release, {**_key(key), "owner": owner}, True, _nothing)

    # identities

    def get_identity(self, connection_id: str, subject: str) -> Op[str | None]:
        return Op(self._get_identity, {"cid": connection_id, "sub": subject}, False, _text_or_none)

    def insert_identity(self, connection_id: str, subject: str, user_id: str) -> Op[bool]:
        """True when this call bound the identity (see :meth:`SQLStorage.link_identity`)."""
        values = {"connection_id": connection_id, "subject": subject, "user_id": user_id}
        return Op(self._link, values, True, _one_row)

    def unlink_identities(self, connection_id: str, user_id: str) -> Op[None]:
        return Op(self._unlink, {"cid": connection_id, "uid": user_id}, True, _nothing)

    def list_identities(self, connection_id: str, user_id: str) -> Op[list[str]]:
        params = {"cid": connection_id, "uid": user_id}
        return Op(self._list_identities, params, False, _subjects)

    # login states and sessions

    def put_login_state(self, state_hash: str, data: bytes, expires_at: float) -> Op[None]:
        values = {"state_hash": state_hash, "data": data, "expires_at": expires_at}
        return Op(self._put_state, values, True, _nothing)

    def take_login_state(self, state_hash: str, now: float) -> Op[bytes | None]:
        """Deletes the state and, in the same statement, every expired one."""

        def taken(result: sa.CursorResult[Any]) -> bytes | None:
            for row in result:
                if row.state_hash == state_hash and row.expires_at > now:
                    return bytes(row.data)
            return None

        return Op(self._take_state, {"sh": state_hash, "now": now}, True, taken)

    def create_session(self, session_hash: str, user_id: str, expires_at: float) -> Op[None]:
        values = {"session_hash": session_hash, "user_id": user_id, "expires_at": expires_at}
        return Op(self._create_session, values, True, _nothing)

    def get_session(self, session_hash: str, now: float) -> Op[str | None]:
        def live(result: sa.CursorResult[Any]) -> str | None:
            row = result.first()
            return str(row.user_id) if row is not None and row.expires_at > now else None

        return Op(self._get_session, {"sh": session_hash}, False, live)

    def get_session_credential(
        self, session_hash: str, now: float, connection_id: str, account: str
    ) -> Op[tuple[str, StoredCredential | None] | None]:
        def found(result: sa.CursorResult[Any]) -> tuple[str, StoredCredential | None] | None:
            return session_credential_row(result.first(), now, connection_id, account)

        params = {"sh": session_hash, "cid": connection_id, "account": account}
        return Op(self._session_credential, params, False, found)

    def delete_session(self, session_hash: str) -> Op[None]:
        return Op(self._delete_session, {"sh": session_hash}, True, _nothing)

    # records and events

    def put_record(self, kind: str, name: str, data: bytes, only_if_absent: bool) -> Op[bool]:
        values = {"kind": kind, "name": name, "data": data, "updated_at": time.time()}
        if only_if_absent:
            return Op(self._add_record, values, True, _one_row)
        return Op(self._put_record, values, True, _written)

    def get_record(self, kind: str, name: str) -> Op[bytes | None]:
        return Op(self._get_record, {"kind": kind, "name": name}, False, _bytes_or_none)

    def delete_record(self, kind: str, name: str) -> Op[bool]:
        return Op(self._delete_record, {"kind": kind, "name": name}, True, _some_rows)

    def list_records(self, kind: str) -> Op[list[tuple[str, bytes]]]:
        return Op(self._list_records, {"kind": kind}, False, _records)

    def append_events(self, batch: Sequence[tuple[float, bytes]]) -> Op[None]:
        """For a non-empty ``batch`` (an empty parameter list would insert one empty row):
        the storages skip an empty one."""
        if self._append_events_arrays is not None:
            arrays = ([at for at, _ in batch], [data for _, data in batch])
            return Op(self._append_events_arrays, arrays, True, _nothing)
        rows = [{"at": at, "data": data} for at, data in batch]
        return Op(self._append_events, rows, True, _nothing)

    def read_events(self, since: float, limit: int) -> Op[list[tuple[float, bytes]]]:
        """The newest ``limit`` events at or after ``since``: selected newest first (ties: the
        later insert first), returned reversed, oldest first."""
        params = {"since": since, "limit": max(limit, 0)}  # SQLite reads LIMIT -1 as "all"
        return Op(self._read_events, params, False, _oldest_first)
