"""Misuse only the Starlette shell can meet. The 4xx JSON errors both shells answer alike
(bad callbacks, sessions, origins, routes, methods) are conformance scenarios:
``tests/conformance/test_errors.py``."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from oauth_vault_mw import MiddlewareNotInstalled
from oauth_vault_mw.starlette import connection_credentials
from tests.support.suite import BASE


async def test_missing_middleware_fails_loudly() -> None:
    async def handler(request: Request) -> JSONResponse:
        try:
            await connection_credentials(request, "demo")
        except MiddlewareNotInstalled as exc:
            return JSONResponse({"message": str(exc)}, status_code=500)
        return JSONResponse({})

    app = Starlette(routes=[Route("/p", handler)])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        answer = await c.get("/p")
    assert answer.status_code == 500
    assert "OAuthVaultMiddleware" in answer.json()["message"]
