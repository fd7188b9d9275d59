"""A FastAPI app with oauth_vault_mw: log in, connect accounts, call the provider's API.

Configured from the ``OAUTH_VAULT_*`` environment (``./scripts/demo --fastapi`` sets an offline
one)::

    uvicorn examples.fastapi_app.app:app --host 127.0.0.1 --port 8000

Pages: ``GET /`` (who is logged in, each connection with its token's expiry and refreshes,
the buttons) and ``GET /demo/profile/{connection_id}`` (the provider's userinfo, on an
``APIRouter(route_class=VaultAPIRoute)``: ``request.connection_client``; a page for a
browser, the provider's JSON for an API caller). The API
``GET /demo/token`` takes the first connection's credentials as a dependency. ``GET /metrics``:
the vault's metrics for Prometheus (``oauth_vault_mw.metrics``). The HTML is in
``examples/pages.py``; no page shows a token.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from examples import pages
from oauth_vault_mw import (
    Credentials,
    ProviderUnavailable,
    Settings,
    UnknownConnection,
)
from oauth_vault_mw.fastapi import ConnectionCredentials, VaultAPIRoute, VaultRequest
from oauth_vault_mw.metrics import CONTENT_TYPE, PrometheusMetrics
from oauth_vault_mw.starlette import OAuthVaultMiddleware, vault_of

settings = Settings.from_env()  # bad configuration fails here, at start-up
metrics = PrometheusMetrics()  # refreshes, provider errors, lease waits... (GET /metrics)
FIRST = settings.connections[0].id  # the connection /demo/token reports on
http = httpx.AsyncClient(timeout=10.0)  # one pooled client for the app's own API calls
_userinfo_urls: dict[str, str] = {}


async def userinfo_url(connection_id: str) -> str:
    """The connection's ``userinfo_url``, else its OIDC discovery's ``userinfo_endpoint``."""
    conn = settings.connection(connection_id)
    if conn is None:
        raise UnknownConnection(f"no connection named {connection_id[:64]!r}")
    if conn.userinfo_url:
        return conn.userinfo_url
    if connection_id not in _userinfo_urls:
        try:
            resp = await http.get(f"{conn.issuer}/.well-known/openid-configuration")
            url = resp.json()["userinfo_endpoint"]
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            raise ProviderUnavailable("the provider's discovery document failed") from None
        _userinfo_urls[connection_id] = str(url)
    return _userinfo_urls[connection_id]


async def connection_views(request: Request, user_id: str | None) -> list[pages.ConnectionView]:
    """Each connection's state for the page (status, expiry, login time, refreshes), from
    the middleware's vault: what ``GET /auth/me`` shows, never a token."""
    me = await vault_of(request).me(user_id) if user_id else None
    return pages.ConnectionView.all_of(me, (c.id for c in settings.connections))


# 1. A route class: handlers that take a VaultRequest get request.connection_credentials().
vault_router = APIRouter(route_class=VaultAPIRoute)


@vault_router.get("/", response_class=HTMLResponse)
async def home(request: VaultRequest, flash: str | None = None) -> HTMLResponse:
    """Who is logged in, each connection with its token's state, and the buttons."""
    user = await request.current_user()
    views = await connection_views(request, user.user_id if user else None)
    return HTMLResponse(pages.home("FastAPI", user, views, settings.prefix, flash))


@vault_router.get("/demo/profile/{connection_id}", response_class=HTMLResponse)
async def profile(connection_id: str, request: VaultRequest) -> Response:
    """The provider's userinfo, through the vault's client (it sends the current token, and
    on a 401 from the provider refreshes once and retries once): a page for a browser, the
    provider's JSON for an API caller."""
    url = await userinfo_url(connection_id)
    conn = settings.connection(connection_id)
    assert conn is not None  # userinfo_url checked it
    async with await request.connection_client(connection_id, base_url=conn.issuer) as api:
        try:
            resp = await api.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError:
            raise ProviderUnavailable("the provider's userinfo endpoint did not answer") from None
    try:
        claims: Any = resp.json()
    except ValueError:
        claims = None
    if not pages.wants_page(request.headers.get("accept"), request.headers.get("sec-fetch-mode")):
        data, status = pages.userinfo_json(resp.status_code, claims)
        return JSONResponse(data, status_code=status)
    views = await connection_views(request, await request.vault_user_id())
    body = pages.userinfo(
        connection_id,
        resp.status_code,
        claims if isinstance(claims, dict) else {},
        {v.connection_id: v for v in views}[connection_id],
        settings.prefix,
    )
    return HTMLResponse(body, status_code=200 if resp.is_success else 502)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    await http.aclose()


app = FastAPI(title="oauth_vault_mw demo", lifespan=lifespan)
app.add_middleware(OAuthVaultMiddleware, settings=settings, metrics=metrics)
app.include_router(vault_router)


# 2. A dependency: the handler receives the Credentials, fresh for min_validity seconds.
@app.get("/demo/token")
async def token_status(
    creds: Annotated[Credentials, Depends(ConnectionCredentials(FIRST, min_validity=30))],
) -> JSONResponse:
    """When the first connection's token expires, and its scope; never the token."""
    left = None if creds.expires_at is None else round(creds.expires_at - time.time())
    return JSONResponse(
        {"connection_id": creds.connection_id, "expires_in": left, "scope": creds.scope},
        headers={"Cache-Control": "no-store"},
    )


# 3. The vault's metrics, for Prometheus to scrape; in production, let only the scraper in.
@app.get("/metrics", include_in_schema=False)
async def prometheus_metrics() -> Response:
    return Response(metrics.render(), media_type=CONTENT_TYPE)
