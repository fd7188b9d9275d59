"""Per-request state the middleware puts under ``scope["oauth_vault"]``."""

from __future__ import annotations

from collections.abc import Mapping
from http.cookies import SimpleCookie
from typing import Any

from .._exceptions import BadRequest, MiddlewareNotInstalled, NotAuthenticated
from .._vault import AsyncVault
from ..core.cookies import SESSION_COOKIE

__all__ = ["SCOPE_KEY", "RequestContext", "context_of", "read_cookie"]

SCOPE_KEY = "oauth_vault"
MAX_COOKIE_HEADER = 8192
_UNSET: Any = object()


def read_cookie(scope: Mapping[str, Any], name: str) -> str | None:
    """One cookie's value from the raw headers; oversized cookie headers are refused."""
    for key, value in scope.get("headers", ()):
        if key == b"cookie":
            if len(value) > MAX_COOKIE_HEADER:
                raise BadRequest("cookie header too large")
            text = value.decode("latin-1")
            if name not in text:
                continue
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(text)
            except Exception:
                return None
            morsel = jar.get(name)
            if morsel is not None:
                return morsel.value
    return None


class RequestContext:
    """The vault and this request's lazily resolved user."""

    __slots__ = ("_scope", "_user_id", "vault")

    def __init__(self, vault: AsyncVault, scope: Mapping[str, Any]) -> None:
        self.vault = vault
        self._scope = scope
        self._user_id: str | None = _UNSET

    async def user_id(self) -> str | None:
        if self._user_id is _UNSET:
            cookie = read_cookie(self._scope, SESSION_COOKIE)
            self._user_id = await self.vault.user_for_session(cookie)
        return self._user_id

    async def require_user_id(self) -> str:
        user_id = await self.user_id()
        if user_id is None:
            raise NotAuthenticated()
        return user_id


def context_of(scope: Mapping[str, Any]) -> RequestContext:
    ctx = scope.get(SCOPE_KEY)
    if not isinstance(ctx, RequestContext):
        raise MiddlewareNotInstalled()
    return ctx
