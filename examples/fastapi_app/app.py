"""A FastAPI app with oauth_vault_mw: log in, connect accounts, call the provider's API.

Configured from the ``OAUTH_VAULT_*`` environment (``./scripts/demo --fastapi`` sets an offline
one)::

    uvicorn examples.fastapi_app.app:app --host 127.0.0.1 --port 8000

Pages: ``GET /`` (who is logged in, each connection with its token's expiry and refreshes,
the buttons) and ``GET /demo/profile/{connection_id}`` (the provider's userinfo, on an
``APIRouter(route_class=VaultAPIRoute)``: ``request.connection_credentials``). The API
``GET /demo/token`` takes the first connection's credentials as a dependency. The HTML is in
``examples/pages.py``; no page shows a token.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse

from examples import pages
from oauth_vault_mw import (
    AsyncVault,
    CredentialKey,
    Credentials,
    ProviderUnavailable,
    Settings,
    UnknownConnection,
)
from oauth_vault_mw.fastapi import ConnectionCredentials, VaultAPIRoute, VaultRequest
from oauth_vault_mw.starlette import OAuthVaultMiddleware

settings = Settings.from_env()  # bad configuration fails here, at start-up
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


async def call_userinfo(url: str, creds: Credentials) -> httpx.Response:
    headers = {"Authorization": creds.authorization_header, "Accept": "application/json"}
    try:
        return await http.get(url, headers=headers)
    except httpx.HTTPError:
        raise ProviderUnavailable("the provider's userinfo endpoint did not answer") from None


def vault_of(request: Request) -> AsyncVault:
    """The middleware's vault: it is built at start-up, where a bad storage URL stops the
    server with one line (built here, at import, it would fail each uvicorn worker's import
    instead). Read through a private module until the library exports an accessor."""
    from oauth_vault_mw.starlette._context import context_of

    return context_of(request.scope).vault


async def connection_view(
    request: Request, user_id: str, connection_id: str
) -> pages.ConnectionView:
    """The state of the user's credential for the page: status, expiry, login time, refresh
    count; read from the vault's sealed record (the page never shows the tokens)."""
    vault = vault_of(request)
    record = await vault.storage.get_credential(CredentialKey(connection_id, user_id))
    tokens = None if record is None else vault.opened.open(record)
    return pages.ConnectionView.of(connection_id, tokens)


# 1. A route class: handlers that take a VaultRequest get request.connection_credentials().
vault_router = APIRouter(route_class=VaultAPIRoute)


@vault_router.get("/", response_class=HTMLResponse)
async def home(request: VaultRequest, flash: str | None = None) -> HTMLResponse:
    """Who is logged in, each connection with its token's state, and the buttons."""
    user = await request.current_user()
    views = [
        await connection_view(request, user.user_id, c.id) if user else pages.ConnectionView(c.id)
        for c in settings.connections
    ]
    return HTMLResponse(pages.home("FastAPI", user, views, settings.prefix, flash))


@vault_router.get("/demo/profile/{connection_id}", response_class=HTMLResponse)
async def profile(connection_id: str, request: VaultRequest) -> HTMLResponse:
    """The provider's userinfo as a page; a 401 from the provider gets one forced refresh."""
    url = await userinfo_url(connection_id)
    creds = await request.connection_credentials(connection_id)  # refreshed here when due
    resp = await call_userinfo(url, creds)
    if resp.status_code == 401:  # revoked or expired early: ask the vault for another token
        creds = await request.connection_credentials(connection_id, force_refresh=True)
        resp = await call_userinfo(url, creds)
    try:
        claims: Any = resp.json()
    except ValueError:
        claims = {}
    view = await connection_view(request, creds.user_id, connection_id)
    body = pages.userinfo(
        connection_id,
        resp.status_code,
        claims if isinstance(claims, dict) else {},
        view,
        settings.prefix,
    )
    return HTMLResponse(body, status_code=200 if resp.is_success else 502)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    await http.aclose()


app = FastAPI(title="oauth_vault_mw demo", lifespan=lifespan)
app.add_middleware(OAuthVaultMiddleware, settings=settings)
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
