"""Sealed records: a credential, bound to its storage key, and a login transaction.

AES-256-GCM through :class:`~.crypto.Sealer`. A credential's associated data is its key, so a
sealed value copied onto another row (another user) fails to open. A login transaction
travels in the browser's state cookie; its associated data names that purpose, so no other
sealed value (a credential...) opens as one, nor one as anything else.
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
    key = record.key
    return TokenSet.from_bytes(sealer.unseal(record.sealed, key.aad(), legacy_aad=key.legacy_aad()))


LOGIN_TRANSACTION_AAD = b"oauth_vault_mw/login-transaction-cookie/v2"


def seal_transaction(sealer: Sealer, tx: LoginTransaction) -> str:
    """The transaction as the state cookie carries it (encrypted and authenticated)."""
    return sealer.seal(tx.to_bytes(), LOGIN_TRANSACTION_AAD)


def open_transaction(sealer: Sealer, envelope: str) -> LoginTransaction:
    """The transaction of :func:`seal_transaction`; ``CredentialUnreadable`` if it was not
    sealed by this vault's keys as a login transaction."""
    return LoginTransaction.from_bytes(sealer.unseal(envelope, LOGIN_TRANSACTION_AAD))
