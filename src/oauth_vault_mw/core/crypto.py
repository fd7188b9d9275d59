"""Sealing: AES-256-GCM with the key id in the envelope and the record's key as associated data.

Envelope (ASCII): ``v1.<kid>.<base64url(nonce || ciphertext+tag)>``. The key id is the first
8 bytes of SHA-256 of the key, hex: derived, so the settings list keys and nothing else. The
first key seals; every listed key unseals (rotation). A record copied onto another
(connection, user) fails to open because the associated data differs.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import CredentialUnreadable

__all__ = ["Sealer", "key_id"]

_NONCE = 12


def key_id(key: bytes) -> str:
    return hashlib.sha256(b"oauth_vault_mw/kid\x00" + key).hexdigest()[:16]


class Sealer:
    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("at least one key")
        self._keys = {key_id(k): AESGCM(k) for k in keys}
        self.current_kid = key_id(keys[0])
        self._current = self._keys[self.current_kid]

    def __repr__(self) -> str:
        return f"Sealer(current_kid={self.current_kid!r}, keys={len(self._keys)})"

    def seal(self, plaintext: bytes, aad: bytes) -> str:
        nonce = os.urandom(_NONCE)
        body = self._current.encrypt(nonce, plaintext, aad)
        blob = base64.urlsafe_b64encode(nonce + body).rstrip(b"=").decode()
        return f"v1.{self.current_kid}.{blob}"

    def kid_of(self, envelope: str) -> str | None:
        parts = envelope.split(".", 2)
        return parts[1] if len(parts) == 3 else None

    def unseal(self, envelope: str, aad: bytes) -> bytes:
        parts = envelope.split(".", 2)
        if len(parts) != 3 or parts[0] != "v1":
            raise CredentialUnreadable("unknown envelope format")
        aead = self._keys.get(parts[1])
        if aead is None:
            raise CredentialUnreadable("sealed with a key that is not configured")
        try:
            raw = base64.urlsafe_b64decode(parts[2] + "=" * (-len(parts[2]) % 4))
            return aead.decrypt(raw[:_NONCE], raw[_NONCE:], aad)
        except (InvalidTag, ValueError):
            raise CredentialUnreadable() from None
