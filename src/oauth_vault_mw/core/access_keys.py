"""Service-client access keys: high-entropy, recognisable, stored only as hashes.

A key reads ``ovsk_<key id>_<secret>``: the prefix lets secret scanners find leaked keys,
the key id (public) finds the stored hash, the secret (32 random bytes) is shown once at
creation and never stored. Verification hashes the presented secret and compares the
hashes in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field

__all__ = ["KEY_PREFIX", "NewAccessKey", "hash_secret", "new_access_key", "parse_access_key"]

KEY_PREFIX = "ovsk_"
_KEY_RE = re.compile(r"^ovsk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True)
class NewAccessKey:
    key_id: str
    secret_hash: str = field(repr=False)
    value: str = field(repr=False)  # shown once to the operator, never stored


def hash_secret(secret: str) -> str:
    # The secret is 256 random bits: a fast hash is enough (nothing to brute-force).
    return hashlib.sha256(b"oauth_vault_mw/access-key/v1\x00" + secret.encode()).hexdigest()


def new_access_key() -> NewAccessKey:
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    return NewAccessKey(key_id, hash_secret(secret), f"{KEY_PREFIX}{key_id}_{secret}")


def parse_access_key(value: str) -> tuple[str, str] | None:
    """``(key_id, secret_hash)`` of a well-formed key, else None."""
    match = _KEY_RE.match(value)
    if match is None:
        return None
    return match.group(1), hash_secret(match.group(2))


def same_hash(stored: str, presented: str) -> bool:
    return hmac.compare_digest(stored.encode(), presented.encode())
