"""``OAuthVaultMiddleware``: pure ASGI; serves the vault's routes and the request accessor.

::

    app = Starlette(routes=[...])
    app.add_middleware(OAuthVaultMiddleware, settings=Settings.from_env())

Settings and the storage URL (scheme, options, driver) are checked when the middleware is
built; storage tables are created on the lifespan's start-up (or the first request when the
server runs no lifespan). A :class:`~oauth_vault_mw.ConfigurationError` stops the server at
start-up with one line naming the setting:

- built outside an event loop (``OAuthVaultMiddleware(app, ...)`` at import, a gunicorn
  worker loading the app), the constructor raises it;
- built inside one (Starlette and FastAPI build their middleware on the app's first ASGI call,
  the lifespan's start-up, whether it was added with ``add_middleware`` or ``middleware=[...]``;
  uvicorn imports the app inside its loop), the middleware answers ``lifespan.startup.failed``
  with that line, and the server exits (uvicorn: status 3, under ``--lifespan auto`` too).

A storage that cannot be set up at start-up (a database that refuses connections) fails the
lifespan's start-up the same way.
"""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Mapping
from typing import Any

import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .._async.service import AsyncServiceAccess
from .._async.vault import AsyncVault, NewUserIdHook
from ..core.config import Settings
from ..core.errors import VaultError
from ..core.hooks import Hooks
from ..metrics import Metrics
from ..storage import AsyncStorage
from ._context import SCOPE_KEY, RequestContext
from ._startup import StartupFailure, build_vault, inside_event_loop, startup_failure_line
from .routes import VaultRouter, build_router, error_response

__all__ = ["OAuthVaultMiddleware"]


class OAuthVaultMiddleware:
    """Mounts the vault on an ASGI app.

    Pass ``settings`` (a :class:`Settings` or a mapping; default: the ``OAUTH_VAULT_*``
    environment) or a ready ``vault``. ``new_user_id`` decides the user id of a provider
    account seen for the first time (default: a random id). ``hooks``: the app's
    :class:`~oauth_vault_mw.Hooks` (``on_login``, ``on_reauthentication_required``,
    ``on_disconnect``); with a ready ``vault``, give them to the vault instead.
    ``metrics``: what the vault reports to (``oauth_vault_mw.metrics``: Prometheus,
    OpenTelemetry); with a ready ``vault``, give it to the vault instead.
    """

    vault: AsyncVault
    service: AsyncServiceAccess
    prefix: str
    router: VaultRouter

    def __init__(
        self,
        app: ASGIApp,
        *,
        settings: Settings | Mapping[str, Any] | None = None,
        vault: AsyncVault | None = None,
        storage: AsyncStorage | None = None,
        new_user_id: NewUserIdHook | None = None,
        http_transport: httpx.AsyncBaseTransport | None = None,
        hooks: Hooks | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.app = app
        self._failure: StartupFailure | None = None
        if vault is None:
            try:
                vault = build_vault(
                    settings,
                    storage=storage,
                    new_user_id=new_user_id,
                    http_transport=http_transport,
                    hooks=hooks,
                    metrics=metrics,
                )
            except VaultError as exc:
                if not inside_event_loop():
                    raise
                # Built on the app's first ASGI call: raised here, the error would reach
                # uvicorn as "lifespan unsupported" (--lifespan auto), then 500 per request.
                self._failure = StartupFailure(exc)
                return
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
        if self._failure is not None:
            await self._failure(scope, receive, send)
            return
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if not self.vault._started:
            await self._ensure_started()
        ctx = scope[SCOPE_KEY] = RequestContext(self.vault, scope, self.service, receive)
        path: str = scope["path"]
        try:
            if kind == "http" and (path == self.prefix or path.startswith(self.prefix + "/")):
                await self.router(scope, receive, send)  # renders its own errors
            elif kind == "http":
                await self._serve_app(scope, receive, send)
            else:
                await self.app(scope, receive, send)
        finally:
            ctx.release()  # no reference cycle through the server's request object

    async def _serve_app(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The host app, with a ``VaultError`` its handler raises before responding (from
        ``connection_credentials()``) sent as the error's JSON."""
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except VaultError as exc:
            if started:
                raise
            await error_response(exc)(scope, receive, send)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Start the vault on ``lifespan.startup`` before the app sees it; a failure answers
        ``lifespan.startup.failed`` (one line for the library's errors) and the app's own
        lifespan never starts. On ``lifespan.shutdown`` the audit events still pending are
        written and the pooled provider client is closed, then the app's shutdown runs."""
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                await self._ensure_started()
            except VaultError as exc:
                line = startup_failure_line(exc)
                await send({"type": "lifespan.startup.failed", "message": line})
                return
            except Exception:
                await send({"type": "lifespan.startup.failed", "message": traceback.format_exc()})
                raise
        pending: list[Message] = [message]

        async def replay() -> Message:
            if pending:
                return pending.pop()
            message = await receive()
            if message["type"] == "lifespan.shutdown":
                await self.service.close()
                await self.vault.provider.aclose()
            return message

        await self.app(scope, replay, send)
