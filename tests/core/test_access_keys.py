"""Access keys: format, hashing, parsing."""

from __future__ import annotations

from oauth_vault_mw.core.access_keys import (
    KEY_PREFIX,
    hash_secret,
    new_access_key,
    parse_access_key,
    same_hash,
)


def test_new_key_is_prefixed_high_entropy_and_stored_as_hash() -> None:
    key = new_access_key()
    assert key.value.startswith(KEY_PREFIX + key.key_id + "_")
    secret = key.value.rsplit("_", 1)[-1] if key.value.count("_") == 2 else key.value[22:]
    assert len(key.value) == len(KEY_PREFIX) + 16 + 1 + 43
    assert key.secret_hash == hash_secret(key.value[len(KEY_PREFIX) + 17 :])
    assert secret not in repr(key)
    assert key.value not in repr(key)
    assert key.secret_hash not in repr(key)
    assert new_access_key().value != key.value


def test_parse_roundtrip_and_refusals() -> None:
    key = new_access_key()
    parsed = parse_access_key(key.value)
    assert parsed == (key.key_id, key.secret_hash)
    assert same_hash(key.secret_hash, parsed[1])
    for bad in ("", "ovsk_", key.value + "x", key.value[:-1], "Bearer " + key.value,
                key.value.replace("ovsk_", "OVSK_"), key.value.upper()):  # fmt: skip
        assert parse_access_key(bad) is None
    other = new_access_key()
    assert not same_hash(key.secret_hash, other.secret_hash)
