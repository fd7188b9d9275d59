"""A throwaway PgBouncer in transaction pooling mode, in front of the test PostgreSQL server.

Fixtures (exposed to the whole suite through ``tests/support/suite.py``):

- ``pgbouncer`` (session): one :class:`PgBouncer` started on first use, with its own ini
  file in a temp dir: ``listen_addr = 127.0.0.1`` and a free port, no unix socket,
  ``pool_mode = transaction``, trust authentication (as the PostgreSQL server's loopback
  access), every database forwarded to the ``postgres_server`` fixture's server; stopped at
  the end of the session (its own process, by pid);
- ``pgbouncer_url`` (session): the storage URL through it,
  ``postgresql://vault@127.0.0.1:PORT/vault?prepare_threshold=none`` (PgBouncer before 1.21
  keeps no prepared statement across transactions: Debian 12 ships 1.18);
- ``pgbouncer_store_url`` (function): that URL with every ``oauth_vault_*`` table emptied
  (on the server directly), for a test that needs an empty store.

PgBouncer refuses to run as root: as root, it runs as the ``postgres`` system user if there
is one, else ``nobody`` (as the PostgreSQL server does).
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .ports import free_port

if TYPE_CHECKING:
    from .postgres_server import PostgresServer

# tests.support.postgres_server is a plugin of its own, loaded after the one that imports
# this module: imported here at run time only, once pytest has loaded (and rewritten) it.

__all__ = ["PgBouncer", "pgbouncer", "pgbouncer_store_url", "pgbouncer_url"]

INSTALL_HINT = "pgbouncer not found: apt-get install pgbouncer (./scripts/test installs it)"
POOL_SIZE = 20


def _binary() -> str:
    for candidate in ("/usr/sbin/pgbouncer", shutil.which("pgbouncer")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail(INSTALL_HINT, pytrace=False)


class PgBouncer:
    """One ``pgbouncer`` process in transaction pooling mode before one PostgreSQL server."""

    def __init__(self, server: PostgresServer) -> None:
        self.server = server
        self.base = Path(tempfile.mkdtemp(prefix="oauth-vault-pgbouncer-"))
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._as: dict[str, Any] = {}
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                user = pwd.getpwnam("nobody")
            self._as = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
            os.chown(self.base, user.pw_uid, user.pw_gid)
        self.base.chmod(0o700)

    @staticmethod
    def version() -> tuple[int, int]:
        """The installed PgBouncer's (major, minor)."""
        out = subprocess.run([_binary(), "--version"], capture_output=True, text=True, check=False)
        found = re.search(r"PgBouncer (\d+)\.(\d+)", out.stdout + out.stderr)
        return (int(found[1]), int(found[2])) if found else (0, 0)

    @property
    def ini(self) -> Path:
        return self.base / "pgbouncer.ini"

    @property
    def log(self) -> Path:
        return self.base / "pgbouncer.log"

    def url(self, database: str = "") -> str:
        """The storage URL of ``database`` (default: the server's own) through PgBouncer."""
        from .postgres_server import DATABASE, SUPERUSER

        name = database or DATABASE
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{name}?prepare_threshold=none"

    def _write_config(self) -> None:
        from .postgres_server import SUPERUSER

        users = self.base / "userlist.txt"
        users.write_text(f'"{SUPERUSER}" ""\n')  # trust: the user must still be listed
        self.ini.write_text(
            "[databases]\n"
            f"* = host=127.0.0.1 port={self.server.port}\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            "unix_socket_dir =\n"
            "auth_type = trust\n"
            f"auth_file = {users}\n"
            "pool_mode = transaction\n"
            f"default_pool_size = {POOL_SIZE}\n"
            "max_client_conn = 1000\n"
            f"logfile = {self.log}\n"
            "log_connections = 0\n"
            "log_disconnections = 0\n"
        )
        if self._as:
            for path in (self.ini, users):
                os.chown(path, self._as["user"], self._as["group"])

    def start(self, timeout: float = 10.0) -> None:
        if self.process is not None:
            return
        self._write_config()
        self.process = subprocess.Popen(
            [_binary(), str(self.ini)], cwd=self.base, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **self._as,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.process = None
                log = self.log.read_text()[-2000:] if self.log.exists() else ""
                pytest.fail(f"pgbouncer exited at start: {log}", pytrace=False)
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.02)
        self.stop()
        pytest.fail(f"pgbouncer did not listen within {timeout} s", pytrace=False)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the process this object started (by pid), and only that one."""
        process, self.process = self.process, None
        if process is None:
            return
        process.send_signal(signal.SIGINT)  # safe shutdown: waits for queries in flight
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def destroy(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="session")
def pgbouncer(postgres_server: PostgresServer) -> Iterator[PgBouncer]:
    bouncer = PgBouncer(postgres_server)
    bouncer.start()
    try:
        yield bouncer
    finally:
        bouncer.destroy()


@pytest.fixture(scope="session")
def pgbouncer_url(pgbouncer: PgBouncer) -> str:
    return pgbouncer.url()


@pytest.fixture
def pgbouncer_store_url(pgbouncer: PgBouncer) -> str:
    from .postgres_server import empty_vault_tables

    empty_vault_tables(pgbouncer.server.url())
    return pgbouncer.url()
