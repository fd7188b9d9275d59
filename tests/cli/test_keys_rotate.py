"""``oauth-vault keys rotate``: re-seal with the newest key, resumably, never printing a secret."""

from __future__ import annotations

import base64
import time
from dataclasses import replace

import pytest

from oauth_vault_mw.core.crypto import Sealer, key_id
from oauth_vault_mw.core.model import CredentialKey, StoredCredential, TokenSet
from oauth_vault_mw.core.records import open_record, seal_record
from oauth_vault_mw.storage.sql import SQLStorage
from tests.core.test_crypto import v1_envelope
from tests.support.suite import new_key

from .conftest import cli_env, run_cli

CONNECTIONS = [
    {
        "id": "demo",
        "authorize_url": "http://127.0.0.1:9/authorize",
        "token_url": "http://127.0.0.1:9/token",
        "userinfo_url": "http://127.0.0.1:9/userinfo",
        "client_id": "c",
        "client_secret": "client-secret-value",
    }
]


def raw(key: str) -> bytes:
    return base64.b64decode(key)


def tokens_for(i: int) -> TokenSet:
    now = time.time()
    return TokenSet(f"AT-secret-{i}", f"RT-secret-{i}", expires_at=now + 600, obtained_at=now,
                    scope="openid")  # fmt: skip


def seed(url: str, key: str, users: range) -> None:
    storage = SQLStorage(url)
    storage.setup()
    sealer = Sealer([raw(key)])
    try:
        for i in users:
            record = seal_record(sealer, CredentialKey("demo", f"user-{i:03d}"), tokens_for(i),
                                 now=time.time())  # fmt: skip
            assert storage.save_credential(record, 0)
    finally:
        storage.close()


def stored(url: str) -> list[StoredCredential]:
    storage = SQLStorage(url)
    try:
        return storage.all_credentials()
    finally:
        storage.close()


def no_secret_in(text: str, *keys: str) -> None:
    assert "secret" not in text  # AT-secret-*, RT-secret-*, client-secret-value
    for key in keys:
        assert key not in text
        assert raw(key).hex() not in text


def test_rotation_reseals_every_record_then_is_a_noop(sqlite_url: str) -> None:
    old, new = new_key(), new_key()
    seed(sqlite_url, old, range(23))
    before = {r.key: r for r in stored(sqlite_url)}
    env = cli_env(sqlite_url, [new, old], CONNECTIONS)

    done = run_cli(env, "keys", "rotate", "--batch", "5")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "resealed 23, already current 0, unreadable 0\n"
    progress = done.stderr.splitlines()
    assert progress, "a line about every 10% when stderr is not a terminal"
    assert all(line.startswith("keys rotate: ") for line in progress)
    assert progress[-1] == "keys rotate: 100% (23/23)"
    no_secret_in(done.stdout + done.stderr, old, new)

    alone = Sealer([raw(new)])  # the old key can go: every record opens without it
    after = stored(sqlite_url)
    assert len(after) == 23
    for record in after:
        assert alone.kid_of(record.sealed) == key_id(raw(new))
        assert record.version == before[record.key].version + 1
        assert open_record(alone, record) == open_record(Sealer([raw(old)]), before[record.key])

    again = run_cli(env, "keys", "rotate")
    assert again.returncode == 0, again.stderr
    assert again.stdout == "resealed 0, already current 23, unreadable 0\n"
    assert [r.version for r in stored(sqlite_url)] == [r.version for r in after]


def test_an_interrupted_rotation_continues(sqlite_url: str) -> None:
    old, new = new_key(), new_key()
    seed(sqlite_url, new, range(0, 20, 2))  # what a first, interrupted run already did
    seed(sqlite_url, old, range(1, 20, 2))
    done = run_cli(cli_env(sqlite_url, [new, old], CONNECTIONS), "keys", "rotate", "-q")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "resealed 10, already current 10, unreadable 0\n"
    assert done.stderr == ""


def test_records_of_a_removed_key_are_counted_not_fatal(sqlite_url: str) -> None:
    old, new = new_key(), new_key()
    seed(sqlite_url, old, range(5))
    seed(sqlite_url, new, range(5, 8))
    storage = SQLStorage(sqlite_url)  # and one old record whose ciphertext was tampered with
    record = storage.get_credential(CredentialKey("demo", "user-004"))
    assert record is not None
    flipped = record.sealed[:-2] + ("A" if record.sealed[-2] != "A" else "B") + record.sealed[-1]
    assert storage.save_credential(replace(record, sealed=flipped), record.version)
    storage.close()

    done = run_cli(cli_env(sqlite_url, [new], CONNECTIONS), "keys", "rotate", "--quiet")
    assert done.returncode == 1
    assert done.stdout == "resealed 0, already current 3, unreadable 5\n"
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith("oauth-vault: 5 credentials unreadable: ")
    assert f"{key_id(raw(old))} (5)" in done.stderr
    assert "add the missing key back" in done.stderr  # one key id missing
    no_secret_in(done.stdout + done.stderr, old, new)
    # Left as they were: with the old key back they are rotated, but for the damaged one.
    assert sum(Sealer([raw(old)]).kid_of(r.sealed) == key_id(raw(old))
               for r in stored(sqlite_url)) == 5  # fmt: skip
    healed = run_cli(cli_env(sqlite_url, [new, old], CONNECTIONS), "keys", "rotate", "-q")
    assert healed.returncode == 1
    assert healed.stdout == "resealed 4, already current 3, unreadable 1\n"
    assert healed.stderr == ("oauth-vault: 1 credential unreadable: 1 failed the integrity check\n")


@pytest.mark.parametrize("value", ["0", "x", "-3", "10001"])
def test_a_bad_batch_is_one_line_naming_the_option(sqlite_url: str, value: str) -> None:
    done = run_cli(cli_env(sqlite_url, [new_key()], CONNECTIONS), "keys", "rotate",
                   "--batch", value)  # fmt: skip
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith("oauth-vault: argument --batch: ")


def test_an_empty_store_rotates_nothing(sqlite_url: str) -> None:
    seed(sqlite_url, new_key(), range(0))
    done = run_cli(cli_env(sqlite_url, [new_key()], CONNECTIONS), "keys", "rotate")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "resealed 0, already current 0, unreadable 0\n"
    assert done.stderr == ""


def test_keys_rotate_rewrites_v1_envelopes_with_the_current_key(sqlite_url: str) -> None:
    """Records sealed before length-prefixed associated data are re-sealed as ``v2`` even when
    no key changed; they opened before and open after."""
    key = new_key()
    seed(sqlite_url, key, range(3))
    sealer = Sealer([raw(key)])
    storage = SQLStorage(sqlite_url)
    try:
        for record in storage.all_credentials():
            plaintext = open_record(sealer, record).to_bytes()
            old = replace(record, sealed=v1_envelope(raw(key), plaintext, record.key.legacy_aad()))
            assert storage.save_credential(old, record.version)
    finally:
        storage.close()
    before = {r.key: open_record(sealer, r) for r in stored(sqlite_url)}
    assert all(r.sealed.startswith("v1.") for r in stored(sqlite_url))

    done = run_cli(cli_env(sqlite_url, [key], CONNECTIONS), "keys", "rotate")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "resealed 3, already current 0, unreadable 0\n"
    for record in stored(sqlite_url):
        assert record.sealed.startswith(f"v2.{key_id(raw(key))}.")
        assert open_record(sealer, record) == before[record.key]
