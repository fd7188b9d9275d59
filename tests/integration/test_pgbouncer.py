"""PostgreSQL behind PgBouncer in transaction pooling mode: app processes on one credential.

Each transaction of a client may run on another server connection, so nothing may outlive a
transaction: no session state, no session-level advisory lock, no server-side prepared
statement. The storage's steps are single statements (leases are conditional ``UPDATE``\\ s,
the migrations' advisory lock is transaction-level), and ``?prepare_threshold=none`` turns
off psycopg's prepared statements, which PgBouncer keeps across transactions only from 1.21.

Four real app processes (Python interpreters, each with its own sync vault and threads) share
one credential through PgBouncer: a lease race between all their threads, started at one
moment, has one winner, and each expiry costs exactly one refresh at the provider, with every
caller served the same new token.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from oauth_vault_mw import CredentialKey, Settings, Vault
from oauth_vault_mw.core.errors import StorageUnavailable
from oauth_vault_mw.storage.sql import SQLStorage
from tests.support.oidc_provider import DevProvider
from tests.support.pgbouncer import PgBouncer
from tests.support.suite import TOKEN_TTL, connection_settings, new_key, vault_login_sync

pytestmark = pytest.mark.integration

PROCESSES = 4
CALLERS = 8  # threads per process
EXPIRIES = 2
SLOW_REFRESH_MS = 300

CHILD = r"""
import json, sys, threading, time
from oauth_vault_mw import CredentialKey, Settings, Vault

config, user_id, callers, me = json.loads(sys.argv[1])
skew = 0.0
vault = Vault(Settings.from_mapping(config), clock=lambda: time.time() + skew)
vault.startup()
key = CredentialKey("demo", user_id)

def together(at, work):
    results = [None] * callers
    def one(i):
        time.sleep(max(0.0, at - time.time()))
        try:
            results[i] = work(i)
        except Exception as exc:
            results[i] = "error: " + type(exc).__name__
    threads = [threading.Thread(target=one, args=(i,)) for i in range(callers)]
    for t in threads: t.start()
    for t in threads: t.join()
    return results

def lease(i):
    return vault.storage.acquire_lease(key, f"{me}-{i}", 30, time.time())

def read(i):
    return vault.get_connection_credentials("demo", user_id).access_token

print(json.dumps("ready"), flush=True)
for line in sys.stdin:  # one phase a line: [what, start at, clock skew]
    what, start_at, skew = json.loads(line)
    print(json.dumps(together(start_at, lease if what == "lease" else read)), flush=True)
vault.close()
"""


class Workers:
    """``PROCESSES`` interpreters running :data:`CHILD`; each phase starts in all at once."""

    def __init__(self, config: dict[str, Any], user_id: str) -> None:
        self.children = [
            subprocess.Popen(
                [sys.executable, "-c", CHILD, json.dumps([config, user_id, CALLERS, f"p{n}"])],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for n in range(PROCESSES)
        ]
        assert self._replies() == ["ready"] * PROCESSES

    def _replies(self) -> list[Any]:
        replies = []
        for child in self.children:
            assert child.stdout is not None
            line = child.stdout.readline()
            assert line, f"a worker exited ({child.wait(10)})"
            replies.append(json.loads(line))
        return replies

    def phase(self, what: str, skew: float) -> list[Any]:
        """Every thread of every worker runs ``what`` at the same moment; their results."""
        start_at = time.time() + 0.3
        for child in self.children:
            assert child.stdin is not None
            child.stdin.write(json.dumps([what, start_at, skew]) + "\n")
            child.stdin.flush()
        return [result for reply in self._replies() for result in reply]

    def close(self) -> None:
        for child in self.children:
            assert child.stdin is not None
            child.stdin.close()
        for child in self.children:
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            assert child.stdout is not None
            child.stdout.close()


def _config(provider: DevProvider, storage_url: str) -> dict[str, Any]:
    return {
        "secret_key": "s" * 48,
        "encryption_keys": [new_key()],
        "base_url": "http://127.0.0.1:8000",
        "storage_url": storage_url,
        "provider_timeout": 5,
        "connections": connection_settings(provider),
    }


def test_pgbouncer_transaction_pooling_one_refresh_per_expiry(
    pgbouncer_store_url: str, provider: DevProvider, unique_user: Callable[[], str]
) -> None:
    config = _config(provider, pgbouncer_store_url)
    parent = Vault(Settings.from_mapping(config))
    parent.startup()
    workers: Workers | None = None
    try:
        with httpx.Client() as browser:
            user_id = vault_login_sync(parent, browser, unique_user())
        key = CredentialKey("demo", user_id)
        token = parent.get_connection_credentials("demo", user_id).access_token
        workers = Workers(config, user_id)

        won = workers.phase("lease", 0.0)
        assert len(won) == PROCESSES * CALLERS
        assert won.count(True) == 1, won  # the lease is exclusive across processes
        assert set(won) == {True, False}
        winner = won.index(True)
        parent.storage.release_lease(key, f"p{winner // CALLERS}-{winner % CALLERS}")

        for expiry in range(1, EXPIRIES + 1):
            before = parent.storage.get_credential(key)
            stats = provider.stats()
            provider.fail(status=0, delay_ms=SLOW_REFRESH_MS, count=1)
            try:
                tokens = workers.phase("read", expiry * (TOKEN_TTL + 1))  # past the expiry
            finally:
                provider.clear_failures()
            after = parent.storage.get_credential(key)
            assert provider.stats()["refresh_grants"] - stats["refresh_grants"] == 1
            assert provider.stats()["refresh_errors"] == stats["refresh_errors"]  # no reuse
            assert len(tokens) == PROCESSES * CALLERS
            assert len(set(tokens)) == 1, set(tokens)  # every caller got the one new token
            assert token not in tokens
            assert before is not None
            assert after is not None
            assert after.version == before.version + 1  # written once
            token = tokens[0]
    finally:
        if workers is not None:
            workers.close()
        parent.close()


def test_pgbouncer_transaction_pooling_needs_no_prepared_statements(
    pgbouncer: PgBouncer, pgbouncer_store_url: str
) -> None:
    """With ``?prepare_threshold=none`` threads on one pool read through PgBouncer without an
    error. Without it, psycopg prepares a statement it ran five times on the server
    connection of that moment, and a later transaction on another one fails; that happening
    shows that PgBouncer really does pool by transaction (up to 1.20, which keeps no prepared
    statements)."""

    def errors(url: str) -> list[str]:
        store = SQLStorage(url)
        store.setup()
        failed: list[str] = []

        def read(i: int) -> None:
            for _ in range(30):
                try:
                    store.get_credential(CredentialKey("demo", f"user-{i}"))
                except StorageUnavailable as err:
                    failed.append(err.description)

        try:
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(read, range(8)))
        finally:
            store.close()
        return failed

    assert errors(pgbouncer_store_url) == []
    if pgbouncer.version() < (1, 21):
        plain = pgbouncer_store_url.replace("?prepare_threshold=none", "")
        assert "storage error: InvalidSqlStatementName" in errors(plain)
