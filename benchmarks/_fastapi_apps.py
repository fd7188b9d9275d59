"""The bare FastAPI app the FastAPI benchmark serves next to the FastAPI example.

``benchmarks._fastapi_apps:bare_app``: FastAPI alone, whose ``GET /demo/token`` answers what the
example's route answers (``connection_id``, ``expires_in`` counted down from the seeded
credential's expiry, ``scope``; ``Cache-Control: no-store``) without a vault: the expiry and the
scope come from ``BENCH_TOKEN_STATUS`` (JSON, set by the runner). Built on first access
(PEP 562), so importing this module needs no environment.
"""

from __future__ import annotations

import json
import os
import time

from fastapi import FastAPI
from fastapi.responses import JSONResponse

# ``bare_app`` is provided by ``__getattr__`` below.
__all__ = ["build_bare_app"]


def build_bare_app() -> FastAPI:
    status = json.loads(os.environ["BENCH_TOKEN_STATUS"])
    connection_id: str = status["connection_id"]
    expires_at: float = status["expires_at"]
    scope: str | None = status["scope"]
    app = FastAPI()

    @app.get("/demo/token")
    async def token_status() -> JSONResponse:
        left = round(expires_at - time.time())
        return JSONResponse(
            {"connection_id": connection_id, "expires_in": left, "scope": scope},
            headers={"Cache-Control": "no-store"},
        )

    return app


def __getattr__(name: str) -> FastAPI:
    if name != "bare_app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    app = build_bare_app()
    globals()[name] = app
    return app
