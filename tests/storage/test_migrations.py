"""Schema versioning: the shipped Alembic migrations, ``setup()`` and ``oauth-vault db``.

On SQLite always; on PostgreSQL (``integration``) against a fresh database per test.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from oauth_vault_mw import ConfigurationError
from oauth_vault_mw.storage import migrations
from oauth_vault_mw.storage.sql import SQLStorage, metadata
from oauth_vault_mw.storage.sql_async import AsyncSQLStorage

from .test_contract import ALICE, NOW, record

TABLES = {
    "oauth_vault_credentials",
    "oauth_vault_identities",
    "oauth_vault_login_states",
    "oauth_vault_sessions",
    "oauth_vault_meta",
    "oauth_vault_records",
    "oauth_vault_events",
}
NEWER = "oauth_vault_9999"


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.integration),
    ]
)
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: a new SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'vault.db'}"
    return str(request.getfixturevalue("fresh_postgres_url"))


@pytest.fixture
def store(empty_url: str) -> Iterator[SQLStorage]:
    store = SQLStorage(empty_url)
    try:
        yield store
    finally:
        store.close()


def versions(store: SQLStorage) -> list[str]:
    with store.engine.connect() as conn:
        return list(migrations.current_revisions(conn))


def tables(store: SQLStorage) -> set[str]:
    with store.engine.connect() as conn:
        return set(sa.inspect(conn).get_table_names())


def set_version(store: SQLStorage, revision: str) -> None:
    with store.engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {migrations.VERSION_TABLE} SET version_num = :v"),
                     {"v": revision})  # fmt: skip


# -- the scripts ----------------------------------------------------------------------------


def test_revisions_are_stable_and_head_is_declared() -> None:
    script = ScriptDirectory.from_config(migrations.alembic_config())
    assert script.get_heads() == [migrations.HEAD]
    assert migrations.HEAD == "oauth_vault_0003"
    assert [s.revision for s in script.walk_revisions()] == [
        "oauth_vault_0003",
        "oauth_vault_0002",
        "oauth_vault_0001",
    ]
    base = script.get_revision("oauth_vault_0001")
    assert base is not None
    assert base.down_revision is None
    assert base.branch_labels == {"oauth_vault"}
    second = script.get_revision("oauth_vault_0002")
    assert second is not None
    assert second.down_revision == "oauth_vault_0001"
    assert second.branch_labels == {"oauth_vault"}  # inherited from the base
    third = script.get_revision("oauth_vault_0003")
    assert third is not None
    assert third.down_revision == "oauth_vault_0002"
    assert migrations.VERSION_TABLE == "oauth_vault_alembic_version"


def test_migrations_build_exactly_the_metadata(store: SQLStorage) -> None:
    """The frozen revision and the tables the code queries never drift apart."""
    store.setup()
    with store.engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "version_table": migrations.VERSION_TABLE,
                "include_name": migrations.vault_include_name,
            },
        )
        assert compare_metadata(context, metadata) == []


# -- setup / db init / db upgrade -------------------------------------------------------------


def test_setup_creates_the_schema_and_is_idempotent(store: SQLStorage) -> None:
    assert tables(store) == set()
    store.setup()
    assert tables(store) == TABLES | {migrations.VERSION_TABLE}
    assert versions(store) == [migrations.HEAD]
    assert store.save_credential(record(), 0)
    store.setup()
    again = SQLStorage(store.url)
    try:
        again.setup()
    finally:
        again.close()
    assert versions(store) == [migrations.HEAD]
    assert store.get_credential(ALICE) is not None


def test_setup_leaves_the_host_apps_alembic_version_alone(store: SQLStorage) -> None:
    with store.engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
        conn.execute(sa.text("INSERT INTO alembic_version VALUES ('host_rev_42')"))
    store.setup()
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).all() == [
            ("host_rev_42",)
        ]
    assert versions(store) == [migrations.HEAD]


def test_concurrent_setups_from_several_stores(store: SQLStorage) -> None:
    """Processes starting together: one creates the schema, the others find it."""
    stores = [SQLStorage(store.url) for _ in range(6)]
    barrier = threading.Barrier(len(stores))

    def start(s: SQLStorage) -> None:
        barrier.wait(timeout=60)
        s.setup()

    try:
        with ThreadPoolExecutor(max_workers=len(stores)) as pool:
            for started in [pool.submit(start, s) for s in stores]:
                started.result(timeout=60)  # a setup's exception is raised here
    finally:
        for s in stores:
            s.close()
    assert versions(store) == [migrations.HEAD]
    assert store.save_credential(record(), 0)


def test_a_newer_schema_is_refused(store: SQLStorage) -> None:
    store.setup()
    set_version(store, NEWER)
    other = SQLStorage(store.url)
    try:
        for attempt in (store, other):
            with pytest.raises(ConfigurationError) as info:
                attempt.setup()
            assert str(info.value) == (
                f"OAUTH_VAULT_STORAGE_URL: the database schema (revision {NEWER}) is newer than "
                "this library knows; upgrade oauth-vault-mw"
            )
    finally:
        other.close()
    assert versions(store) == [NEWER]  # refused without touching it


def test_a_schema_made_before_migrations_is_adopted(store: SQLStorage) -> None:
    """Tables from ``metadata.create_all`` (the library before migrations, or a host app that
    created them from ``metadata``) are stamped, not created again; their rows stay."""
    with store.engine.begin() as conn:
        metadata.create_all(conn)
    assert store.save_credential(record(), 0)
    store.setup()
    assert versions(store) == [migrations.HEAD]
    assert store.get_credential(ALICE) is not None


def test_a_0001_database_upgrades_to_head_keeping_its_rows(store: SQLStorage) -> None:
    """A database of the previous release gets the records and events tables."""
    with store.engine.begin() as conn:
        command.upgrade(migrations.alembic_config(conn), "oauth_vault_0001")
    assert versions(store) == ["oauth_vault_0001"]
    assert "oauth_vault_records" not in tables(store)
    assert store.save_credential(record(), 0)
    store.setup()
    assert versions(store) == [migrations.HEAD]
    assert tables(store) == TABLES | {migrations.VERSION_TABLE}
    assert store.get_credential(ALICE) is not None
    assert store.put_record("client", "ci", b"x", only_if_absent=True)
    store.append_events([(NOW, b"e")])
    assert store.read_events(NOW, 10) == [(NOW, b"e")]
    with store.engine.begin() as conn:  # and back: 0002 drops only its own tables
        command.downgrade(migrations.alembic_config(conn), "oauth_vault_0001")
    assert tables(store) == TABLES - {"oauth_vault_records", "oauth_vault_events"} | {
        migrations.VERSION_TABLE
    }
    assert store.get_credential(ALICE) is not None


def test_downgrade_and_upgrade_again(store: SQLStorage) -> None:
    store.setup()
    with store.engine.begin() as conn:
        command.downgrade(migrations.alembic_config(conn), "base")
    assert tables(store) == {migrations.VERSION_TABLE}
    store.setup()
    assert tables(store) == TABLES | {migrations.VERSION_TABLE}


def test_host_env_can_run_the_migrations_in_its_transaction(store: SQLStorage) -> None:
    """What a host app's Alembic env.py does (docs/storage.md)."""
    with store.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execution_options(isolation_level="READ COMMITTED")
        with conn.begin():
            migrations.upgrade(conn)
    assert versions(store) == [migrations.HEAD]


def test_host_autogenerate_filter() -> None:
    assert migrations.host_include_name("orders", "table", {}) is True
    assert migrations.host_include_name("oauth_vault_credentials", "table", {}) is False
    assert migrations.host_include_name(migrations.VERSION_TABLE, "table", {}) is False
    assert migrations.host_include_name("ix_whatever", "index", {}) is True


@pytest.mark.integration
async def test_async_setup_creates_the_schema(fresh_postgres_url: str) -> None:
    store = AsyncSQLStorage(fresh_postgres_url)
    try:
        await store.setup()
        await store.setup()
        assert await store.save_credential(record(), 0)
        assert await store.acquire_lease(ALICE, "a", 10, NOW)
    finally:
        await store.close()
    sync = SQLStorage(fresh_postgres_url)
    try:
        assert versions(sync) == [migrations.HEAD]
    finally:
        sync.close()


# -- the command line -------------------------------------------------------------------------


def cli_env(url: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "OAUTH_VAULT_SECRET_KEY": "k" * 40,
        "OAUTH_VAULT_ENCRYPTION_KEYS": base64.b64encode(os.urandom(32)).decode(),
        "OAUTH_VAULT_BASE_URL": "http://127.0.0.1:8000",
        "OAUTH_VAULT_STORAGE_URL": url,
        "OAUTH_VAULT_CONNECTIONS": json.dumps(
            [{"id": "demo", "issuer": "http://127.0.0.1:9", "client_id": "c", "client_secret": "s"}]
        ),
    }


def cli(url: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "oauth_vault_mw", *args], env=cli_env(url),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=60)
    return process.returncode, out, err


def test_cli_db_init_twice_then_upgrade(store: SQLStorage) -> None:
    for args in (("db", "init"), ("db", "init"), ("db", "upgrade")):
        code, out, err = finish(cli(store.url, *args))
        assert code == 0, err
        assert out.startswith("schema ready (")
    assert versions(store) == [migrations.HEAD]
    assert tables(store) == TABLES | {migrations.VERSION_TABLE}


def test_cli_db_upgrade_from_empty_in_parallel(store: SQLStorage) -> None:
    """Four deploy hooks (or app processes) at once on an empty database."""
    results = [finish(p) for p in [cli(store.url, "db", "upgrade") for _ in range(4)]]
    assert [code for code, _, _ in results] == [0, 0, 0, 0], results
    assert versions(store) == [migrations.HEAD]


def test_cli_refuses_a_newer_schema_in_one_line(store: SQLStorage) -> None:
    store.setup()
    set_version(store, NEWER)
    code, out, err = finish(cli(store.url, "db", "upgrade"))
    assert code == 1
    assert out == ""
    assert err == (
        f"oauth-vault: OAUTH_VAULT_STORAGE_URL: the database schema (revision {NEWER}) is newer "
        "than this library knows; upgrade oauth-vault-mw\n"
    )


HOST_ENV = """
from alembic import context

from oauth_vault_mw.storage import migrations as vault_migrations

connection = context.config.attributes["connection"]
context.configure(
    connection=connection, include_name=vault_migrations.host_include_name
)
with context.begin_transaction():
    context.run_migrations()
    vault_migrations.upgrade(connection)
"""

HOST_REVISION = """
import sqlalchemy as sa
from alembic import op

revision = "host_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("orders", sa.Column("id", sa.Integer, primary_key=True))


def downgrade():
    op.drop_table("orders")
"""


def test_a_host_apps_alembic_runs_the_vault_migrations(store: SQLStorage, tmp_path: Path) -> None:
    """The recipe of docs/storage.md: the host's ``alembic upgrade head`` brings both its own
    tables and the vault's, each history in its own version table."""
    from alembic.config import Config

    host = tmp_path / "host_migrations"
    (host / "versions").mkdir(parents=True)
    (host / "env.py").write_text(HOST_ENV)
    (host / "versions" / "host_0001.py").write_text(HOST_REVISION)
    for _ in range(2):
        with store.engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn.execution_options(isolation_level="READ COMMITTED")
            config = Config()
            config.set_main_option("script_location", str(host))
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
            conn.commit()
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).all() == [
            ("host_0001",)
        ]
    assert tables(store) == TABLES | {migrations.VERSION_TABLE, "alembic_version", "orders"}
    assert versions(store) == [migrations.HEAD]


def test_the_alembic_command_line_environment(tmp_path: Path) -> None:
    """env.py with a URL, as ``alembic -c ...`` would run it; and ``--sql`` (offline) mode."""
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    offline = migrations.alembic_config(url="postgresql://db.invalid/vault")
    offline.output_buffer = io.StringIO()
    command.upgrade(offline, "head", sql=True)
    script = offline.output_buffer.getvalue()
    assert "CREATE TABLE oauth_vault_credentials" in script
    assert "CREATE TABLE oauth_vault_events" in script
    assert f"CREATE TABLE {migrations.VERSION_TABLE}" in script
    command.upgrade(migrations.alembic_config(url=url), "head")
    store = SQLStorage(url)
    try:
        assert versions(store) == [migrations.HEAD]
        assert tables(store) == TABLES | {migrations.VERSION_TABLE}
        store.setup()
    finally:
        store.close()
