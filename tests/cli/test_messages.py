"""What the commands say: an unknown connection, a credential whose key is gone (its
``sealed_with``), counts with the right plural, and the sweep's entries in the audit trail.

All on SQLite, without a provider: the one connection points at a closed port."""

from __future__ import annotations

import base64
import os
import re
import time
from dataclasses import replace

import pytest

from oauth_vault_mw.cli._words import counted, id_list
from oauth_vault_mw.core.cookies import hash_id
from oauth_vault_mw.core.crypto import Sealer, key_id
from oauth_vault_mw.core.model import CredentialKey, TokenSet
from oauth_vault_mw.core.records import seal_record
from oauth_vault_mw.storage.sql import SQLStorage

from .conftest import cli_env, run_cli
from .test_keys_rotate import CONNECTIONS

SECOND = {**CONNECTIONS[0], "id": "second"}


def new_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def kid(key: str) -> str:
    return key_id(base64.b64decode(key))


def seed(url: str, key: str, *keys: CredentialKey, expires_in: float = 600) -> None:
    storage = SQLStorage(url)
    storage.setup()
    sealer = Sealer([base64.b64decode(key)])
    now = time.time()
    try:
        for i, where in enumerate(keys):
            tokens = TokenSet(f"AT-secret-{i}", f"RT-secret-{i}", expires_at=now + expires_in,
                              obtained_at=now, scope="openid email")  # fmt: skip
            assert storage.save_credential(seal_record(sealer, where, tokens, now=now), 0)
    finally:
        storage.close()


def one_line(text: str) -> str:
    assert text.count("\n") == 1, text
    assert text.startswith("oauth-vault: ")
    return text


# -- words ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "expected"),
    [(0, "0 credentials"), (1, "1 credential"), (2, "2 credentials"), (11, "11 credentials")],
)
def test_counted(n: int, expected: str) -> None:
    assert counted(n, "credential") == expected


def test_id_lists_are_bounded() -> None:
    assert id_list([]) == "none"
    assert id_list(["a", "b"]) == "a, b"
    assert id_list([str(i) for i in range(25)], most=3) == "0, 1, 2 and 22 more"


# -- credentials show -----------------------------------------------------------------------


def test_show_with_an_unknown_connection_names_it_and_the_known_ones(sqlite_url: str) -> None:
    env = cli_env(sqlite_url, [new_key()], [*CONNECTIONS, SECOND])
    done = run_cli(env, "credentials", "show", "github", "user-1")
    assert done.returncode == 1
    assert done.stdout == ""
    assert one_line(done.stderr) == (
        "oauth-vault: no connection 'github' in OAUTH_VAULT_CONNECTIONS (known: demo, second)\n"
    )


def test_show_without_a_credential_names_the_user_and_connection(sqlite_url: str) -> None:
    key = new_key()
    seed(sqlite_url, key, CredentialKey("demo", "user-1"))
    done = run_cli(cli_env(sqlite_url, [key], CONNECTIONS), "credentials", "show", "demo", "bob")
    assert done.returncode == 1
    assert done.stdout == ""
    assert (
        one_line(done.stderr) == "oauth-vault: no credential for user 'bob' of connection 'demo'\n"
    )


def test_show_a_bad_user_id_names_the_argument(sqlite_url: str) -> None:
    env = cli_env(sqlite_url, [new_key()], CONNECTIONS)
    done = run_cli(env, "credentials", "show", "demo", "../etc")
    assert done.returncode == 1
    assert one_line(done.stderr).startswith("oauth-vault: USER: user ids are")


def test_show_prints_sealed_with(sqlite_url: str) -> None:
    key = new_key()
    seed(sqlite_url, key, CredentialKey("demo", "user-1"))
    done = run_cli(cli_env(sqlite_url, [key], CONNECTIONS), "credentials", "show", "demo", "user-1")
    assert done.returncode == 0, done.stderr
    assert f"sealed_with: {kid(key)}\n" in done.stdout
    assert "refreshable: yes\n" in done.stdout
    assert "secret" not in done.stdout


def test_show_when_the_sealing_key_is_gone_names_its_id(sqlite_url: str) -> None:
    old, new = new_key(), new_key()
    seed(sqlite_url, old, CredentialKey("demo", "user-1"))
    env = cli_env(sqlite_url, [new], CONNECTIONS)
    done = run_cli(env, "credentials", "show", "demo", "user-1")
    assert done.returncode == 1
    lines = dict(line.split(": ", 1) for line in done.stdout.splitlines())
    assert lines["connection"] == "demo"
    assert lines["user"] == "user-1"
    assert lines["status"] == "active"  # the copy kept in the clear
    assert lines["scope"] == "openid email"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", lines["expires_at"])
    assert lines["refreshable"] == "unknown"
    assert lines["version"] == "1"
    assert lines["sealed_with"] == kid(old)
    assert one_line(done.stderr) == (
        f"oauth-vault: the credential cannot be opened: it is sealed with key id {kid(old)}, "
        f"not in OAUTH_VAULT_ENCRYPTION_KEYS (configured: {kid(new)}); add that key back after "
        "the current one\n"
    )
    text = done.stdout + done.stderr
    assert "secret" not in text
    assert old not in text
    assert new not in text


def test_show_a_damaged_record_says_so(sqlite_url: str) -> None:
    key = new_key()
    seed(sqlite_url, key, CredentialKey("demo", "user-1"))
    storage = SQLStorage(sqlite_url)
    record = storage.get_credential(CredentialKey("demo", "user-1"))
    assert record is not None
    flipped = record.sealed[:-2] + ("A" if record.sealed[-2] != "A" else "B") + record.sealed[-1]
    assert storage.save_credential(replace(record, sealed=flipped), record.version)
    storage.close()
    done = run_cli(cli_env(sqlite_url, [key], CONNECTIONS), "credentials", "show", "demo", "user-1")
    assert done.returncode == 1
    assert f"sealed_with: {kid(key)}\n" in done.stdout
    assert "failed the integrity check" in one_line(done.stderr)
    assert kid(key) in done.stderr


# -- plurals --------------------------------------------------------------------------------


def test_prune_counts_one_in_the_singular(sqlite_url: str) -> None:
    storage = SQLStorage(sqlite_url)
    storage.setup()
    now = time.time()
    storage.create_session(hash_id("old"), "user-1", now - 60)
    storage.put_login_state(hash_id("state-1"), b"sealed", now - 1)
    storage.put_login_state(hash_id("state-2"), b"sealed", now - 1)
    storage.close()
    done = run_cli(cli_env(sqlite_url, [new_key()], CONNECTIONS), "db", "prune")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "pruned 1 expired session, 2 expired login states\n"


@pytest.mark.parametrize(("count", "noun"), [(1, "1 credential"), (2, "2 credentials")])
def test_sweep_failures_are_counted_with_the_right_plural(
    sqlite_url: str, count: int, noun: str
) -> None:
    key = new_key()
    seed(sqlite_url, key, *(CredentialKey("gone", f"user-{i}") for i in range(count)))
    env = cli_env(sqlite_url, [key], CONNECTIONS)
    done = run_cli(env, "credentials", "refresh", "--expiring-within", "1h", "-q")
    assert done.returncode == 1
    assert done.stdout == f"refreshed 0, needs re-authentication 0, failed {count}, " \
        "skipped (already fresh) 0\n"  # fmt: skip
    assert one_line(done.stderr) == (
        f"oauth-vault: {noun} failed: {count} of a connection not in "
        f"OAUTH_VAULT_CONNECTIONS: gone ({count})\n"
    )


@pytest.mark.parametrize(
    ("missing", "expected"),
    [
        (1, "1 credential unreadable: sealed with key id not in OAUTH_VAULT_ENCRYPTION_KEYS"),
        (2, "2 credentials unreadable: sealed with key ids not in OAUTH_VAULT_ENCRYPTION_KEYS"),
    ],
)
def test_rotation_counts_unreadable_records_with_the_right_plural(
    sqlite_url: str, missing: int, expected: str
) -> None:
    gone = [new_key() for _ in range(missing)]
    for i, key in enumerate(gone):
        seed(sqlite_url, key, CredentialKey("demo", f"user-{i}"))
    done = run_cli(cli_env(sqlite_url, [new_key()], CONNECTIONS), "keys", "rotate", "-q")
    assert done.returncode == 1
    assert one_line(done.stderr).startswith(f"oauth-vault: {expected}: ")
    keys = "key" if missing == 1 else "keys"
    assert done.stderr.endswith(f"add the missing {keys} back (after the current one) and rerun\n")


# -- the sweep in the audit trail -----------------------------------------------------------


def test_the_sweep_writes_its_refreshes_to_the_audit_trail(sqlite_url: str) -> None:
    key = new_key()
    seed(sqlite_url, key, CredentialKey("demo", "user-1"), expires_in=30)
    env = cli_env(sqlite_url, [key], CONNECTIONS, OAUTH_VAULT_REFRESH_ATTEMPTS="1")
    done = run_cli(env, "credentials", "refresh", "--expiring-within", "10m", "-q")
    assert done.returncode == 1  # the provider's port is closed
    assert "1 credential failed: 1 could not be refreshed" in one_line(done.stderr)
    audit = run_cli(env, "audit", "--since", "1h")
    assert audit.returncode == 0, audit.stderr
    assert re.fullmatch(r"\S+Z system credentials\.refresh demo/user-1 failed\n", audit.stdout), (
        audit.stdout
    )
