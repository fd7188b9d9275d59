"""Service-side access, pure parts: client and key records, audit events, request parsing.

A service client has a name and grants; each of its access keys is stored as a record
holding only the secret's hash. Audit events say who did what to which credential and how
it ended, never with a token in them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

from .errors import BadRequest, TokenExchangeError
from .grants import Grant

__all__ = [
    "CLIENT_KIND",
    "KEY_KIND",
    "AccessKeyRecord",
    "AuditEvent",
    "Principal",
    "ServiceClient",
    "bearer_token",
    "check_client_name",
    "parse_token_exchange",
]

CLIENT_KIND = "service_client"
KEY_KIND = "access_key"
CLIENT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"

# one encoder for every audit event (json.dumps with arguments builds one per call)
_compact_json = json.JSONEncoder(separators=(",", ":")).encode


def check_client_name(name: str) -> str:
    if not CLIENT_NAME_RE.match(name):
        raise BadRequest("client names are 1-64 characters of A-Z a-z 0-9 _ . - ")
    return name


@dataclass(frozen=True)
class ServiceClient:
    name: str
    grants: tuple[Grant, ...]
    created_at: float
    revoked: bool = False

    def to_bytes(self) -> bytes:
        return json.dumps(
            {
                "name": self.name,
                "grants": [str(g) for g in self.grants],
                "created_at": self.created_at,
                "revoked": self.revoked,
            }
        ).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> ServiceClient:
        return _client_from_bytes(bytes(data))


@dataclass(frozen=True)
class AccessKeyRecord:
    key_id: str
    client: str
    secret_hash: str = field(repr=False)
    created_at: float = 0.0
    revoked_at: float | None = None

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> AccessKeyRecord:
        return _key_from_bytes(bytes(data))


# The service route reads a key and its client on every request: each stored form is parsed
# once (the records are immutable values; a changed record, a revocation included, is other
# bytes and is parsed anew). Bounded: a few hundred bytes per entry.
@lru_cache(maxsize=1024)
def _client_from_bytes(data: bytes) -> ServiceClient:
    raw: dict[str, Any] = json.loads(data)
    return ServiceClient(
        raw["name"],
        tuple(Grant.parse(g) for g in raw["grants"]),
        raw["created_at"],
        bool(raw.get("revoked")),
    )


@lru_cache(maxsize=1024)
def _key_from_bytes(data: bytes) -> AccessKeyRecord:
    raw: dict[str, Any] = json.loads(data)
    return AccessKeyRecord(**raw)


@dataclass(frozen=True)
class Principal:
    """An authenticated service client: which client, which of its keys, what it may do."""

    client: str
    key_id: str
    grants: tuple[Grant, ...]

    @property
    def actor(self) -> str:
        return f"client:{self.client}/{self.key_id}"


@dataclass(frozen=True)
class AuditEvent:
    """One entry of the audit trail. ``actor`` is ``user:<id>``, ``client:<name>/<key id>``
    or ``system``; ``action`` e.g. ``credentials.read``; ``outcome`` ``ok`` or an error code.
    """

    at: float
    actor: str
    action: str
    outcome: str
    connection_id: str | None = None
    user_id: str | None = None
    count: int = 1  # routine reads are aggregated: this many since ``at``

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "actor": self.actor,
            "action": self.action,
            "outcome": self.outcome,
            "connection_id": self.connection_id,
            "user_id": self.user_id,
            "count": self.count,
        }

    def to_bytes(self) -> bytes:
        return _compact_json(self.to_dict()).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> AuditEvent:
        return cls(**json.loads(data))


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else None."""
    if not header or len(header) > 4096:
        return None
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        return None
    return token


def parse_token_exchange(form: Mapping[str, str]) -> tuple[str, str]:
    """RFC 8693 request checks; returns ``(subject_token, connection_id)``.

    The connection is named by ``resource`` or ``audience`` (``connection:<id>`` or the
    bare id). Only the app's own JWTs are accepted as subject tokens.
    """
    if form.get("grant_type") != TOKEN_EXCHANGE:
        raise TokenExchangeError("invalid_request", "grant_type must be token-exchange")
    subject = form.get("subject_token")
    if not subject:
        raise TokenExchangeError("invalid_request", "subject_token is required")
    kind = form.get("subject_token_type")
    if kind not in (JWT_TYPE, ACCESS_TOKEN_TYPE):
        raise TokenExchangeError("invalid_request", "subject_token_type must be a JWT")
    wanted = form.get("requested_token_type")
    if wanted not in (None, ACCESS_TOKEN_TYPE):
        raise TokenExchangeError("invalid_request", "only access tokens can be requested")
    targets = [t for t in (form.get("resource"), form.get("audience")) if t]
    if len(set(targets)) != 1:
        raise TokenExchangeError("invalid_target", "name exactly one connection")
    target = targets[0]
    connection_id = target.removeprefix("connection:")
    return subject, connection_id
