"""SQL storage specifics: driver errors, backend selection (schema versioning: test_migrations)."""

from __future__ import annotations

from pathlib import Path

import pytest

from oauth_vault_mw import ConfigurationError, StorageUnavailable
from oauth_vault_mw.core.model import CredentialKey
from oauth_vault_mw.storage import (
    AsyncStorage,
    AsyncStorageAdapter,
    MemoryStorage,
    Storage,
    async_storage_from_url,
    storage_from_url,
)
from oauth_vault_mw.storage.sql import SQLStorage


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'vault.db'}"


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    store = SQLStorage(sqlite_url(tmp_path))
    try:
        store.setup()
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        store.close()


def test_driver_errors_become_storage_unavailable(tmp_path: Path) -> None:
    store = SQLStorage(f"sqlite:///{tmp_path / 'missing-dir' / 'vault.db'}")
    try:
        with pytest.raises(StorageUnavailable) as info:
            store.setup()
        assert info.value.status_code == 503
        assert str(tmp_path) not in info.value.description
        with pytest.raises(StorageUnavailable):
            store.get_credential(CredentialKey("demo", "alice"))
    finally:
        store.close()


def test_tables_missing_is_storage_unavailable(tmp_path: Path) -> None:
    store = SQLStorage(sqlite_url(tmp_path))  # setup() not called
    try:
        with pytest.raises(StorageUnavailable):
            store.get_session("s1", 0.0)
    finally:
        store.close()


def test_repr_shows_no_url(tmp_path: Path) -> None:
    store = SQLStorage(sqlite_url(tmp_path))
    try:
        assert repr(store) == "SQLStorage(dialect='sqlite')"
    finally:
        store.close()


def test_storage_from_url(tmp_path: Path) -> None:
    assert isinstance(storage_from_url("memory://"), MemoryStorage)
    store = storage_from_url(sqlite_url(tmp_path))
    try:
        assert isinstance(store, SQLStorage)
        assert isinstance(store, Storage)
    finally:
        store.close()


@pytest.mark.parametrize("url", ["mysql://db/x", "ftp://x", "nothing"])
def test_storage_from_url_unsupported(url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        storage_from_url(url)
    assert str(info.value).startswith("OAUTH_VAULT_STORAGE_URL: ")


async def test_async_storage_from_url(tmp_path: Path) -> None:
    memory = async_storage_from_url("memory://")
    assert isinstance(memory, AsyncStorageAdapter)
    assert isinstance(memory, AsyncStorage)
    assert isinstance(memory.sync, MemoryStorage)
    assert memory.shared_across_processes is False
    sql = async_storage_from_url(sqlite_url(tmp_path))
    assert isinstance(sql, AsyncStorageAdapter)
    assert isinstance(sql.sync, SQLStorage)
    assert sql.shared_across_processes is True
    await sql.close()
