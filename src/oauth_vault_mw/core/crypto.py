"""Sealing: AES-256-GCM with the key id in the envelope and the record's key as associated data.

Envelope (ASCII): ``v2.<kid>.<base64url(nonce || ciphertext+tag)>``. The key id is the first
8 bytes of SHA-256 of the key, hex: derived, so the settings list keys and nothing else. The
first key seals; every listed key unseals (rotation). A record copied onto another
(connection, user) fails to open because the associated data differs.

The envelope's version names the encoding of the associated data. ``v2``: a version byte,
then each part length-prefixed (:func:`associated_data`), so no two different lists of ids
encode alike. ``v1`` (sealed by releases before it): the parts joined with NUL, under which
``("a", "b\0c")`` and ``("a\0b", "c")`` were the same; a ``v1`` envelope still opens with the
caller's ``legacy_aad``, and ``oauth-vault keys rotate`` re-seals it as ``v2``.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import CredentialUnreadable

__all__ = ["ENVELOPE_VERSION", "Sealer", "associated_data", "key_id"]

_NONCE = 12
ENVELOPE_VERSION = "v2"
_AAD_VERSION = b"\x02"
_OPENABLE = ("v1", ENVELOPE_VERSION)


def associated_data(*parts: bytes) -> bytes:
    """Associated data for ``v2`` envelopes: the version byte, then every part preceded by its
    length (4 bytes, big-endian): unambiguous whatever bytes the parts hold."""
    return _AAD_VERSION + b"".join(len(p).to_bytes(4, "big") + p for p in parts)


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
        return f"{ENVELOPE_VERSION}.{self.current_kid}.{blob}"

    def kid_of(self, envelope: str) -> str | None:
        parts = envelope.split(".", 2)
        return parts[1] if len(parts) == 3 else None

    def is_current(self, envelope: str) -> bool:
        """Sealed with the current key in the current format: nothing for a rotation to do."""
        return envelope.startswith(f"{ENVELOPE_VERSION}.{self.current_kid}.")

    def unseal(self, envelope: str, aad: bytes, *, legacy_aad: bytes | None = None) -> bytes:
        """The plaintext; ``aad`` is the associated data in the current encoding, and
        ``legacy_aad`` (when given) the same in the ``v1`` encoding, for older envelopes."""
        parts = envelope.split(".", 2)
        if len(parts) != 3 or parts[0] not in _OPENABLE:
            raise CredentialUnreadable("unknown envelope format")
        if parts[0] == "v1" and legacy_aad is not None:
            aad = legacy_aad
        aead = self._keys.get(parts[1])
        if aead is None:
            raise CredentialUnreadable("sealed with a key that is not configured")
        try:
            raw = base64.urlsafe_b64decode(parts[2] + "=" * (-len(parts[2]) % 4))
            return aead.decrypt(raw[:_NONCE], raw[_NONCE:], aad)
        except (InvalidTag, ValueError):
            raise CredentialUnreadable() from None
