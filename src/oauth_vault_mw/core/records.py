"""Sealed records: a credential, bound to its storage key, and a login transaction.

AES-256-GCM through :class:`~.crypto.Sealer`. A credential's associated data is its key, so a
sealed value copied onto another row (another user) fails to open. A login transaction
travels in the browser's state cookie; its associated data names that purpose, so no other
sealed value (a credential...) opens as one, nor one as anything else.
"""

from __future__ import annotations

import threading

from .crypto import Sealer
from .flow import LoginTransaction
from .model import CredentialKey, StoredCredential, TokenSet

__all__ = [
    "OPENED_RECORDS",
    "OpenedRecords",
    "open_record",
    "open_transaction",
    "seal_record",
    "seal_transaction",
]

OPENED_RECORDS = 4096
"""How many opened credentials a vault keeps, at most (see :class:`OpenedRecords`)."""


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


class OpenedRecords:
    """Credentials opened lately, by (storage key, sealed envelope): a read of a record that
    has not changed since it was last opened skips the AES-GCM open and the JSON decode.

    Keyed by the exact envelope read from storage, together with the row's key: a record
    another process rewrote (a refresh, a login) has another envelope and is opened afresh,
    so nothing here can outlive what the store holds; the store is still read on every
    request, and the caller still checks the token's expiry every time. Bounded
    (:data:`OPENED_RECORDS`, oldest out first); safe to share between threads.
    """

    def __init__(self, sealer: Sealer, size: int = OPENED_RECORDS) -> None:
        self._sealer = sealer
        self._size = size
        self._opened: dict[tuple[CredentialKey, str], TokenSet] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OpenedRecords({len(self._opened)}/{self._size})"

    def open(self, record: StoredCredential) -> TokenSet:
        """:func:`open_record`, remembered."""
        entry = (record.key, record.sealed)
        tokens = self._opened.get(entry)
        if tokens is None:
            tokens = open_record(self._sealer, record)
            with self._lock:
                if len(self._opened) >= self._size:
                    del self._opened[next(iter(self._opened))]
                self._opened[entry] = tokens
        return tokens

    def forget(self) -> None:
        """Drop every opened credential (after a key rotation in this process)."""
        with self._lock:
            self._opened.clear()


LOGIN_TRANSACTION_AAD = b"oauth_vault_mw/login-transaction-cookie/v2"


def seal_transaction(sealer: Sealer, tx: LoginTransaction) -> str:
    """The transaction as the state cookie carries it (encrypted and authenticated)."""
    return sealer.seal(tx.to_bytes(), LOGIN_TRANSACTION_AAD)


def open_transaction(sealer: Sealer, envelope: str) -> LoginTransaction:
    """The transaction of :func:`seal_transaction`; ``CredentialUnreadable`` if it was not
    sealed by this vault's keys as a login transaction."""
    return LoginTransaction.from_bytes(sealer.unseal(envelope, LOGIN_TRANSACTION_AAD))
