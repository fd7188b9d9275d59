"""``oauth-vault db migrate-accounts`` and the accounts in ``credentials list``/``show``, as a
subprocess on SQLite. The migration while the previous release runs is
``tests/integration/test_account_migration.py``."""

from __future__ import annotations

import base64
import json
import time

from oauth_vault_mw.core.accounts import DEFAULT_SLOT, account_id
from oauth_vault_mw.core.crypto import Sealer
from oauth_vault_mw.core.model import CredentialKey, TokenSet
from oauth_vault_mw.core.records import open_record, seal_record
from oauth_vault_mw.storage.sql import SQLStorage
from tests.support.suite import new_key

from .conftest import cli_env, run_cli

CONNECTIONS = [{"id": "demo", "issuer": "http://127.0.0.1:9", "client_id": "c",
                "client_secret": "s"}]  # fmt: skip


def seed(url: str, key: str) -> None:
    """Credentials as the previous release stored them (no subject): one user with one
    linked identity, one with two, one with none; and a second account of the first user."""
    sealer = Sealer([base64.b64decode(key)])
    storage = SQLStorage(url)
    storage.setup()
    now = time.time()
    try:
        for user, subjects in (("u1", ["s1"]), ("u2", ["s2a", "s2b"]), ("u3", [])):
            for subject in subjects:
                storage.link_identity("demo", subject, user)
            tokens = TokenSet(access_token=f"at-{user}", expires_at=now + 3600, obtained_at=now)
            record = seal_record(sealer, CredentialKey("demo", user), tokens, now=now)
            assert storage.save_credential(record, 0)
        other = CredentialKey("demo", "u1", account_id("demo", "s1b"))
        storage.link_identity("demo", "s1b", "u1")
        tokens = TokenSet(access_token="at-u1b", subject="s1b", expires_at=now + 3600)
        assert storage.save_credential(seal_record(sealer, other, tokens, now=now), 0)
    finally:
        storage.close()


def test_migrate_accounts_names_what_it_can_and_reruns_as_a_no_op(sqlite_url: str) -> None:
    key = new_key()
    seed(sqlite_url, key)
    env = cli_env(sqlite_url, [key], CONNECTIONS)
    first = run_cli(env, "db", "migrate-accounts", "--batch", "2")
    assert first.returncode == 0, first.stderr
    # u1's default: its linked subjects are s1 and s1b, and s1b has its own slot
    assert first.stdout.startswith(
        "scanned 4, migrated 1, already 1, ambiguous 1, unlinked 1, unreadable 0, busy 0, "
        "due 0, gone 0 ("
    )
    storage = SQLStorage(sqlite_url)
    try:
        record = storage.get_credential(CredentialKey("demo", "u1"))
        assert record is not None
        assert open_record(Sealer([base64.b64decode(key)]), record).subject == "s1"
        assert record.version == 2  # rewritten once, compare-and-set
    finally:
        storage.close()
    again = run_cli(env, "db", "migrate-accounts")
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("scanned 4, migrated 0, already 2, ambiguous 1, unlinked 1")


def test_credentials_list_and_show_name_the_account(sqlite_url: str) -> None:
    key = new_key()
    seed(sqlite_url, key)
    env = cli_env(sqlite_url, [key], CONNECTIONS)
    listed = run_cli(env, "credentials", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    slots = sorted((r["user_id"], r["slot"]) for r in rows)
    other = account_id("demo", "s1b")
    assert slots == sorted(
        [("u1", DEFAULT_SLOT), ("u1", other), ("u2", DEFAULT_SLOT), ("u3", DEFAULT_SLOT)]
    )
    plain = run_cli(env, "credentials", "list")
    assert f"account={other}" in plain.stdout
    shown = run_cli(env, "credentials", "show", "demo", "u1", "--account", other)
    assert shown.returncode == 0, shown.stderr
    assert f"account: {other}" in shown.stdout
    assert "at-u1b" not in shown.stdout
    bad = run_cli(env, "credentials", "show", "demo", "u1", "--account", "nope")
    assert bad.returncode == 1
    assert "--account" in bad.stderr
