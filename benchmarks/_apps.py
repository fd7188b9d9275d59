"""The two ASGI apps the endpoint benchmark serves under uvicorn.

``benchmarks._apps:vault_app``: Starlette + ``OAuthVaultMiddleware`` on the sqlite file the
runner seeded; ``benchmarks._apps:bare_app``: Starlette alone, whose route (same path) returns
the very dict the vault returns, from a constant, through ``JSONResponse`` with the same
no-store headers. The runner configures both through environment variables:

* ``BENCH_STORAGE_URL``, ``BENCH_SECRET_KEY``, ``BENCH_ENCRYPTION_KEY`` (vault app);
* ``BENCH_PAYLOAD``: the JSON of the seeded credential (bare app);
* ``BENCH_GC_FREEZE=1``: both apps call ``gc.freeze()`` once started (after the vault's
  start-up: the middleware answers the lifespan's start-up before the app's own lifespan
  runs), as docs/deployment.md suggests.

The apps are built on first access (PEP 562), so importing this module needs no environment.
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from oauth_vault_mw.starlette import OAuthVaultMiddleware

from ._common import NO_STORE, payload_from_env, settings_from_env

# ``vault_app`` and ``bare_app`` are provided by ``__getattr__`` below.
__all__ = ["build_bare_app", "build_vault_app"]


@contextlib.asynccontextmanager
async def _frozen_after_startup(app: Starlette) -> AsyncIterator[None]:
    if os.environ.get("BENCH_GC_FREEZE") == "1":
        gc.collect()
        gc.freeze()
    yield


def build_vault_app() -> Starlette:
    settings = settings_from_env()
    return Starlette(
        middleware=[Middleware(OAuthVaultMiddleware, settings=settings)],
        lifespan=_frozen_after_startup,
    )


def build_bare_app() -> Starlette:
    payload = payload_from_env()

    async def credentials(request: Request) -> Response:
        return JSONResponse(payload, headers=NO_STORE)

    route = Route("/auth/connections/{connection_id}/credentials", credentials, methods=["GET"])
    return Starlette(routes=[route], lifespan=_frozen_after_startup)


def __getattr__(name: str) -> Starlette:
    if name == "vault_app":
        app = build_vault_app()
    elif name == "bare_app":
        app = build_bare_app()
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = app
    return app
