"""Granted scopes: what a login asked for and was granted, what a caller needs, what to ask
for next (incremental authorization).

- :func:`parse_scope_param`: the ``scope`` parameter of ``GET /connect/{id}`` and of the
  credential route, checked (RFC 6749 3.3 scope tokens, each once, bounded).
- :func:`login_scope`: the scope a code exchange granted: the token reply's, else the one the
  provider sent on the callback (Google, Strava), else the one asked for (RFC 6749 5.1).
- :func:`connect_scopes`: what a connect asks for: the connection's scopes, those granted
  already and those asked now, each once.
- :func:`missing_scopes`: which of the scopes a caller needs the stored grant lacks; the
  request path's check, a set lookup per scope.
- :func:`declined_scopes`: asked at the last login but not granted (a user unticked them).
- :func:`insufficient_scope`, :func:`add_return_to`: the 403 error and its ``login_url``.

A scope counts as granted when the grant names it, when the provider reports it under
another name (a preset's ``scope_aliases``: Google reports ``email`` as
``https://www.googleapis.com/auth/userinfo.email``), and, for ``offline_access``, when the
credential holds a refresh token (what that scope asks for; Microsoft never reports it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from urllib.parse import quote

from .connections import ConnectionConfig
from .errors import BadRequest, InsufficientScope
from .flow import check_return_to
from .model import TokenSet
from .tokens import read_scope

__all__ = [
    "MAX_ASKED_SCOPE",
    "MAX_SCOPES",
    "MAX_SCOPE_PARAM",
    "OFFLINE_SCOPE",
    "add_return_to",
    "connect_scopes",
    "connect_url",
    "declined_scopes",
    "insufficient_scope",
    "login_scope",
    "merge_scopes",
    "missing_scopes",
    "parse_scope_param",
    "scope_list",
]

MAX_SCOPE_PARAM = 1024
"""The longest ``scope`` parameter a route reads (characters)."""
MAX_SCOPES = 32
"""The most scopes one ``scope`` parameter names."""
MAX_ASKED_SCOPE = 2048
"""The longest scope a connect asks for, once merged: it travels in the state cookie."""
OFFLINE_SCOPE = "offline_access"
"""Granted when the credential holds a refresh token, whether or not the reply names it."""

_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+\Z")  # RFC 6749 3.3 scope-token


def parse_scope_param(value: str, *, separator: str = " ") -> tuple[str, ...]:
    """The scopes a ``scope`` query parameter names, space-separated (``+`` in a query):
    each a scope token of RFC 6749 3.3 (printable ASCII but space, ``"`` and ``\\``), each
    once, at most :data:`MAX_SCOPES` in :data:`MAX_SCOPE_PARAM` characters. A connection
    whose provider separates scopes with commas takes no comma inside one. Anything else
    is a ``BadRequest`` (400)."""
    if len(value) > MAX_SCOPE_PARAM:
        raise BadRequest(f"scope is too long (at most {MAX_SCOPE_PARAM} characters)")
    names = [name for name in value.split(" ") if name]
    if not names:
        raise BadRequest("scope names no scope")
    if len(names) > MAX_SCOPES:
        raise BadRequest(f"scope names too many scopes (at most {MAX_SCOPES})")
    for name in names:
        if not _SCOPE_TOKEN.match(name):
            raise BadRequest(
                "scope: scopes are separated by spaces, each of printable ASCII without "
                "quotes or backslashes (RFC 6749 3.3)"
            )
        if separator != " " and separator in name:
            raise BadRequest("scope: separate scopes with spaces")
    if len(set(names)) != len(names):
        raise BadRequest("scope: each scope once")
    return tuple(names)


def scope_list(scope: str | None) -> list[str]:
    """A stored scope (space-separated) as a list, in its order."""
    return scope.split() if scope else []


def merge_scopes(*groups: Iterable[str]) -> tuple[str, ...]:
    """The scopes of every group, each once, in the order first seen."""
    return tuple(dict.fromkeys(name for group in groups for name in group))


def login_scope(reply_scope: str | None, callback_scope: str | None, asked: str) -> str | None:
    """The scope a code exchange granted, space-separated: the token reply's (``reply_scope``,
    as ``tokens.read_scope`` read it; ``None`` when the reply names none), else the callback's
    ``scope`` parameter where the provider reports the granted scopes there (comma or space
    separated), else the scope asked for (RFC 6749 5.1: the granted scope is the requested
    one when the reply omits it). ``None`` when nothing was asked for either."""
    if reply_scope is not None:
        return reply_scope
    if callback_scope:
        found = read_scope({"scope": callback_scope}, None)
        if found is not None:
            return found
    return asked or None


def _reported_as(conn: ConnectionConfig) -> dict[str, str]:
    """The name a scope asked for is reported under, where the provider renames it."""
    return dict(conn.scope_aliases)


def _asked_as(conn: ConnectionConfig) -> dict[str, str]:
    """The name to ask for a scope the provider reports under another name."""
    return {reported: asked for asked, reported in conn.scope_aliases}


def connect_scopes(
    conn: ConnectionConfig, granted: str | None, asked: Sequence[str]
) -> tuple[str, ...]:
    """What a connect asks the provider for: the connection's scopes, the scopes granted
    already (under the names they are asked by), and ``asked``, each once. A provider that
    forgets earlier consents on a new grant so keeps them; Google, told
    ``include_granted_scopes=true``, keeps them in any case."""
    renamed = _asked_as(conn)
    earlier = (renamed.get(name, name) for name in scope_list(granted))
    merged = merge_scopes(conn.scopes, earlier, asked)
    if len(" ".join(merged)) > MAX_ASKED_SCOPE:
        raise BadRequest(f"the scopes to ask for are too long (at most {MAX_ASKED_SCOPE})")
    return merged


def _covered(conn: ConnectionConfig, tokens: TokenSet, name: str) -> bool:
    """A scope the grant does not name literally but covers (see the module's docstring)."""
    if name == OFFLINE_SCOPE and tokens.refresh_token is not None:
        return True
    reported = _reported_as(conn).get(name)
    return reported is not None and reported in tokens.granted_scopes


def missing_scopes(
    conn: ConnectionConfig, tokens: TokenSet, needed: Iterable[str]
) -> tuple[str, ...]:
    """The scopes of ``needed`` the credential's grant lacks, in the order given (empty:
    every one is granted). A string names one scope, or several separated by spaces."""
    if isinstance(needed, str):
        needed = needed.split()
    granted = tokens.granted_scopes
    missing = [name for name in needed if name not in granted]
    if not missing:
        return ()
    return tuple(name for name in missing if not _covered(conn, tokens, name))


def declined_scopes(conn: ConnectionConfig | None, tokens: TokenSet) -> list[str]:
    """The scopes the last login or connect asked for and the grant lacks: the user
    declined them at the consent (or the provider does not grant them to this client).
    Empty when nothing is known of what was asked (a credential stored before this was
    recorded)."""
    if tokens.asked_scope is None:
        return []
    granted = tokens.granted_scopes
    declined = [name for name in tokens.asked_scope.split() if name not in granted]
    if not declined or conn is None:
        return declined
    return [name for name in declined if not _covered(conn, tokens, name)]


def connect_url(base: str, connection_id: str, scopes: Sequence[str]) -> str:
    """The connect route (``base``: the app's URL and the prefix) asking for ``scopes``."""
    query = quote(" ".join(scopes), safe="").replace("%20", "+")
    return f"{base}/connect/{connection_id}?scope={query}"


def insufficient_scope(
    base: str,
    conn: ConnectionConfig,
    tokens: TokenSet,
    missing: Sequence[str],
    account: str | None = None,
) -> InsufficientScope:
    """The 403 for a caller that needs ``missing`` too. Its ``login_url`` is the connect
    route asking for the missing scopes with the earlier granted ones beyond the
    connection's own (which a connect asks for anyway; it adds whatever is granted too);
    where that is longer than the route takes, the missing ones alone. ``account``: the
    account id when the credential is not the user's default account (the connect then
    asks that account's grant to grow)."""
    renamed = _asked_as(conn)
    earlier = [renamed.get(name, name) for name in scope_list(tokens.scope)]
    configured = set(conn.scopes)
    asked = merge_scopes((name for name in earlier if name not in configured), missing)
    if len(" ".join(asked)) > MAX_SCOPE_PARAM or len(asked) > MAX_SCOPES:
        asked = tuple(missing)
    names = ", ".join(missing)
    return InsufficientScope(
        f"the user has not granted {names[:512]} on connection {conn.id}: send them to "
        "login_url to ask for it",
        connection_id=conn.id,
        missing_scopes=tuple(missing),
        login_url=connect_url(base, conn.id, asked)
        + (f"&account={account}" if account is not None else ""),
    )


def add_return_to(exc: InsufficientScope, path: str) -> None:
    """Make ``exc``'s ``login_url`` come back to ``path`` once the user has consented, when
    ``path`` is a same-origin path that ``return_to`` takes (else it is left as it is)."""
    try:
        check_return_to(path)
    except BadRequest:
        return
    if "return_to=" in exc.login_url:
        return
    exc.login_url += f"&return_to={quote(path, safe='/')}"
