"""Who logged in: user ids, provider accounts, what a login returns, and ``/me``."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from .accounts import list_accounts
from .connections import ConnectionConfig
from .cookies import CookieSpec
from .dialect import ACCESS_TOKEN_SLOT, IdentitySpec
from .errors import BadRequest, CallbackError, VaultError
from .model import CredentialKey, StoredCredential, TokenSet
from .scopes import declined_scopes, scope_list
from .tokens import dig

__all__ = [
    "ACCESS_TOKEN_SLOT",
    "PROFILE_CLAIMS",
    "USER_ID_RE",
    "CurrentUser",
    "LoginResult",
    "NewIdentity",
    "account_subject",
    "callback_extra",
    "check_user_id",
    "default_user_id",
    "display_profile",
    "last_login",
    "me_payload",
    "subject_from_userinfo",
    "token_response_document",
    "userinfo_request",
]

USER_ID_RE = re.compile(r"^[A-Za-z0-9_.@:+-]{1,128}\Z")


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


PROFILE_CLAIMS = ("name", "email", "email_verified", "picture", "preferred_username")
"""The display claims kept from each login (OpenID Connect's names)."""

# Where plain OAuth 2.0 user endpoints put the same (GitHub ``login``/``avatar_url``, Slack
# ``user.name``...): tried in order when the OpenID name is absent.
_PROFILE_FALLBACKS: dict[str, tuple[str, ...]] = {
    "name": ("display_name", "user.name", "real_name"),
    "email": ("mail", "user.email", "userPrincipalName"),
    "picture": ("avatar_url", "profile_image_url", "user.image_192"),
    "preferred_username": ("login", "username", "screen_name", "user.name"),
}
MAX_PROFILE_VALUE = 512  # longest display value kept; a longer one is dropped, not cut


def display_profile(document: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """The display claims of the document that named the account (ID token claims, the
    user endpoint's JSON): strings of printable text up to :data:`MAX_PROFILE_VALUE`
    characters, ``email_verified`` a boolean. Personal data: kept sealed with the credential,
    deleted with it."""
    found: list[tuple[str, Any]] = []
    for name in PROFILE_CLAIMS:
        for path in (name, *_PROFILE_FALLBACKS.get(name, ())):
            value = dig(document, path)
            if name == "email_verified":
                if isinstance(value, bool):
                    found.append((name, value))
                    break
                continue
            if _displayable(value):
                found.append((name, value))
                break
    return tuple(found)


def _displayable(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_PROFILE_VALUE and value.isprintable()


@dataclass(frozen=True)
class CurrentUser:
    """The logged-in user: the id and the display profile of their last login (``name``,
    ``email``... as the provider gave them; empty when it gave none)."""

    user_id: str
    profile: Mapping[str, Any] = field(default_factory=dict)
    connection_id: str | None = None
    """The connection of that last login."""


def check_user_id(user_id: object, *, source: str, host_bug: bool = False) -> str:
    """A user id fit for storage keys; a bad one from the host's own hook is a 500."""
    if not isinstance(user_id, str) or not USER_ID_RE.match(user_id):
        error = VaultError if host_bug else BadRequest
        raise error(f"{source}: user ids are 1-128 characters of A-Z a-z 0-9 _ . @ : + -")
    return user_id


def account_subject(spec: IdentitySpec, document: Mapping[str, Any]) -> str:
    """The provider's stable account id, found where the connection's identity spec says."""
    value = dig(document, spec.subject)
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
        raise CallbackError(
            f"the provider's {_SOURCES[spec.source]} has no {spec.subject!r}",
            error="invalid_userinfo",
        )
    subject = str(value)
    if len(subject) > 255:
        raise CallbackError("the provider's account id is too long", error="invalid_userinfo")
    return subject


_SOURCES = {"id_token": "ID token", "userinfo": "user endpoint", "token_response": "token reply"}


def subject_from_userinfo(conn: ConnectionConfig, data: Mapping[str, Any]) -> str:
    """The provider's stable account id from a plain OAuth 2.0 user endpoint."""
    return account_subject(IdentitySpec("userinfo", subject=conn.subject_claim), data)


def userinfo_request(
    conn: ConnectionConfig, url: str, access_token: str
) -> tuple[str, dict[str, str]]:
    """The identity request's URL and headers: the access token as the provider wants it
    (a header and scheme, or in the URL's path), and the connection's ``User-Agent`` where it
    has one (Reddit requires its own)."""
    spec = conn.identity_spec
    headers: dict[str, str] = {}
    if ACCESS_TOKEN_SLOT in url:
        url = url.replace(ACCESS_TOKEN_SLOT, quote(access_token, safe=""))
    else:
        value = f"{spec.token_scheme} {access_token}" if spec.token_scheme else access_token
        headers[spec.token_header] = value
    if conn.user_agent is not None:
        headers["User-Agent"] = conn.user_agent
    return url, headers


def token_response_document(body: bytes) -> dict[str, Any]:
    """The token endpoint's JSON reply as a document to find the account in (Slack, Notion,
    Strava name the account there); a reply that is not a JSON object names none."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        data = None
    if not isinstance(data, dict):
        raise CallbackError("the provider's token reply names no account", error="invalid_userinfo")
    return data


def callback_extra(names: Iterable[str], params: Mapping[str, str]) -> tuple[tuple[str, Any], ...]:
    """The callback's own values that a preset keeps (QuickBooks ``realmId``, Shopify ``shop``);
    their length is bounded by the callback checks."""
    return tuple((name, params[name]) for name in names if params.get(name))


def me_payload(
    user_id: str,
    records: Iterable[StoredCredential],
    known: Iterable[str] | Mapping[str, ConnectionConfig],
    opened: Mapping[CredentialKey, TokenSet] | None = None,
    linked: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """``GET /me``: the user and each configured connection's state; never a token.
    ``known``: the configured connections (their ids, or their configs by id: then a scope
    the provider reports under another name counts as granted under either).
    ``opened``: the records' token sets (a record no configured key opens is missing and
    shows its state only). ``linked``: per connection, the user's linked subjects, where a
    default record stored before accounts existed needs them for its account id.
    ``profile``: the display claims of the user's last login, and of each connection's;
    ``login_at``, ``refresh_count`` and ``refreshed_at`` (null before the first refresh):
    the connection's last login and its refreshes since.

    Each connection shows its default account's state, its ``account_id``, and
    ``accounts``: every linked account of it (the default first) with the same fields and
    ``default``.

    ``reauthenticate_at`` is when the user must log in again because the refresh token stops
    working, where the provider says so, else null. ``scope`` is the granted scope as the
    provider wrote it (space-separated), ``granted_scopes`` the same as a list, and
    ``declined_scopes`` the scopes the last login or connect asked for and did not get (the
    user unticked them at the consent), empty when all were granted or when what was asked
    is not known.
    """
    configs = known if isinstance(known, Mapping) else {}
    configured = set(known)
    tokens_of = opened or {}
    last = last_login(tokens_of, configured)
    mine = [r for r in records if r.key.connection_id in configured]
    connections: list[dict[str, Any]] = []
    for connection_id in sorted({r.key.connection_id for r in mine}):
        conn = configs.get(connection_id)
        accounts = [
            {
                "account_id": a.account_id,
                "default": a.default,
                **_record_state(a.record, a.tokens, conn),
            }
            for a in list_accounts(
                connection_id,
                user_id,
                mine,
                tokens_of,
                (linked or {}).get(connection_id),
                conn.account_extra if conn is not None else None,
            )
        ]
        if accounts:
            first = {k: v for k, v in accounts[0].items() if k != "default"}
            connections.append({"connection_id": connection_id, **first, "accounts": accounts})
    return {
        "user_id": user_id,
        "profile": dict(last[1].profile) if last is not None else {},
        "connections": connections,
    }


def _record_state(
    record: StoredCredential, tokens: TokenSet | None, conn: ConnectionConfig | None
) -> dict[str, Any]:
    return {
        "status": record.status,
        "expires_at": _epoch(record.expires_at),
        "scope": record.scope,
        **_opened_state(tokens, record, conn),
    }


def last_login(
    opened: Mapping[CredentialKey, TokenSet], known: set[str]
) -> tuple[CredentialKey, TokenSet] | None:
    """The credential of a configured connection logged in with last (its profile is the
    user's), or ``None``."""
    best: tuple[CredentialKey, TokenSet] | None = None
    for key, tokens in opened.items():
        if key.connection_id not in known or tokens.login_at is None:
            continue
        if best is None or tokens.login_at > (best[1].login_at or 0.0):
            best = (key, tokens)
    return best


def _opened_state(
    tokens: TokenSet | None, record: StoredCredential, conn: ConnectionConfig | None
) -> dict[str, Any]:
    """What ``/me`` shows of a connection from its sealed token set (nothing known when it
    cannot be opened but the granted scope, kept in clear)."""
    if tokens is None:
        return {
            "granted_scopes": scope_list(record.scope),
            "declined_scopes": [],
            "reauthenticate_at": None,
            "profile": {},
            "login_at": None,
            "refresh_count": 0,
            "refreshed_at": None,
        }
    return {
        "granted_scopes": scope_list(tokens.scope),
        "declined_scopes": declined_scopes(conn, tokens),
        "reauthenticate_at": _epoch(tokens.refresh_expires_at),
        "profile": dict(tokens.profile),
        "login_at": _epoch(tokens.login_at),
        "refresh_count": tokens.refresh_count,
        "refreshed_at": _epoch(tokens.obtained_at) if tokens.refresh_count else None,
    }


def _epoch(at: float | None) -> int | None:
    return None if at is None else int(at)
