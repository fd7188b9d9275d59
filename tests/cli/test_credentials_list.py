"""``oauth-vault credentials list``: every stored credential with when its user must log in
again, the filters an app uses to warn users in time, JSON lines, never a token; and
``jobs.credential_states``, the same for an app's own scheduler. SQLite, no provider."""

from __future__ import annotations

import base64
import json
import os
import time

import pytest

from oauth_vault_mw.core.crypto import Sealer
from oauth_vault_mw.core.model import REAUTHENTICATION_REQUIRED, CredentialKey, TokenSet
from oauth_vault_mw.core.records import seal_record
from oauth_vault_mw.jobs import credential_states
from oauth_vault_mw.storage.sql import SQLStorage

from .conftest import cli_env, run_cli
from .test_keys_rotate import CONNECTIONS

SECOND = {**CONNECTIONS[0], "id": "second"}
DAY = 86400.0
NOW = time.time()

# connection, user, what is sealed; the expected login_needed_at
CASES: list[tuple[CredentialKey, TokenSet]] = [
    # the provider says the refresh token ends in 3 days
    (CredentialKey("demo", "ann"), TokenSet("AT-1", "RT-1", expires_at=NOW + 600,
                                            refresh_expires_at=NOW + 3 * DAY)),
    # ends in 30 days
    (CredentialKey("demo", "bob"), TokenSet("AT-2", "RT-2", expires_at=NOW + 600,
                                            refresh_expires_at=NOW + 30 * DAY)),
    # no end known
    (CredentialKey("demo", "cat"), TokenSet("AT-3", "RT-3", expires_at=NOW + 600)),
    # no refresh token: the access token's expiry, in 2 days
    (CredentialKey("second", "dan"), TokenSet("AT-4", None, expires_at=NOW + 2 * DAY)),
    # refused at the provider: at once
    (CredentialKey("second", "eve"), TokenSet("AT-5", "RT-5", expires_at=NOW - 60,
                                              status=REAUTHENTICATION_REQUIRED)),
]  # fmt: skip


@pytest.fixture
def store(tmp_path: object) -> tuple[str, str]:
    url = f"sqlite:///{tmp_path}/vault.db"
    key = base64.b64encode(os.urandom(32)).decode()
    storage = SQLStorage(url)
    storage.setup()
    sealer = Sealer([base64.b64decode(key)])
    try:
        for where, tokens in CASES:
            record = seal_record(sealer, where, tokens, now=NOW)
            assert storage.save_credential(record, 0)
    finally:
        storage.close()
    return url, key


def _listed(env: dict[str, str], *args: str) -> list[dict[str, object]]:
    done = run_cli(env, "credentials", "list", "--json", *args)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert done.stderr.strip().endswith(f"{len(rows)} credential" + ("" if len(rows) == 1 else "s"))
    return rows


def test_list_shows_when_each_user_must_log_in_again(store: tuple[str, str]) -> None:
    url, key = store
    env = cli_env(url, [key], [CONNECTIONS[0], SECOND])
    rows = _listed(env)
    assert [(r["connection_id"], r["user_id"]) for r in rows] == [
        (k.connection_id, k.user_id) for k, _ in sorted(CASES, key=lambda c: c[0])
    ]
    by_user = {r["user_id"]: r for r in rows}
    assert by_user["ann"]["login_needed_at"] == int(NOW + 3 * DAY)
    assert by_user["cat"]["login_needed_at"] is None
    assert by_user["dan"]["login_needed_at"] == int(NOW + 2 * DAY)
    assert by_user["dan"]["refreshable"] is False
    assert by_user["eve"]["login_needed_at"] == 0
    assert by_user["eve"]["status"] == REAUTHENTICATION_REQUIRED
    done = run_cli(env, "credentials", "list")
    assert done.returncode == 0, done.stderr
    assert "login_needed_at=now" in done.stdout
    assert "login_needed_at=unknown" in done.stdout
    assert done.stdout.strip().endswith("5 credentials")
    for _, tokens in CASES:  # never a token
        assert tokens.access_token not in done.stdout
        assert str(tokens.refresh_token) not in done.stdout


def test_filters_combine(store: tuple[str, str]) -> None:
    url, key = store
    env = cli_env(url, [key], [CONNECTIONS[0], SECOND])
    soon = _listed(env, "--expiring-within", "7d")
    assert [r["user_id"] for r in soon] == ["ann", "dan", "eve"]
    assert [
        r["user_id"] for r in _listed(env, "--expiring-within", "7d", "--connection", "demo")
    ] == ["ann"]
    marked = _listed(env, "--status", "reauthentication_required")
    assert [r["user_id"] for r in marked] == ["eve"]
    assert [r["user_id"] for r in _listed(env, "--connection", "second", "--status", "active")] == [
        "dan"
    ]
    done = run_cli(env, "credentials", "list", "--connection", "nope")
    assert done.returncode != 0
    assert "no connection 'nope' in OAUTH_VAULT_CONNECTIONS (known: demo, second)" in done.stderr
    done = run_cli(env, "credentials", "list", "--expiring-within", "soon")
    assert done.returncode != 0
    assert "invalid duration 'soon'" in done.stderr


def test_a_record_no_key_opens_is_listed_from_its_clear_copies(store: tuple[str, str]) -> None:
    url, _ = store
    other = base64.b64encode(os.urandom(32)).decode()
    env = cli_env(url, [other], [CONNECTIONS[0], SECOND])  # the sealing key is gone
    rows = _listed(env)
    assert len(rows) == len(CASES)
    assert all(r["readable"] is False and r["login_needed_at"] is None for r in rows)
    assert _listed(env, "--expiring-within", "7d") == []
    done = run_cli(env, "credentials", "list")
    assert "not openable" in done.stdout


def test_credential_states_for_an_app_scheduler(store: tuple[str, str]) -> None:
    url, key = store
    storage = SQLStorage(url)
    try:
        sealer = Sealer([base64.b64decode(key)])
        states = list(credential_states(storage, sealer, login_needed_within=7 * DAY, batch=2))
        assert [s.key.user_id for s in states] == ["ann", "dan", "eve"]
        assert repr(states).count("AT-") == 0
        later = list(credential_states(storage, sealer, login_needed_within=31 * DAY, now=NOW))
        assert [s.key.user_id for s in later] == ["ann", "bob", "dan", "eve"]
    finally:
        storage.close()
