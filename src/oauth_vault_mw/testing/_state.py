"""What the testing provider remembers: clients, users, codes, grants, tokens and counts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = [
    "AccessToken",
    "Client",
    "Code",
    "Grant",
    "ProviderCounts",
    "Tally",
    "User",
    "scoped_claims",
]


@dataclass
class Client:
    """A registered client. ``client_secret=None`` is a public client (PKCE alone)."""

    client_id: str
    client_secret: str | None
    redirect_uris: list[str]

    def __repr__(self) -> str:
        return f"Client(client_id={self.client_id!r}, redirect_uris={self.redirect_uris!r})"


@dataclass
class User:
    """A person the provider knows: ``sub`` and the display claims the ID token carries."""

    login: str
    sub: str
    claims: dict[str, Any]

    @classmethod
    def named(cls, login: str, claims: Mapping[str, Any]) -> User:
        """A user with readable defaults for the claims not given."""
        defaults: dict[str, Any] = {
            "name": login.replace(".", " ").replace("_", " ").title(),
            "preferred_username": login,
            "email": f"{login}@example.test",
            "email_verified": True,
            "picture": f"https://example.test/avatars/{login}.png",
        }
        values = {**defaults, **claims}
        sub = str(values.pop("sub", login))
        return cls(login, sub, {k: v for k, v in values.items() if v is not None})


_PROFILE = ("name", "preferred_username", "picture", "given_name", "family_name", "locale")
_EMAIL = ("email", "email_verified")


def scoped_claims(user: User, scopes: set[str]) -> dict[str, Any]:
    """``sub`` and the claims the granted scopes release (OpenID Connect Core 5.4)."""
    out: dict[str, Any] = {"sub": user.sub}
    for name, value in user.claims.items():
        if name in _PROFILE:
            if "profile" in scopes:
                out[name] = value
        elif name in _EMAIL:
            if "email" in scopes:
                out[name] = value
        else:
            out[name] = value  # claims the test added itself are always released
    return out


@dataclass
class Code:
    """An authorization code: single use, short lived, bound to its request."""

    client_id: str
    redirect_uri: str
    code_challenge: str
    scope: str
    nonce: str | None
    user: User
    expires_at: float
    auth_time: int
    used_by: Grant | None = None


@dataclass
class Grant:
    """What one code exchange started: its refresh token (rotated) and access tokens."""

    client_id: str
    user: User
    scope: str
    refresh_token: str | None = None
    access_tokens: set[str] = field(default_factory=set)
    revoked: bool = False
    refresh_expires_at: float | None = None


@dataclass
class AccessToken:
    grant: Grant
    scope: str
    expires_at: float
    revoked: bool = False


class Tally:
    """The provider's live counters (updated under its lock)."""

    def __init__(self) -> None:
        self.authorizations = 0
        self.grants: Counter[str] = Counter()
        self.refusals: Counter[str] = Counter()
        self.userinfo = 0
        self.revocations = 0
        self.requests: Counter[str] = Counter()

    def snapshot(self) -> ProviderCounts:
        return ProviderCounts(
            authorizations=self.authorizations,
            grants=MappingProxyType(dict(self.grants)),
            refusals=MappingProxyType(dict(self.refusals)),
            userinfo=self.userinfo,
            revocations=self.revocations,
            requests=MappingProxyType(dict(self.requests)),
        )


@dataclass(frozen=True)
class ProviderCounts:
    """A snapshot of the provider's counters (:attr:`OpenIDProvider.counts`).

    - ``authorizations``: codes issued by the authorization endpoint;
    - ``grants``: tokens issued by the token endpoint, per ``grant_type``
      (``authorization_code``, ``refresh_token``);
    - ``refusals``: error replies of every endpoint, per ``error`` code (``invalid_grant``,
      ``invalid_client``, ``invalid_token``, ``access_denied``, ``temporarily_unavailable``...);
    - ``userinfo``: requests to the userinfo endpoint (refused ones included);
    - ``revocations``: accepted revocation requests (RFC 7009: unknown tokens included);
    - ``requests``: every request, per endpoint (``discovery``, ``jwks``, ``authorize``,
      ``token``, ``userinfo``, ``revoke``, ``unknown``).

    Missing keys read as 0: ``counts.grants.get("refresh_token", 0)``, or :attr:`refreshes`.
    """

    authorizations: int
    grants: Mapping[str, int]
    refusals: Mapping[str, int]
    userinfo: int
    revocations: int
    requests: Mapping[str, int]

    @property
    def refreshes(self) -> int:
        """Refresh grants that issued tokens."""
        return self.grants.get("refresh_token", 0)

    @property
    def code_exchanges(self) -> int:
        """Authorization codes exchanged for tokens."""
        return self.grants.get("authorization_code", 0)
