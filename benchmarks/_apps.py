"""The two ASGI apps the endpoint benchmark serves under uvicorn.

``benchmarks._apps:vault_app``: Starlette + ``OAuthVaultMiddleware`` on the sqlite file the
runner seeded; ``benchmarks._apps:bare_app``: Starlette alone, whose route (same path) returns
the very dict the vault returns, from a constant, through ``JSONResponse`` with the same
no-store headers. The runner configures both through environment variables:

* ``BENCH_STORAGE_URL``, ``BENCH_SECRET_KEY``, ``BENCH_ENCRYPTION_KEY`` (vault app);
* ``BENCH_PAYLOAD``: the JSON of the seeded credential (bare app).

The apps are built on first access (PEP 562), so importing this module needs no environment.
"""

from __future__ import annotations

import json
import os
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from oauth_vault_mw.starlette import OAuthVaultMiddleware

from ._common import make_settings

# ``vault_app`` and ``bare_app`` are provided by ``__getattr__`` below.
__all__ = ["NO_STORE", "build_bare_app", "build_vault_app"]

# The headers the vault's credential route sends (checked against it before timing).
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _env(name: str) -> str:
    try:
        return os.environ[name]
    except KeyError:
        raise RuntimeError(f"{name} is not set: run the benchmarks with ./scripts/bench") from None


def build_vault_app() -> Starlette:
    settings = make_settings(
        _env("BENCH_STORAGE_URL"), _env("BENCH_SECRET_KEY"), _env("BENCH_ENCRYPTION_KEY")
    )
    return Starlette(middleware=[Middleware(OAuthVaultMiddleware, settings=settings)])


def build_bare_app() -> Starlette:
    payload: dict[str, Any] = json.loads(_env("BENCH_PAYLOAD"))

    async def credentials(request: Request) -> Response:
        return JSONResponse(payload, headers=NO_STORE)

    route = Route("/auth/connections/{connection_id}/credentials", credentials, methods=["GET"])
    return Starlette(routes=[route])


def __getattr__(name: str) -> Starlette:
    if name == "vault_app":
        app = build_vault_app()
    elif name == "bare_app":
        app = build_bare_app()
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = app
    return app
