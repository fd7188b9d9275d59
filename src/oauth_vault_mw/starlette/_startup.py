"""Start-up of the ASGI middleware: building its vault, and failing the server's start-up.

A configuration error must stop the server before it serves, with one line that names the
setting. Under ASGI that line travels in ``lifespan.startup.failed``: an exception raised
instead reaches uvicorn's ``--lifespan auto`` (its default) as "ASGI 'lifespan' protocol
appears unsupported", and the server then answers 500 to every request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import httpx
from starlette.types import Receive, Scope, Send

from .._async.vault import AsyncVault, NewUserIdHook
from ..core.config import Settings, parse_settings
from ..core.errors import ConfigurationError, VaultError
from ..core.hooks import Hooks
from ..metrics import Metrics
from ..storage import AsyncStorage

__all__ = ["StartupFailure", "build_vault", "inside_event_loop", "startup_failure_line"]


def build_vault(
    settings: Settings | Mapping[str, Any] | None,
    *,
    storage: AsyncStorage | None,
    new_user_id: NewUserIdHook | None,
    http_transport: httpx.AsyncBaseTransport | None,
    hooks: Hooks | None = None,
    metrics: Metrics | None = None,
) -> AsyncVault:
    """The middleware's own vault. Checks the settings and the storage URL (its scheme, its
    options, its driver) without I/O; every failure is a :class:`ConfigurationError`."""
    if settings is None:
        settings = Settings.from_env()
    elif not isinstance(settings, Settings):
        settings = parse_settings(settings)
    # A missing driver is the storage factory's ConfigurationError, naming the setting.
    return AsyncVault(
        settings,
        storage=storage,
        new_user_id=new_user_id,
        http_transport=http_transport,
        hooks=hooks,
        metrics=metrics,
    )


def inside_event_loop() -> bool:
    """True while an event loop runs in this thread: Starlette and FastAPI build their
    middleware stack there, on the app's first ASGI call (the lifespan's start-up)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def startup_failure_line(exc: VaultError) -> str:
    """The one line a server logs when the vault cannot start; it names the setting and
    holds no secret (a storage URL may hold a password: it is never quoted)."""
    if isinstance(exc, ConfigurationError):
        text = exc.description
    else:  # StorageUnavailable: the storage's set-up is all the vault does at start-up
        text = f"OAUTH_VAULT_STORAGE_URL: the storage could not be set up ({exc.description})"
    return "oauth_vault_mw: " + " ".join(text.split())


class StartupFailure:
    """What a middleware whose configuration failed serves: ``lifespan.startup.failed``
    with the one line on the lifespan, the error itself on requests (a server that runs no
    lifespan logs it and answers 500)."""

    def __init__(self, error: VaultError) -> None:
        self.error = error
        self.line = startup_failure_line(error)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            raise self.error.with_traceback(None)
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.failed", "message": self.line})
