"""Sealing credentials: AES-256-GCM, key id in the envelope, record key as associated data."""

from __future__ import annotations

import base64
import os
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from oauth_vault_mw import CredentialKey, CredentialUnreadable
from oauth_vault_mw.core.crypto import Sealer, key_id
from oauth_vault_mw.core.flow import LoginTransaction
from oauth_vault_mw.core.model import TokenSet
from oauth_vault_mw.core.records import (
    OpenedRecords,
    open_record,
    open_transaction,
    seal_record,
    seal_transaction,
)

OLD = bytes(range(32))
NEW = bytes(range(32, 64))
ALICE = CredentialKey("demo", "alice")
BOB = CredentialKey("demo", "bob")
TOKENS = TokenSet(
    access_token="at-secret", refresh_token="rt-secret", expires_at=2000.0, obtained_at=1000.0
)


def test_roundtrip() -> None:
    sealer = Sealer([NEW])
    envelope = sealer.seal(b"plaintext", ALICE.aad())
    assert envelope.startswith(f"v2.{key_id(NEW)}.")
    assert envelope.isascii()
    assert b"plaintext" not in envelope.encode()
    assert sealer.unseal(envelope, ALICE.aad()) == b"plaintext"


def test_every_seal_uses_a_fresh_nonce() -> None:
    sealer = Sealer([NEW])
    assert sealer.seal(b"same", ALICE.aad()) != sealer.seal(b"same", ALICE.aad())


def test_record_copied_to_another_key_fails() -> None:
    sealer = Sealer([NEW])
    record = seal_record(sealer, ALICE, TOKENS, now=1000.0)
    assert open_record(sealer, record) == TOKENS
    with pytest.raises(CredentialUnreadable):
        sealer.unseal(record.sealed, BOB.aad())
    moved = type(record)(key=BOB, version=record.version, sealed=record.sealed)
    with pytest.raises(CredentialUnreadable):
        open_record(sealer, moved)


@pytest.mark.parametrize(
    "other",
    [
        CredentialKey("other", "alice"),
        CredentialKey("demo", "alice", "second"),
        # the separator keeps ("a", "b\x00c") apart from ("a\x00b", "c")
        CredentialKey("demo\x00alice", "default"),
    ],
    ids=["connection", "account", "ambiguous-join"],
)
def test_every_part_of_the_key_is_bound(other: CredentialKey) -> None:
    sealer = Sealer([NEW])
    envelope = sealer.seal(b"x", ALICE.aad())
    assert other.aad() != ALICE.aad()
    with pytest.raises(CredentialUnreadable):
        sealer.unseal(envelope, other.aad())


def _flip(envelope: str, index: int) -> str:
    version, kid, blob = envelope.split(".")
    raw = bytearray(base64.urlsafe_b64decode(blob + "=" * (-len(blob) % 4)))
    raw[index] ^= 0x01
    return f"{version}.{kid}.{base64.urlsafe_b64encode(bytes(raw)).rstrip(b'=').decode()}"


@pytest.mark.parametrize("index", [0, 11, 12, -1], ids=["nonce", "nonce-end", "body", "tag"])
def test_tampered_ciphertext_fails(index: int) -> None:
    sealer = Sealer([NEW])
    envelope = sealer.seal(b"a credential", ALICE.aad())
    with pytest.raises(CredentialUnreadable):
        sealer.unseal(_flip(envelope, index), ALICE.aad())


@pytest.mark.parametrize(
    "envelope",
    [
        "",
        "v1",
        "v1.abc",
        "v2.{kid}.AAAA",
        "v1.{kid}.",
        "v1.{kid}.AAAA",
        "v1.{kid}.!!!!",
        "v1.{kid}.A",
    ],
)
def test_malformed_envelope_fails(envelope: str) -> None:
    sealer = Sealer([NEW])
    with pytest.raises(CredentialUnreadable):
        sealer.unseal(envelope.format(kid=sealer.current_kid), ALICE.aad())


def test_unknown_kid_fails() -> None:
    envelope = Sealer([OLD]).seal(b"x", ALICE.aad())
    with pytest.raises(CredentialUnreadable) as info:
        Sealer([NEW]).unseal(envelope, ALICE.aad())
    assert "key" in info.value.description


def test_kid_swapped_to_a_configured_key_fails() -> None:
    sealer = Sealer([NEW, OLD])
    envelope = sealer.seal(b"x", ALICE.aad())
    forged = envelope.replace(key_id(NEW), key_id(OLD), 1)
    with pytest.raises(CredentialUnreadable):
        sealer.unseal(forged, ALICE.aad())


def test_rotation() -> None:
    old_envelope = Sealer([OLD]).seal(b"sealed long ago", ALICE.aad())
    rotated = Sealer([NEW, OLD])
    assert rotated.kid_of(old_envelope) == key_id(OLD)
    assert rotated.unseal(old_envelope, ALICE.aad()) == b"sealed long ago"
    resealed = rotated.seal(b"sealed long ago", ALICE.aad())
    assert rotated.kid_of(resealed) == rotated.current_kid == key_id(NEW)
    assert Sealer([NEW]).unseal(resealed, ALICE.aad()) == b"sealed long ago"
    with pytest.raises(CredentialUnreadable):
        Sealer([OLD]).unseal(resealed, ALICE.aad())


def test_kid_of() -> None:
    sealer = Sealer([NEW])
    assert sealer.kid_of("not an envelope") is None
    assert key_id(NEW) != key_id(OLD)
    assert len(key_id(NEW)) == 16


def test_no_key_is_refused() -> None:
    with pytest.raises(ValueError, match="key"):
        Sealer([])


def test_repr_shows_no_key() -> None:
    text = repr(Sealer([NEW, OLD]))
    assert key_id(NEW) in text
    assert repr(NEW) not in text
    assert base64.b64encode(NEW).decode() not in text


def test_login_transaction_sealing_names_its_purpose() -> None:
    sealer = Sealer([NEW])
    tx = LoginTransaction(
        state="st", connection_id="demo", code_verifier="v" * 43, nonce="n",
        return_to="/café", mode="login", user_id=None, created_at=5.0,
    )  # fmt: skip
    envelope = seal_transaction(sealer, tx)
    assert "caf" not in envelope  # encrypted, not only signed
    assert open_transaction(sealer, envelope) == tx
    # A value sealed for another purpose (a credential) does not open as a transaction.
    other = sealer.seal(tx.to_bytes(), CredentialKey("demo", "u").aad())
    with pytest.raises(CredentialUnreadable):
        open_transaction(sealer, other)
    with pytest.raises(CredentialUnreadable):
        open_transaction(Sealer([OLD]), envelope)


@settings(database=None, derandomize=True, max_examples=200, deadline=None)
@given(
    plaintext=st.binary(max_size=4096),
    connection_id=st.text(max_size=20),
    user_id=st.text(max_size=20),
)
def test_roundtrip_property(plaintext: bytes, connection_id: str, user_id: str) -> None:
    sealer = Sealer([NEW, OLD])
    key = CredentialKey(connection_id, user_id)
    envelope = sealer.seal(plaintext, key.aad())
    assert envelope.isascii()
    assert sealer.unseal(envelope, key.aad()) == plaintext


def v1_envelope(key: bytes, plaintext: bytes, aad: bytes) -> str:
    """An envelope as releases before ``v2`` sealed it (NUL-joined associated data)."""
    nonce = os.urandom(12)
    blob = base64.urlsafe_b64encode(nonce + AESGCM(key).encrypt(nonce, plaintext, aad))
    return f"v1.{key_id(key)}.{blob.rstrip(b'=').decode()}"


def test_associated_data_is_unambiguous_for_ids_holding_nul() -> None:
    one, two = CredentialKey("a", "b\0c"), CredentialKey("a\0b", "c")
    assert one.legacy_aad() == two.legacy_aad()  # what v1 could not tell apart
    assert one.aad() != two.aad()
    sealer = Sealer([NEW])
    record = seal_record(sealer, one, TOKENS, now=0)
    assert open_record(sealer, record) == TOKENS
    with pytest.raises(CredentialUnreadable):
        open_record(sealer, replace(record, key=two))


def test_records_sealed_in_the_v1_format_still_open() -> None:
    sealer = Sealer([NEW, OLD])
    for key in (NEW, OLD):
        sealed = v1_envelope(key, TOKENS.to_bytes(), ALICE.legacy_aad())
        record = replace(seal_record(sealer, ALICE, TOKENS, now=0), sealed=sealed)
        assert open_record(sealer, record) == TOKENS
        assert not sealer.is_current(sealed)  # a rotation re-seals it as v2
        with pytest.raises(CredentialUnreadable):  # still bound to its own row
            open_record(sealer, replace(record, key=BOB))
    assert sealer.is_current(sealer.seal(b"x", ALICE.aad()))


def test_opened_records_skip_the_open_of_an_unchanged_record_only() -> None:
    sealer = Sealer([NEW])
    opened = OpenedRecords(sealer, size=2)
    record = seal_record(sealer, ALICE, TOKENS, now=0)
    first = opened.open(record)
    assert first == TOKENS
    assert opened.open(replace(record, version=7)) is first  # same row, same envelope
    # The same envelope on another row still fails to open: the row is part of the entry.
    with pytest.raises(CredentialUnreadable):
        opened.open(replace(record, key=BOB))
    # A rewritten record (another envelope) is opened afresh.
    rewritten = seal_record(sealer, ALICE, replace(TOKENS, access_token="at-2"), now=1)
    assert opened.open(rewritten).access_token == "at-2"
    # Bounded: the oldest goes first.
    opened.open(seal_record(sealer, BOB, TOKENS, now=2))
    assert repr(opened) == "OpenedRecords(2/2)"
    assert "at-secret" not in repr(opened)
