"""Value objects shared by the core and the shells."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from .crypto import associated_data

__all__ = [
    "ACTIVE",
    "NO_EXTRA",
    "REAUTHENTICATION_REQUIRED",
    "CredentialKey",
    "Credentials",
    "Extra",
    "StoredCredential",
    "TokenSet",
]

ACTIVE = "active"
REAUTHENTICATION_REQUIRED = "reauthentication_required"


class Extra(Mapping[str, Any]):
    """A read-only mapping: ``Credentials.extra``. Immutable, so copies are the object itself
    (``dataclasses.asdict`` and ``copy.deepcopy`` work on a ``Credentials``)."""

    __slots__ = ("_data",)

    def __init__(self, items: Iterable[tuple[str, Any]] = ()) -> None:
        self._data = dict(items)

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"Extra({self._data!r})"

    def __copy__(self) -> Extra:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Extra:
        return self


NO_EXTRA = Extra()


@dataclass(frozen=True, order=True)
class CredentialKey:
    """Where a credential lives: one connection, one user, one account of that user.

    ``account`` is the slot: ``"default"`` for the user's default account of the connection,
    else the account's id (``core/accounts.py``); it is part of the sealing's associated data.
    """

    connection_id: str
    user_id: str
    account: str = "default"

    def aad(self) -> bytes:
        """The sealing's associated data: the key's parts, each length-prefixed."""
        return associated_data(b"oauth_vault_mw/credential", *(p.encode() for p in self.parts()))

    def legacy_aad(self) -> bytes:
        """The associated data of records sealed before ``v2`` envelopes (NUL-joined parts)."""
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
    extra: tuple[tuple[str, Any], ...] = ()
    """Non-secret fields the connection keeps from the provider (``Credentials.extra``)."""
    refresh_expires_at: float | None = None
    """When the refresh token stops working, where the provider says (then: log in again)."""
    profile: tuple[tuple[str, Any], ...] = field(default=(), repr=False)
    """The account's display claims at its last login (personal data, sealed with the rest)."""
    login_at: float | None = None
    """When the account last logged in or connected (the token set was granted by a code)."""
    refresh_count: int = 0
    """Refreshes since that login."""
    asked_scope: str | None = None
    """The scope that login or connect asked for (space-separated; ``scope`` is what was
    granted): the scopes asked for and missing from ``scope`` were declined. ``None`` on
    credentials stored before it was recorded."""
    subject: str | None = field(default=None, repr=False)
    """The provider's id of the account (``core/accounts.py``); ``None`` on credentials
    stored before accounts existed (``oauth-vault db migrate-accounts`` fills it in)."""

    @cached_property
    def granted_scopes(self) -> frozenset[str]:
        """``scope`` as a set, made once per token set (the opened records are reused)."""
        return frozenset(self.scope.split()) if self.scope else frozenset()

    @property
    def lifetime(self) -> float | None:
        if self.expires_at is None:
            return None
        return max(0.0, self.expires_at - self.obtained_at)

    @property
    def login_needed_at(self) -> float | None:
        """When the user must log in again to keep this credential: at once (0.0) once it
        is marked ``reauthentication_required``; else when the refresh token ends, where
        the provider said; with no refresh token, when the access token expires; ``None``
        when nothing known ends it."""
        if self.status == REAUTHENTICATION_REQUIRED:
            return 0.0
        if self.refresh_token is None:
            return self.expires_at
        return self.refresh_expires_at

    def with_status(self, status: str) -> TokenSet:
        return replace(self, status=status)

    def to_bytes(self) -> bytes:
        data: dict[str, Any] = {
            "at": self.access_token,
            "rt": self.refresh_token,
            "tt": self.token_type,
            "exp": self.expires_at,
            "sc": self.scope,
            "ob": self.obtained_at,
            "st": self.status,
        }
        if self.extra:  # only when set: records of providers without extras stay as they were
            data["ex"] = dict(self.extra)
        if self.refresh_expires_at is not None:
            data["rex"] = self.refresh_expires_at
        if self.profile:
            data["pf"] = dict(self.profile)
        if self.login_at is not None:
            data["li"] = self.login_at
        if self.refresh_count:
            data["rc"] = self.refresh_count
        if self.asked_scope is not None:
            data["as"] = self.asked_scope
        if self.subject is not None:
            data["sb"] = self.subject
        return json.dumps(data, separators=(",", ":")).encode()

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
            extra=tuple(raw["ex"].items()) if "ex" in raw else (),
            refresh_expires_at=raw.get("rex"),
            profile=tuple(raw["pf"].items()) if "pf" in raw else (),
            login_at=raw.get("li"),
            refresh_count=raw.get("rc") or 0,
            asked_scope=raw.get("as"),
            subject=raw.get("sb"),
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
    extra: Mapping[str, Any] = field(default_factory=lambda: NO_EXTRA, compare=False)
    """Non-secret values the provider's preset keeps (Salesforce ``instance_url``...)."""

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
            "extra": dict(self.extra),
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
            extra=Extra(tokens.extra) if tokens.extra else NO_EXTRA,
        )
        return made
