"""PostgreSQL behind PgBouncer in transaction pooling mode: app processes on one credential.

Each transaction of a client may run on another server connection, so nothing may outlive a
transaction: no session state, no session-level advisory lock, no server-side prepared
statement. The storage's steps are single statements (leases are conditional ``UPDATE``\\ s,
the migrations' advisory lock is transaction-level), and ``?prepare_threshold=none`` turns
off psycopg's prepared statements, which PgBouncer keeps across transactions only from 1.21.

Four real app processes (Python interpreters, each with its own sync vault and threads) share
one credential through PgBouncer: a lease race between all their threads has one winner, and
each expiry costs exactly one refresh at the provider, with every caller served the same new
token.
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
ROUND_GAP = 1.5  # s between the rounds the processes start together

CHILD = r"""
import json, sys, threading, time
from oauth_vault_mw import CredentialKey, Settings, Vault

config, user_id, start_at, callers, expiries, ttl, gap, me = json.loads(sys.argv[1])
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

# round 0: every thread of every process asks for one lease at once; the winner lets go
won = together(start_at, lambda i: vault.storage.acquire_lease(key, f"{me}-{i}", 30, time.time()))
time.sleep(max(0.0, start_at + gap / 2 - time.time()))
for i, mine in enumerate(won):
    if mine is True:
        vault.storage.release_lease(key, f"{me}-{i}")
rounds = []
for k in range(1, expiries + 1):
    skew = k * (ttl + 1)  # past the expiry of the token the last round got
    read = lambda i: vault.get_connection_credentials("demo", user_id).access_token
    rounds.append(together(start_at + k * gap, read))
vault.close()
print(json.dumps({"won": won, "rounds": rounds}))
"""


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
    try:
        with httpx.Client() as browser:
            user_id = vault_login_sync(parent, browser, unique_user())
        key = CredentialKey("demo", user_id)
        first = parent.get_connection_credentials("demo", user_id).access_token
        before = parent.storage.get_credential(key)
        assert before is not None
        stats = provider.stats()
        provider.fail(status=0, delay_ms=SLOW_REFRESH_MS, count=EXPIRIES)
        start_at = time.time() + 3  # every interpreter loaded and connected by then
        args = [config, user_id, start_at, CALLERS, EXPIRIES, TOKEN_TTL, ROUND_GAP]
        children = [
            subprocess.Popen(
                [sys.executable, "-c", CHILD, json.dumps([*args, f"p{n}"])],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for n in range(PROCESSES)
        ]
        outcomes = []
        for child in children:
            out, err = child.communicate(timeout=60)
            assert child.returncode == 0, err
            outcomes.append(json.loads(out))
        provider.clear_failures()
        after = parent.storage.get_credential(key)
    finally:
        parent.close()

    won = [w for o in outcomes for w in o["won"]]
    assert len(won) == PROCESSES * CALLERS
    assert won.count(True) == 1, won  # the lease is exclusive across processes
    assert set(won) == {True, False}
    assert provider.stats()["refresh_grants"] - stats["refresh_grants"] == EXPIRIES
    assert provider.stats()["refresh_errors"] == stats["refresh_errors"]  # no token reused
    served = [first]
    for k in range(EXPIRIES):
        tokens = {t for o in outcomes for t in o["rounds"][k]}
        assert len(tokens) == 1, tokens  # one refresh: every caller got its token
        served.append(tokens.pop())
    assert len(set(served)) == EXPIRIES + 1  # each expiry a new token
    assert after is not None
    assert after.version == before.version + EXPIRIES  # written once per expiry


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
