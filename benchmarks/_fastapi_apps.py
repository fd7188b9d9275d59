"""The bare FastAPI app the FastAPI benchmark serves next to the FastAPI example.

``benchmarks._fastapi_apps:bare_app``: FastAPI alone, whose ``GET /demo/token`` answers what the
example's route answers (``connection_id``, ``expires_in`` counted down from the seeded
credential's expiry, ``scope``; ``Cache-Control: no-store``) without a vault: the expiry and the
scope come from ``BENCH_TOKEN_STATUS`` (JSON, set by the runner). Built on first access
(PEP 562), so importing this module needs no environment.

Its route table is the example's: the example's pages (``GET /`` and ``GET
/demo/profile/{connection_id}``, on an included ``APIRouter``, answering a placeholder here)
come before ``/demo/token`` and ``/metrics`` after it. FastAPI matches a request against each
route before the one it serves (an included router's routes cost about 5 us in-process here),
so both apps pay the same routing and the ratio is the vault's.
"""

from __future__ import annotations

import json
import os
import time

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response

# ``bare_app`` is provided by ``__getattr__`` below.
__all__ = ["build_bare_app"]


def build_bare_app() -> FastAPI:
    status = json.loads(os.environ["BENCH_TOKEN_STATUS"])
    connection_id: str = status["connection_id"]
    expires_at: float = status["expires_at"]
    scope: str | None = status["scope"]
    pages = APIRouter()  # the example's pages, in the example's order

    @pages.get("/", response_class=HTMLResponse)
    async def home(request: Request, flash: str | None = None) -> HTMLResponse:
        return HTMLResponse("<p>home</p>")

    @pages.get("/demo/profile/{connection_id}", response_class=HTMLResponse)
    async def profile(connection_id: str, request: Request) -> Response:
        return HTMLResponse("<p>profile</p>")

    app = FastAPI()
    app.include_router(pages)

    @app.get("/demo/token")
    async def token_status() -> JSONResponse:
        left = round(expires_at - time.time())
        return JSONResponse(
            {"connection_id": connection_id, "expires_in": left, "scope": scope},
            headers={"Cache-Control": "no-store"},
        )

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return PlainTextResponse("")

    return app


def __getattr__(name: str) -> FastAPI:
    if name != "bare_app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    app = build_bare_app()
    globals()[name] = app
    return app
