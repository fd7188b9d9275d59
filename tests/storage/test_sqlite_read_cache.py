"""The SQLite read path's cache answers exactly what the query would.

Each thread's read connection keeps the rows it read while SQLite's ``data_version`` says no
other connection committed since; a commit anywhere (another process here, through the
library's own storage) makes the next read go to the table. The statements each read runs
are traced on the connection itself.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from oauth_vault_mw.core.model import CredentialKey, StoredCredential
from oauth_vault_mw.storage.sql import DATA_VERSION_SQL, READ_CACHE_SIZE, SQLStorage

KEY = CredentialKey("demo", "alice")


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'vault.db'}"


@pytest.fixture
def store(url: str) -> Iterator[SQLStorage]:
    store = SQLStorage(url)
    store.setup()
    yield store
    store.close()


def traced(store: SQLStorage) -> list[str]:
    """The statements this thread's read connection runs from now on (those SQLite runs
    inside them, traced with a leading ``--``, left out)."""
    assert store._fast is not None
    seen: list[str] = []

    def note(statement: str) -> None:
        if not statement.startswith("--"):
            seen.append(statement)

    store._fast._conn().set_trace_callback(note)
    return seen


def in_another_process(url: str, code: str) -> None:
    """Run ``code`` (``store`` is an ``SQLStorage`` on ``url``) in a new interpreter."""
    program = (
        "from oauth_vault_mw.core.model import CredentialKey, StoredCredential\n"
        "from oauth_vault_mw.storage.sql import SQLStorage\n"
        f"store = SQLStorage({url!r})\n"
        f"{code}\n"
        "store.close()\n"
    )
    subprocess.run([sys.executable, "-c", program], check=True, timeout=60)


def record(version: int, sealed: str) -> StoredCredential:
    return StoredCredential(KEY, version, sealed, expires_at=1e10, scope="openid")


def test_a_row_read_again_costs_one_pragma_and_no_table_read(store: SQLStorage) -> None:
    assert store.save_credential(record(1, "sealed-1"), 0)
    assert store.get_credential(KEY) is not None
    seen = traced(store)
    again = store.get_credential(KEY)
    assert again is not None
    assert again.sealed == "sealed-1"
    assert seen == [DATA_VERSION_SQL]


def test_a_commit_in_another_process_is_seen_by_the_next_read(store: SQLStorage, url: str) -> None:
    assert store.save_credential(record(1, "sealed-1"), 0)
    assert store.get_credential(KEY).sealed == "sealed-1"  # type: ignore[union-attr]
    assert store.get_credential(KEY).sealed == "sealed-1"  # type: ignore[union-attr]
    in_another_process(
        url,
        "key = CredentialKey('demo', 'alice')\n"
        "assert store.save_credential(StoredCredential(key, 2, 'sealed-2', expires_at=1e10), 1)",
    )
    seen = traced(store)
    found = store.get_credential(KEY)
    assert found is not None
    assert (found.version, found.sealed) == (2, "sealed-2")
    assert seen[0] == DATA_VERSION_SQL  # checked, then read from the table
    assert len(seen) == 2
    assert "FROM oauth_vault_credentials" in seen[1]
    in_another_process(url, "assert store.delete_credential(CredentialKey('demo', 'alice'))")
    assert store.get_credential(KEY) is None


def test_a_session_ended_elsewhere_ends_here_at_once(store: SQLStorage, url: str) -> None:
    store.create_session("h1", "alice", 1e10)
    assert store.save_credential(record(1, "sealed-1"), 0)
    for _ in range(2):
        found = store.get_session_credential("h1", 0.0, "demo")
        assert found is not None
        assert found[0] == "alice"
        assert store.get_session("h1", 0.0) == "alice"
    in_another_process(url, "store.delete_session('h1')")
    assert store.get_session_credential("h1", 0.0, "demo") is None
    assert store.get_session("h1", 0.0) is None


def test_records_of_a_kept_row_are_built_once_and_rebuilt_after_a_commit(
    store: SQLStorage,
) -> None:
    """A row read again answers the record built from it the first time (records are
    immutable), for the session read and the credential read alike; after a commit the
    record is built again, from the new row; an expired session is refused before."""
    store.create_session("h1", "alice", 100.0)
    assert store.save_credential(record(1, "sealed-1"), 0)
    first = store.get_credential(KEY)
    assert first is not None
    assert store.get_credential(KEY) is first
    pair = store.get_session_credential("h1", 50.0, "demo")
    assert pair is not None
    assert pair == ("alice", first)
    assert store.get_session_credential("h1", 50.0, "demo") is pair
    assert store.get_session_credential("h1", 150.0, "demo") is None  # expired, from the memo
    assert store.save_credential(record(2, "sealed-2"), 1)
    again = store.get_credential(KEY)
    assert again is not None
    assert (again.version, again.sealed) == (2, "sealed-2")
    later = store.get_session_credential("h1", 50.0, "demo")
    assert later is not None
    assert later[1] == again


def test_a_session_past_its_expiry_is_refused_from_the_cache_too(store: SQLStorage) -> None:
    store.create_session("h1", "alice", 100.0)
    assert store.get_session("h1", 50.0) == "alice"
    assert store.get_session("h1", 150.0) is None  # the expiry is checked on every read


def test_a_write_through_this_process_engine_is_seen(store: SQLStorage) -> None:
    assert store.save_credential(record(1, "sealed-1"), 0)
    assert store.get_credential(KEY).version == 1  # type: ignore[union-attr]
    assert store.save_credential(record(2, "sealed-2"), 1)
    assert store.get_credential(KEY).version == 2  # type: ignore[union-attr]


def test_rows_not_found_are_not_kept(store: SQLStorage, url: str) -> None:
    assert store.get_credential(KEY) is None
    assert store._fast is not None
    assert store._fast._local.rows == {}
    in_another_process(
        url,
        "assert store.save_credential(StoredCredential("
        "CredentialKey('demo', 'alice'), 1, 'sealed-1', expires_at=1e10), 0)",
    )
    assert store.get_credential(KEY) is not None


def test_the_cache_is_bounded(store: SQLStorage) -> None:
    for n in range(READ_CACHE_SIZE + 40):
        store.create_session(f"h{n}", f"user-{n}", 1e10)
    for n in range(READ_CACHE_SIZE + 40):
        assert store.get_session(f"h{n}", 0.0) == f"user-{n}"
        assert store._fast is not None
        assert len(store._fast._local.rows) <= READ_CACHE_SIZE


def test_each_thread_reads_on_its_own_connection_and_cache(store: SQLStorage) -> None:
    assert store.save_credential(record(1, "sealed-1"), 0)
    assert store.get_credential(KEY) is not None
    seen: list[int | None] = []

    def reader() -> None:
        found = store.get_credential(KEY)
        seen.append(found.version if found else None)
        assert store._fast is not None
        seen.append(len(store._fast._local.rows))

    thread = threading.Thread(target=reader)
    thread.start()
    thread.join()
    assert seen == [1, 1]


def test_without_the_pragma_functions_reads_go_to_the_table(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SQLite built without ``pragma_data_version`` (played by an authorizer refusing it)
    reads every time, and the answers stay right."""
    connect = sqlite3.connect

    def refusing(database: str, **options: Any) -> sqlite3.Connection:
        conn: sqlite3.Connection = connect(database, **options)

        def authorize(action: int, arg1: str | None, *rest: object) -> int:
            refused = action == sqlite3.SQLITE_PRAGMA and arg1 == "data_version"
            return sqlite3.SQLITE_DENY if refused else sqlite3.SQLITE_OK

        conn.set_authorizer(authorize)
        return conn

    monkeypatch.setattr(sqlite3, "connect", refusing)
    store = SQLStorage(url)
    try:
        store.setup()
        assert store.save_credential(record(1, "sealed-1"), 0)
        assert store.get_credential(KEY).sealed == "sealed-1"  # type: ignore[union-attr]
        assert store._fast is not None
        assert not store._fast.cached
        seen = traced(store)
        assert store.save_credential(record(2, "sealed-2"), 1)
        assert store.get_credential(KEY).sealed == "sealed-2"  # type: ignore[union-attr]
        assert len(seen) == 1
        assert seen[0].startswith("SELECT version")
    finally:
        store.close()


def test_a_refresh_saved_on_the_lease_connection_is_seen_by_the_cached_read(
    store: SQLStorage,
) -> None:
    """The refresh path's writes go on a connection of their own (``_SQLiteLeaseWrites``);
    its commit is another connection's, so the read connection's cache is dropped."""
    assert store.save_credential(record(1, "sealed-1"), 0)
    assert store.get_credential(KEY).sealed == "sealed-1"  # type: ignore[union-attr]
    [taken] = store.acquire_leases_reading([(KEY, "owner-a")], 30.0, 1000.0)
    assert taken is not None
    assert taken.version == 1
    assert not store.acquire_lease(KEY, "owner-b", 30.0, 1001.0)  # held, seen on the engine
    assert store.save_credentials_releasing([(record(2, "sealed-2"), 1, "owner-a")]) == [True]
    assert store.get_credential(KEY).sealed == "sealed-2"  # type: ignore[union-attr]
    assert store.acquire_lease(KEY, "owner-b", 30.0, 1002.0)  # let go with the save
    assert store.save_credentials_releasing([(record(3, "sealed-3"), 1, "owner-a")]) == [False]
