"""Value objects shared by the core and the shells."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = [
    "ACTIVE",
    "REAUTHENTICATION_REQUIRED",
    "CredentialKey",
    "Credentials",
    "StoredCredential",
    "TokenSet",
]

ACTIVE = "active"
REAUTHENTICATION_REQUIRED = "reauthentication_required"


@dataclass(frozen=True, order=True)
class CredentialKey:
    """Where a credential lives: one connection, one user, one account of that user.

    ``account`` is ``"default"`` today; it is part of the key (and of the sealing's associated
    data) so that several accounts of one connection per user can be added without migration.
    """

    connection_id: str
    user_id: str
    account: str = "default"

    def aad(self) -> bytes:
        return b"\x00".join((b"oauth_vault_mw/credential/v1", *(p.encode() for p in self.parts())))

    def parts(self) -> tuple[str, str, str]:
        return (self.connection_id, self.user_id, self.account)


@dataclass(frozen=True)
class TokenSet:
    """The secret part of a credential, as sealed in storage. Its repr shows no token."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False, default=None)
    token_type: str = "Bearer"
    expires_at: float | None = None
    scope: str | None = None
    obtained_at: float = 0.0
    status: str = ACTIVE

    @property
    def lifetime(self) -> float | None:
        if self.expires_at is None:
            return None
        return max(0.0, self.expires_at - self.obtained_at)

    def with_status(self, status: str) -> TokenSet:
        return replace(self, status=status)

    def to_bytes(self) -> bytes:
        return json.dumps(
            {
                "at": self.access_token,
                "rt": self.refresh_token,
                "tt": self.token_type,
                "exp": self.expires_at,
                "sc": self.scope,
                "ob": self.obtained_at,
                "st": self.status,
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> TokenSet:
        raw: dict[str, Any] = json.loads(data)
        return cls(
            access_token=raw["at"],
            refresh_token=raw.get("rt"),
            token_type=raw.get("tt") or "Bearer",
            expires_at=raw.get("exp"),
            scope=raw.get("sc"),
            obtained_at=raw.get("ob") or 0.0,
            status=raw.get("st") or ACTIVE,
        )


@dataclass(frozen=True)
class StoredCredential:
    """A row of the credentials table: the sealed envelope plus what sweeps and ``/me`` read.

    ``status``, ``expires_at`` and ``scope`` are copies kept in clear for listing; the sealed
    envelope is the authority. ``version`` increases on every write (compare-and-set).
    """

    key: CredentialKey
    version: int
    sealed: str = field(repr=False)
    status: str = ACTIVE
    expires_at: float | None = None
    scope: str | None = None
    updated_at: float = 0.0


@dataclass(frozen=True)
class Credentials:
    """What a handler gets from ``connection_credentials()``: never a refresh token."""

    connection_id: str
    user_id: str
    access_token: str = field(repr=False)
    token_type: str
    expires_at: float | None
    scope: str | None

    @property
    def authorization_header(self) -> str:
        """``"Bearer <token>"``, ready for an ``Authorization`` header."""
        kind = "Bearer" if self.token_type.lower() == "bearer" else self.token_type
        return f"{kind} {self.access_token}"

    def to_dict(self) -> dict[str, Any]:
        """The credential JSON of the HTTP API."""
        return {
            "connection_id": self.connection_id,
            "user_id": self.user_id,
            "access_token": self.access_token,
            "token_type": self.token_type,
            "expires_at": None if self.expires_at is None else int(self.expires_at),
            "scope": self.scope,
        }

    @classmethod
    def from_tokens(cls, key: CredentialKey, tokens: TokenSet) -> Credentials:
        # Every credential read ends here: fill the instance's dict in one step rather than
        # through the frozen __init__'s six object.__setattr__ calls (~1 us per read). The
        # fields are exactly the dataclass's own (tests compare with the __init__ result).
        made = object.__new__(cls)
        made.__dict__.update(
            connection_id=key.connection_id,
            user_id=key.user_id,
            access_token=tokens.access_token,
            token_type=tokens.token_type,
            expires_at=tokens.expires_at,
            scope=tokens.scope,
        )
        return made
