"""Per-request state the middleware puts under ``scope["oauth_vault"]``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._async.service import AsyncServiceAccess
from .._async.vault import AsyncVault
from ..core.cookies import SESSION_COOKIE
from ..core.errors import BadRequest, MiddlewareNotInstalled, NotAuthenticated
from ..core.model import Credentials

__all__ = ["SCOPE_KEY", "RequestContext", "context_of", "read_cookie", "read_header"]

SCOPE_KEY = "oauth_vault"
MAX_COOKIE_HEADER = 8192
_UNSET: Any = object()


def read_cookie(scope: Mapping[str, Any], name: str) -> str | None:
    """One cookie's value from the raw headers; oversized cookie headers are refused.

    A plain split, not ``http.cookies``: the library's cookie values are URL-safe tokens,
    and this runs on every request.
    """
    wanted = name.encode("latin-1")
    for key, value in scope.get("headers", ()):
        if key != b"cookie":
            continue
        if len(value) > MAX_COOKIE_HEADER:
            raise BadRequest("cookie header too large")
        for part in value.split(b";"):
            found, sep, content = part.strip().partition(b"=")
            if sep and found == wanted:
                return str(content.strip(b'"').decode("latin-1"))
    return None


def read_header(scope: Mapping[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


class RequestContext:
    """The vault and this request's lazily resolved user."""

    __slots__ = ("_scope", "_user_id", "service", "vault")

    def __init__(
        self, vault: AsyncVault, scope: Mapping[str, Any], service: AsyncServiceAccess
    ) -> None:
        self.vault = vault
        self.service = service
        self._scope = scope
        self._user_id: str | None = _UNSET

    async def user_id(self) -> str | None:
        """The user of the app token (``Authorization: Bearer``) or of the session cookie."""
        if self._user_id is _UNSET:
            by_token = self.service.user_for_app_token(read_header(self._scope, b"authorization"))
            if by_token is not None:
                self._user_id = by_token
            else:
                cookie = read_cookie(self._scope, SESSION_COOKIE)
                self._user_id = await self.vault.user_for_session(cookie)
        return self._user_id

    async def credentials(
        self, connection_id: str, min_validity: float | None = None, force_refresh: bool = False
    ) -> Credentials:
        """The user's credential for ``connection_id``. A request on a session cookie whose
        user is not looked up yet gets both from the vault at once (one storage read)."""
        if self._user_id is _UNSET and read_header(self._scope, b"authorization") is None:
            found = await self.vault.session_credentials(
                read_cookie(self._scope, SESSION_COOKIE),
                connection_id,
                min_validity=min_validity,
                force_refresh=force_refresh,
            )
            if found is None:
                self._user_id = None
                raise NotAuthenticated()
            self._user_id, creds = found
            return creds
        user_id = await self.require_user_id()
        return await self.vault.get_connection_credentials(
            connection_id,
            user_id,
            min_validity=min_validity,
            force_refresh=force_refresh,
            actor=f"user:{user_id}",
        )

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
