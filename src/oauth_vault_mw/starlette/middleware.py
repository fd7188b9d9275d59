"""``OAuthVaultMiddleware``: pure ASGI; serves the vault's routes and the request accessor.

::

    app = Starlette(routes=[...])
    app.add_middleware(OAuthVaultMiddleware, settings=Settings.from_env())

Settings are validated when the middleware is built (at start-up); storage tables are created
on the lifespan's start-up (or the first request when the server runs no lifespan).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import httpx
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .._async.service import AsyncServiceAccess
from .._async.vault import AsyncVault, NewUserIdHook
from ..core.config import Settings, parse_settings
from ..core.errors import VaultError
from ..storage import AsyncStorage
from ._context import SCOPE_KEY, RequestContext
from .routes import build_router, error_response, http_error_response

__all__ = ["OAuthVaultMiddleware"]


class OAuthVaultMiddleware:
    """Mounts the vault on an ASGI app.

    Pass ``settings`` (a :class:`Settings` or a mapping; default: the ``OAUTH_VAULT_*``
    environment) or a ready ``vault``. ``new_user_id`` decides the user id of a provider
    account seen for the first time (default: a random id).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        settings: Settings | Mapping[str, Any] | None = None,
        vault: AsyncVault | None = None,
        storage: AsyncStorage | None = None,
        new_user_id: NewUserIdHook | None = None,
        http_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.app = app
        if vault is None:
            if settings is None:
                settings = Settings.from_env()
            elif not isinstance(settings, Settings):
                settings = parse_settings(settings)
            vault = AsyncVault(
                settings,
                storage=storage,
                new_user_id=new_user_id,
                http_transport=http_transport,
            )
        self.vault = vault
        self.service = AsyncServiceAccess(vault)
        self.prefix = vault.settings.prefix
        self.router = build_router(vault, self.service)
        self._start_lock: asyncio.Lock | None = None

    async def _ensure_started(self) -> None:
        if self.vault._started:
            return
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            await self.vault.startup()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self.app(scope, self._lifespan_receive(receive), send)
            return
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        await self._ensure_started()
        scope[SCOPE_KEY] = RequestContext(self.vault, scope, self.service, receive)
        path: str = scope["path"]
        if kind == "http" and (path == self.prefix or path.startswith(self.prefix + "/")):
            await self._serve(self.router, scope, receive, send)
        elif kind == "http":
            await self._serve(self.app, scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _serve(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await app(scope, receive, tracking_send)
        except VaultError as exc:
            if started:
                raise
            await error_response(exc)(scope, receive, send)
        except HTTPException as exc:  # only our router's 405s reach here
            if started or app is not self.router:
                raise
            await http_error_response(exc)(scope, receive, send)

    def _lifespan_receive(self, receive: Receive) -> Receive:
        async def wrapped() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self._ensure_started()
            elif message["type"] == "lifespan.shutdown":
                await self.service.close()
                await self.vault.provider.aclose()
            return message

        return wrapped
