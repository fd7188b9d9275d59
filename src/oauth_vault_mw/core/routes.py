"""The HTTP routes under the prefix, as data, and the framework-neutral reply to a request.

Both framework shells build their routing from :data:`ROUTES` and turn a :class:`Reply` (what
a handler of ``_async/routes.py`` or its sync twin returns) into their own response; neither
writes a route or a handler of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .cookies import CookieSpec
from .errors import VaultError
from .inputs import NO_STORE

__all__ = [
    "NOT_FOUND",
    "ROUTES",
    "MethodNotAllowed",
    "Reply",
    "RouteSpec",
    "RouteTable",
    "error_reply",
    "json_reply",
    "redirect_reply",
]


@dataclass(frozen=True)
class RouteSpec:
    """One route: its handler's name (also the shells' endpoint name), its one method (a
    ``GET`` route answers ``HEAD`` too) and its path under the prefix, with ``{connection_id}``
    and ``{user_id}`` for the path parameters (one path segment each)."""

    name: str
    method: str
    path: str


ROUTES = (
    RouteSpec("login", "GET", "/login/{connection_id}"),
    RouteSpec("connect", "GET", "/connect/{connection_id}"),
    RouteSpec("callback", "GET", "/callback/{connection_id}"),
    RouteSpec("logout", "POST", "/logout"),
    RouteSpec("me", "GET", "/me"),
    RouteSpec("credentials", "GET", "/connections/{connection_id}/credentials"),
    RouteSpec(
        "service_credentials", "GET", "/connections/{connection_id}/users/{user_id}/credentials"
    ),
    RouteSpec("app_token", "GET", "/app-token"),
    RouteSpec("jwks", "GET", "/.well-known/jwks.json"),
    RouteSpec("token", "POST", "/token"),
    RouteSpec("disconnect", "DELETE", "/connections/{connection_id}"),
    RouteSpec("set_default", "PUT", "/connections/{connection_id}/default"),
)


@dataclass(slots=True)
class Reply:
    """What a route answers: a JSON ``body``, or a redirect to ``location`` (no body), or an
    HTML ``page`` (``core/error_page.py``: ``headers`` carry its ``Content-Type``), with
    ``headers`` and the ``cookies`` to set, in that order. One per request: treat it as
    immutable (not frozen only because a frozen dataclass is slower to build)."""

    status: int
    body: Any
    headers: Mapping[str, str]
    location: str | None = None
    cookies: tuple[CookieSpec, ...] = ()
    page: str | None = None


def json_reply(
    body: Any, headers: Mapping[str, str] = NO_STORE, cookies: tuple[CookieSpec, ...] = ()
) -> Reply:
    """A ``200`` JSON reply, by default not to be stored (it holds a token or a user)."""
    return Reply(200, body, headers, None, cookies)


def redirect_reply(location: str, status: int, cookies: tuple[CookieSpec, ...]) -> Reply:
    """A redirect (``302`` to the provider, ``303`` back to the app), not to be stored."""
    return Reply(status, None, NO_STORE, location, cookies)


def error_reply(exc: VaultError, cookies: tuple[CookieSpec, ...]) -> Reply:
    """``exc`` as the shells render it (its JSON, status and headers), not to be stored,
    with ``cookies`` to set: for an error that must still clear a cookie."""
    return Reply(exc.status_code, exc.to_dict(), {**NO_STORE, **exc.headers()}, None, cookies)


NOT_FOUND = Reply(404, {"error": "not_found", "error_description": "no such route"}, {})
"""Any other path under the prefix: a JSON ``404``, never the framework's page."""


@dataclass(frozen=True)
class MethodNotAllowed:
    """The path is a route's, the method is none of its: ``405`` with ``allow`` as the
    ``Allow`` header (``"GET, HEAD"``: a ``GET`` route answers ``HEAD`` too)."""

    allow: str


class RouteTable:
    """:data:`ROUTES` under a prefix, matched segment by segment: each ``{parameter}`` is one
    non-empty path segment (the server has already percent-decoded the path, so an encoded
    ``/`` splits too), every other segment must be equal; no trailing slash, no empty
    segment. A framework's general router is not needed for eleven fixed routes."""

    def __init__(self, prefix: str, routes: tuple[RouteSpec, ...] = ROUTES) -> None:
        self.prefix = prefix
        # by segment count: ((parameter name or None, literal or None) per segment, route)
        self._by_count: dict[int, list[tuple[tuple[tuple[str | None, str | None], ...], RouteSpec]]]
        self._by_count = {}
        for route in routes:
            parts = tuple(
                (part[1:-1], None) if part.startswith("{") else (None, part)
                for part in route.path.split("/")[1:]
            )
            self._by_count.setdefault(len(parts), []).append((parts, route))

    def match(
        self, path: str, method: str
    ) -> tuple[RouteSpec, dict[str, str]] | MethodNotAllowed | None:
        """The route and its path parameters; :class:`MethodNotAllowed`; or ``None`` (404).
        ``path`` is the whole request path, the prefix included."""
        prefix = self.prefix
        if not path.startswith(prefix) or path[len(prefix) : len(prefix) + 1] != "/":
            return None
        segments = path[len(prefix) + 1 :].split("/")
        allowed: set[str] = set()
        for parts, route in self._by_count.get(len(segments), ()):
            params: dict[str, str] = {}
            for (name, literal), segment in zip(parts, segments, strict=True):
                if name is None:
                    if literal != segment:
                        break
                elif segment:
                    params[name] = segment
                else:
                    break
            else:
                if route.method == method or (route.method == "GET" and method == "HEAD"):
                    return route, params
                allowed.add(route.method)
                if route.method == "GET":
                    allowed.add("HEAD")
        return MethodNotAllowed(", ".join(sorted(allowed))) if allowed else None
