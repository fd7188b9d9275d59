"""How one provider bends the standards: named quirks, as data, that the core acts on.

A preset (``core/presets.py``) sets a :class:`TokenDialect` and an :class:`IdentitySpec` on each
connection it fills in; a connection without a preset gets the standard behaviour (the
defaults below). The vault and the shells never ask which provider they talk to: they pass
these values to the pure functions that read a token response (``core/tokens.py``) or find
the account (``core/identity.py``).

Paths into a reply are dotted (``"authed_user.id"``); in a token dialect a segment made of
digits also indexes a JSON list (``"errors.0.code"``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "ACCESS_TOKEN_SLOT",
    "REAUTH_ERRORS",
    "STANDARD",
    "TRANSIENT_ERRORS",
    "IdentitySpec",
    "TokenDialect",
]

ACCESS_TOKEN_SLOT = "{ACCESS_TOKEN}"
"""In a user endpoint URL: where the access token goes, for a provider whose token-info
endpoint names the token in its path (HubSpot); the identity request then sends no token
header. Not a template variable: it is filled per login, not from ``params``."""

REAUTH_ERRORS = frozenset(
    {
        "invalid_grant",
        "bad_refresh_token",
        "interaction_required",
        "login_required",
        "consent_required",
    }
)
"""Error codes that mean the grant is gone, whatever the provider: RFC 6749 ``invalid_grant``;
GitHub Apps' (and HubSpot's ``BAD_REFRESH_TOKEN``) ``bad_refresh_token``; and the OpenID
Connect codes by which a refresh is refused until the user signs in again (Microsoft's
conditional access answers a refresh with ``interaction_required``)."""

TRANSIENT_ERRORS = frozenset({"temporarily_unavailable", "server_error"})
"""Error codes that say "try again later" (RFC 6749 4.1.2.1), whatever the status."""


@dataclass(frozen=True)
class TokenDialect:
    """What a provider's token endpoint answers, beyond RFC 6749 section 5.

    - ``token_path``: where the token fields (``access_token``, ``refresh_token``,
      ``expires_in``, ``scope``, ``token_type``...) are; empty: at the top level. Slack v2's
      user token: ``("authed_user",)``. A refresh reply without that object is read at the
      top level (Slack answers a user-token refresh flat: [S] ``@slack/oauth``
      ``OAuthV2TokenRefreshResponse``); a code exchange reply without it holds no token.
    - ``error_fields``: dotted paths where a non-RFC error body names its error, tried in
      order after ``error`` (HubSpot ``("status", "category")``, Twitch and Reddit
      ``("message",)``). An entry may join several paths with ``+``: their values joined by
      ``:`` make the code (Strava ``"errors.0.field+errors.0.code"`` gives
      ``"refresh_token:invalid"``). These fields are read only where the body is an error:
      a 4xx status, an ``error`` or ``"ok": false``, or a 200 without an access token.
    - ``description_fields``: dotted paths whose values (strings, numbers, or lists of them)
      describe an error, after ``error_description`` (Microsoft ``("error_codes",)``,
      HubSpot ``("message", "correlationId")``). Bounded and escaped before use.
    - ``reauth_errors``: error codes or messages that mean the refresh token is dead, beyond
      :data:`REAUTH_ERRORS` (Slack ``invalid_refresh_token``, Twitch ``Invalid refresh
      token``). Compared in lower case; stored in lower case.
    - ``transient_errors``: error codes that mean "try again later", beyond
      :data:`TRANSIENT_ERRORS` (Slack ``ratelimited``, ``internal_error``). Compared in
      lower case; stored in lower case.
    - ``zero_expires_never``: ``expires_in: 0`` means the token never expires (Mailchimp);
      otherwise it means "expired already".
    - ``expires_at_field``: the field (in the token object) holding an absolute expiry in
      epoch seconds (Strava ``expires_at``), used when ``expires_in`` is absent.
    - ``refresh_expires_fields``: fields (in the token object) giving the refresh token's own
      lifetime in seconds, the first present wins; ``0`` means no limit (Keycloak offline
      tokens).
    - ``keep``: non-secret reply fields kept as ``Credentials.extra``, as
      ``(name, dotted.path)`` pairs, paths from the top of the reply (Salesforce
      ``("instance_url", "instance_url")``, Slack ``("team_id", "team.id")``). Only JSON
      scalars are kept, strings up to 2048 characters, and never a value whose name or path
      looks secret (``core.tokens.is_secret_key``).
    """

    token_path: tuple[str, ...] = ()
    error_fields: tuple[str, ...] = ()
    description_fields: tuple[str, ...] = ()
    reauth_errors: frozenset[str] = field(default_factory=frozenset)
    transient_errors: frozenset[str] = field(default_factory=frozenset)
    zero_expires_never: bool = False
    expires_at_field: str | None = None
    refresh_expires_fields: tuple[str, ...] = (
        "refresh_token_expires_in",
        "x_refresh_token_expires_in",
        "refresh_expires_in",
    )
    keep: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        # Lower case once here, so that a preset may write HubSpot's codes as HubSpot does.
        object.__setattr__(self, "reauth_errors", frozenset(e.lower() for e in self.reauth_errors))
        lowered = frozenset(e.lower() for e in self.transient_errors)
        object.__setattr__(self, "transient_errors", lowered)

    def is_reauth_error(self, code: str) -> bool:
        """Whether the error ``code`` (or message) means the user must log in again."""
        lowered = code.lower()
        return lowered in REAUTH_ERRORS or lowered in self.reauth_errors

    def is_transient_error(self, code: str) -> bool:
        """Whether the error ``code`` means the provider may answer differently later."""
        lowered = code.lower()
        return lowered in TRANSIENT_ERRORS or lowered in self.transient_errors


STANDARD = TokenDialect()
"""RFC 6749 as written: what a connection without a preset gets."""


@dataclass(frozen=True)
class IdentitySpec:
    """Where a login finds the provider's account id and the display profile.

    ``source``: ``id_token`` (OpenID Connect), ``userinfo`` (the connection's user endpoint,
    JSON) or ``token_response`` (the token endpoint's reply itself, Slack/Notion/Strava).
    ``subject``: the dotted path of the account id in that JSON; ``profile``: display fields
    (``name``, ``email``, ``picture``, ``preferred_username``) and their dotted paths;
    ``token_header`` and ``token_scheme``: how the user endpoint wants the access token.
    """

    source: Literal["id_token", "userinfo", "token_response"] = "id_token"
    subject: str = "sub"
    token_header: str = "Authorization"
    """The header that carries the access token to the user endpoint (Shopify:
    ``X-Shopify-Access-Token``)."""
    token_scheme: str = "Bearer"
    """The scheme before the token in that header (Mailchimp: ``OAuth``; empty: the token
    alone)."""
    profile: tuple[tuple[str, str], ...] = (
        ("name", "name"),
        ("email", "email"),
        ("picture", "picture"),
        ("preferred_username", "preferred_username"),
    )
