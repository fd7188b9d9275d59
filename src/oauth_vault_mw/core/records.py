"""Sealed records: a credential and a login transaction, each bound to its storage key.

AES-256-GCM through :class:`~.crypto.Sealer`; the associated data is the record's key, so a
sealed value copied onto another row (another user, another state) fails to open.
"""

from __future__ import annotations

from .crypto import Sealer
from .flow import LoginTransaction
from .model import CredentialKey, StoredCredential, TokenSet

__all__ = ["open_record", "open_transaction", "seal_record", "seal_transaction"]


def seal_record(
    sealer: Sealer, key: CredentialKey, tokens: TokenSet, *, now: float
) -> StoredCredential:
    return StoredCredential(
        key=key,
        version=0,
        sealed=sealer.seal(tokens.to_bytes(), key.aad()),
        status=tokens.status,
        expires_at=tokens.expires_at,
        scope=tokens.scope,
        updated_at=now,
    )


def open_record(sealer: Sealer, record: StoredCredential) -> TokenSet:
    return TokenSet.from_bytes(sealer.unseal(record.sealed, record.key.aad()))


def _state_aad(state_hash: str) -> bytes:
    return b"oauth_vault_mw/login-state/v1\x00" + state_hash.encode()


def seal_transaction(sealer: Sealer, state_hash: str, tx: LoginTransaction) -> bytes:
    return sealer.seal(tx.to_bytes(), _state_aad(state_hash)).encode()


def open_transaction(sealer: Sealer, state_hash: str, data: bytes) -> LoginTransaction:
    return LoginTransaction.from_bytes(sealer.unseal(data.decode(), _state_aad(state_hash)))
