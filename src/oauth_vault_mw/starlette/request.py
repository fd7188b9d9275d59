"""``connection_credentials`` for Starlette and FastAPI handlers.

Three equivalent ways, all needing :class:`OAuthVaultMiddleware`::

    # 1. the function, in any handler
    creds = await connection_credentials(request, "google")

    # 2. request.connection_credentials(...), with VaultRoute (Starlette) or
    #    VaultAPIRoute (FastAPI, see oauth_vault_mw.fastapi)
    async def profile(request: VaultRequest) -> Response:
        creds = await request.connection_credentials("google", min_validity=120)

    # a scope the user may not have granted yet: 403 insufficient_scope with a login_url
    creds = await connection_credentials(request, "google", scopes=["drive.file"])

    routes = [VaultRoute("/profile", profile)]

And an httpx client on the connection's API that sends the token and retries once after a
refresh on a 401 (docs/client.md)::

    async with await request.connection_client("github") as github:
        user = (await github.get("/user")).json()
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.routing import Route

from .._async.client import AsyncConnectionClient
from .._async.client import connection_client as _client_for
from .._async.vault import AsyncVault
from ..core.errors import InsufficientScope
from ..core.identity import CurrentUser
from ..core.model import Credentials
from ..core.scopes import add_return_to
from ._context import context_of

__all__ = [
    "VaultRequest",
    "VaultRoute",
    "connection_client",
    "connection_credentials",
    "current_user",
    "current_user_id",
    "vault_of",
]


async def connection_credentials(
    request: HTTPConnection,
    connection_id: str,
    *,
    min_validity: float | None = None,
    force_refresh: bool = False,
    scopes: Iterable[str] | None = None,
    account: str | None = None,
) -> Credentials:
    """The current user's access token for ``connection_id``, valid ``min_validity`` s.

    ``min_validity`` defaults to the connection's setting. ``force_refresh=True`` after the
    provider answered 401 to the token. ``scopes``: the scopes the handler needs; when the
    user has not granted one, ``InsufficientScope`` (403 ``insufficient_scope`` with
    ``missing_scopes`` and a ``login_url`` that asks for them and, for a GET, comes back to
    this request's path). Raises ``NotAuthenticated`` (no session),
    ``ReauthenticationRequired``, ``ProviderUnavailable``, ``CredentialNotFound``,
    ``UnknownConnection``; the middleware renders each as its JSON error. ``account``: one
    of the user's accounts of the connection by its id (``/me`` lists them; an unknown one
    is ``CredentialNotFound``); ``None``: the user's default account.
    """
    ctx = context_of(request.scope)
    if scopes is None and account is None:
        return await ctx.credentials(connection_id, min_validity, force_refresh)
    try:
        return await ctx.credentials(connection_id, min_validity, force_refresh, scopes, account)
    except InsufficientScope as exc:
        _come_back(exc, request)
        raise


def _come_back(exc: InsufficientScope, request: HTTPConnection) -> None:
    """Send the user back to this request's page after the consent, for a GET."""
    if request.scope.get("method") in ("GET", "HEAD"):
        url = request.url
        add_return_to(exc, f"{url.path}?{url.query}" if url.query else url.path)


async def connection_client(
    request: HTTPConnection,
    connection_id: str,
    *,
    min_validity: float | None = None,
    base_url: str | None = None,
    scopes: Iterable[str] | None = None,
    account: str | None = None,
    **kwargs: Any,
) -> AsyncConnectionClient:
    """An ``httpx.AsyncClient`` on ``connection_id``'s API as the current user: it sends the
    token (valid ``min_validity`` s, the connection's setting by default; holding ``scopes``
    as :func:`connection_credentials` checks them) to the API's origin only, and on a 401
    refreshes once and retries once (a replayable body only).

    The base URL is ``base_url``, else the connection's ``api_base_url`` (its preset's, or
    from the login: Salesforce ``instance_url``). It borrows the vault's connection pool:
    ``async with`` closes the client, not the pool, and one left open leaks nothing.
    ``kwargs`` go to httpx (``timeout=``, ``headers=``...). Raises what
    :func:`connection_credentials` raises, and ``ConfigurationError`` when no base URL is
    known. See docs/client.md.
    """
    ctx = context_of(request.scope)

    async def credentials(force_refresh: bool) -> Credentials:
        try:
            return await ctx.credentials(
                connection_id, min_validity, force_refresh, scopes, account
            )
        except InsufficientScope as exc:
            _come_back(exc, request)
            raise

    return await _client_for(ctx.vault, connection_id, credentials, base_url=base_url, **kwargs)


async def current_user_id(request: HTTPConnection) -> str | None:
    """The logged-in user's id, or ``None``."""
    return await context_of(request.scope).user_id()


def vault_of(request: HTTPConnection) -> AsyncVault:
    """The middleware's vault, for handlers that use it directly (``await
    vault_of(request).me(user_id)``, background work started from a request)."""
    return context_of(request.scope).vault


async def current_user(request: HTTPConnection) -> CurrentUser | None:
    """The logged-in user (``user_id``, and ``profile``: the display claims of their last
    login, such as ``name`` and ``email``), or ``None``."""
    return await context_of(request.scope).current_user()


class VaultRequest(Request):
    """A Starlette request with ``connection_credentials()``, ``connection_client()``,
    ``vault_user_id()`` and ``current_user()``."""

    async def connection_credentials(
        self,
        connection_id: str,
        *,
        min_validity: float | None = None,
        force_refresh: bool = False,
        scopes: Iterable[str] | None = None,
        account: str | None = None,
    ) -> Credentials:
        return await connection_credentials(
            self,
            connection_id,
            min_validity=min_validity,
            force_refresh=force_refresh,
            scopes=scopes,
            account=account,
        )

    async def connection_client(
        self,
        connection_id: str,
        *,
        min_validity: float | None = None,
        base_url: str | None = None,
        scopes: Iterable[str] | None = None,
        account: str | None = None,
        **kwargs: Any,
    ) -> AsyncConnectionClient:
        return await connection_client(
            self,
            connection_id,
            min_validity=min_validity,
            base_url=base_url,
            scopes=scopes,
            account=account,
            **kwargs,
        )

    async def vault_user_id(self) -> str | None:
        return await current_user_id(self)

    async def current_user(self) -> CurrentUser | None:
        return await current_user(self)


def _with_vault_request(
    endpoint: Callable[[VaultRequest], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    @functools.wraps(endpoint)
    async def wrapped(request: Request) -> Response:
        return await endpoint(VaultRequest(request.scope, request.receive))

    return wrapped


class VaultRoute(Route):
    """A Starlette ``Route`` whose async endpoint receives a :class:`VaultRequest`."""

    def __init__(
        self, path: str, endpoint: Callable[[VaultRequest], Awaitable[Response]], **kwargs: Any
    ) -> None:
        super().__init__(path, _with_vault_request(endpoint), **kwargs)
