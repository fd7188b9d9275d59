"""Who logged in: user ids, provider accounts, what a login returns, and ``/me``."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .connections import ConnectionConfig
from .cookies import CookieSpec
from .errors import BadRequest, CallbackError, VaultError
from .model import StoredCredential

__all__ = [
    "USER_ID_RE",
    "LoginResult",
    "NewIdentity",
    "check_user_id",
    "default_user_id",
    "me_payload",
    "subject_from_userinfo",
]

USER_ID_RE = re.compile(r"^[A-Za-z0-9_.@:+-]{1,128}$")


@dataclass(frozen=True)
class NewIdentity:
    """Passed to the host's ``new_user_id`` hook when an unknown provider account logs in."""

    connection_id: str
    subject: str
    claims: Mapping[str, Any] = field(repr=False)


def default_user_id(identity: NewIdentity) -> str:
    """The user id of a provider account seen for the first time, unless the host decides."""
    return secrets.token_hex(16)


@dataclass(frozen=True)
class LoginResult:
    """A completed login: who, where to send the browser, which cookies to set."""

    user_id: str
    return_to: str
    cookies: tuple[CookieSpec, ...]


def check_user_id(user_id: object, *, source: str, host_bug: bool = False) -> str:
    """A user id fit for storage keys; a bad one from the host's own hook is a 500."""
    if not isinstance(user_id, str) or not USER_ID_RE.match(user_id):
        error = VaultError if host_bug else BadRequest
        raise error(f"{source}: user ids are 1-128 characters of A-Z a-z 0-9 _ . @ : + -")
    return user_id


def subject_from_userinfo(conn: ConnectionConfig, data: Mapping[str, Any]) -> str:
    """The provider's stable account id from a plain OAuth 2.0 user endpoint."""
    value = data.get(conn.subject_claim)
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
        raise CallbackError(
            f"the provider's user endpoint has no {conn.subject_claim!r}", error="invalid_userinfo"
        )
    subject = str(value)
    if len(subject) > 255:
        raise CallbackError("the provider's account id is too long", error="invalid_userinfo")
    return subject


def me_payload(
    user_id: str, records: Iterable[StoredCredential], known: Iterable[str]
) -> dict[str, Any]:
    configured = set(known)
    return {
        "user_id": user_id,
        "connections": [
            {
                "connection_id": r.key.connection_id,
                "status": r.status,
                "expires_at": None if r.expires_at is None else int(r.expires_at),
                "scope": r.scope,
            }
            for r in records
            if r.key.connection_id in configured
        ],
    }
