"""A throwaway PostgreSQL server for the tests (a pytest plugin, listed in tests/conftest.py).

Fixtures:

- ``postgres_server`` (session): a :class:`PostgresServer` started on first use: ``initdb`` in a
  temp dir, listening on 127.0.0.1 and a free port (and a unix socket in that dir only), with
  ``fsync``, ``synchronous_commit`` and ``full_page_writes`` off; stopped (``pg_ctl stop -m
  fast`` on its own data dir) and removed at the end of the session.
- ``postgres_url`` (session): ``postgresql://vault@127.0.0.1:PORT/vault``, a database on it
  (trust authentication on loopback: the cluster is throwaway).
- ``postgres_store_url`` (function): that database with every ``oauth_vault_*`` table emptied
  (``TRUNCATE``; the schema and its version stay): an empty store for one test.
- ``fresh_postgres_url`` (function): a new, empty database, dropped after the test.

For a server to stop and restart mid-test (storage down), start a private one:
``with PostgresServer.start_new() as server: ...; server.stop(); server.start()`` (same port).

Postgres refuses to run as root: as root (the CI container) the server runs as the
``postgres`` system user if there is one, else ``nobody``; otherwise as the current user.
Missing binaries fail the test with the package to install (``./scripts/test`` installs it).
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from .ports import free_port

__all__ = ["PostgresServer", "find_pg_bin"]

SUPERUSER = "vault"
DATABASE = "vault"
SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
}


def find_pg_bin() -> Path | None:
    """The directory of ``initdb``/``pg_ctl``: ``$PG_BIN``, the newest Debian cluster, PATH."""
    given = os.environ.get("PG_BIN")
    candidates = [Path(given)] if given else []

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", path.parent.name))

    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
    found = shutil.which("initdb")
    if found:
        candidates.append(Path(found).parent)
    for directory in candidates:
        if (directory / "initdb").is_file() and (directory / "pg_ctl").is_file():
            return directory
    return None


class PostgresServer:
    """One throwaway cluster in its own temp dir; :meth:`start`/:meth:`stop` keep the port."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.base = Path(tempfile.mkdtemp(prefix="oauth-vault-pg-"))
        self.data = self.base / "data"
        self.log = self.base / "server.log"
        self.port = free_port()
        self.running = False
        self._as: dict[str, Any] = {}
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                user = pwd.getpwnam("nobody")
            self._as = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
            os.chown(self.base, user.pw_uid, user.pw_gid)
        self.base.chmod(0o700)
        self._names = itertools.count(1)

    @classmethod
    def start_new(cls) -> PostgresServer:
        """A new cluster, initialised and started; fails the test when PostgreSQL is missing."""
        bin_dir = find_pg_bin()
        if bin_dir is None:
            pytest.fail(
                "PostgreSQL server binaries (initdb, pg_ctl) not found: "
                "apt-get install postgresql (./scripts/test installs it), or set PG_BIN"
            )
        server = cls(bin_dir)
        atexit.register(server.destroy)  # even if the session is cut short
        try:
            server._pg("initdb", "-D", str(server.data), "-U", SUPERUSER, "-A", "trust",
                       "-E", "UTF8", "--locale=C", "--no-sync")  # fmt: skip
            server.start()
            server.create_database(DATABASE)
        except BaseException:
            server.destroy()
            raise
        return server

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.destroy()

    def _pg(self, tool: str, *args: str) -> None:
        done = subprocess.run(
            [str(self.bin_dir / tool), *args], cwd=self.base, capture_output=True, text=True,
            timeout=60, check=False, **self._as,
        )  # fmt: skip
        if done.returncode != 0:
            log = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stderr}{log}")

    def start(self) -> None:
        options = [f"-p {self.port}", f"-k {self.base}"]
        options += [f"-c {name}={value}" for name, value in SETTINGS.items()]
        self._pg("pg_ctl", "start", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
                 "-o", " ".join(options))  # fmt: skip
        self.running = True

    def stop(self) -> None:
        """``pg_ctl stop -m fast`` on this cluster's data dir (its own postmaster only)."""
        if self.running:
            self._pg("pg_ctl", "stop", "-D", str(self.data), "-m", "fast", "-w", "-t", "60")
            self.running = False

    def destroy(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def url(self, database: str = DATABASE) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def admin(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.url("postgres"), autocommit=True)

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; returns its URL."""
        name = name or f"test_{next(self._names)}"
        with self.admin() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def drop_database(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))  # fmt: skip

    def connections(self, database: str = DATABASE) -> int:
        """Client connections open to ``database`` now (``pg_stat_activity``)."""
        with self.admin() as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (database,),
            ).fetchone()
        return int(row[0]) if row else 0

    def connections_settle(self, database: str, *, expected: int, within: float = 5.0) -> int:
        """:meth:`connections`, polled until it is ``expected`` or ``within`` seconds pass: a
        server process leaves ``pg_stat_activity`` a moment after its client hung up."""
        deadline = time.monotonic() + within
        while True:
            count = self.connections(database)
            if count == expected or time.monotonic() >= deadline:
                return count
            time.sleep(0.05)


def empty_vault_tables(url: str) -> None:
    """TRUNCATE every ``oauth_vault_*`` table but the schema version."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET lock_timeout = '10s'")
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                "AND tablename LIKE 'oauth\\_vault\\_%' "
                "AND tablename <> 'oauth_vault_alembic_version'"
            )
        ]
        if tables:
            conn.execute(
                sql.SQL("TRUNCATE {}").format(sql.SQL(", ").join(map(sql.Identifier, tables)))
            )


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer.start_new()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    return postgres_server.url()


@pytest.fixture
def postgres_store_url(postgres_url: str) -> str:
    empty_vault_tables(postgres_url)
    return postgres_url


@pytest.fixture
def fresh_postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    url = postgres_server.create_database()
    try:
        yield url
    finally:
        with contextlib.suppress(psycopg.Error):
            postgres_server.drop_database(url.rsplit("/", 1)[1])
