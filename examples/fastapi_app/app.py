"""A FastAPI app with oauth_vault_mw: log in, connect accounts, call the provider's API.

Configured from the ``OAUTH_VAULT_*`` environment (``./scripts/demo --fastapi`` sets an offline
one)::

    uvicorn examples.fastapi_app.app:app --host 127.0.0.1 --port 8000

Both ways to reach the vault from FastAPI: ``GET /demo/profile/{connection_id}`` runs on an
``APIRouter(route_class=VaultAPIRoute)`` and calls ``request.connection_credentials``;
``GET /demo/token`` takes the first connection's credentials as a dependency.
"""

from __future__ import annotations

import contextlib
import html
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import HTMLResponse, JSONResponse

from oauth_vault_mw import Credentials, ProviderUnavailable, Settings, UnknownConnection
from oauth_vault_mw.fastapi import ConnectionCredentials, CurrentUserId, VaultAPIRoute, VaultRequest
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


# 1. A route class: handlers that take a VaultRequest get request.connection_credentials().
vault_router = APIRouter(route_class=VaultAPIRoute)


@vault_router.get("/demo/profile/{connection_id}")
async def profile(connection_id: str, request: VaultRequest) -> JSONResponse:
    """The provider's userinfo JSON; a 401 from the provider gets one forced refresh."""
    url = await userinfo_url(connection_id)
    creds = await request.connection_credentials(connection_id)
    resp = await call_userinfo(url, creds)
    if resp.status_code == 401:  # revoked or expired early: ask the vault for another token
        creds = await request.connection_credentials(connection_id, force_refresh=True)
        resp = await call_userinfo(url, creds)
    try:
        body: Any = resp.json()
    except ValueError:
        body = {"error": "bad_provider_response", "status": resp.status_code}
    return JSONResponse(body, status_code=resp.status_code if resp.is_success else 502)


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


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>oauth_vault_mw demo</title>
<style>body{{font-family:sans-serif;max-width:44rem;margin:2rem auto}}
li{{margin:.4rem 0}}button{{margin-left:.3rem}}</style></head>
<body><h1>oauth_vault_mw demo (FastAPI)</h1>
<p>{status}</p><ul>{items}</ul>
<p><a href="{prefix}/me">{prefix}/me</a> (your connections, as JSON){extra}</p>
<script>
async function send(method, url) {{
  const r = await fetch(url, {{method, credentials: "same-origin"}});
  if (!r.ok) alert(method + " " + url + ": " + r.status + " " + await r.text());
  location.reload();
}}
document.querySelectorAll("button[data-url]").forEach(b =>
  b.addEventListener("click", () => send(b.dataset.method, b.dataset.url)));
</script></body></html>
"""


@app.get("/", response_class=HTMLResponse)
async def home(user_id: Annotated[str | None, Depends(CurrentUserId)]) -> HTMLResponse:
    """Login state and buttons; every dynamic value goes through ``html.escape``."""
    e = html.escape
    prefix = e(settings.prefix)
    items = []
    for conn in settings.connections:
        cid = e(conn.id)
        if user_id is None:
            links = f'<a href="{prefix}/login/{cid}?return_to=/">Log in with {cid}</a>'
        else:
            links = (
                f"<b>{cid}</b>: "
                f'<a href="/demo/profile/{cid}">profile</a> · '
                f'<a href="{prefix}/connect/{cid}?return_to=/">connect</a>'
                f'<button data-method="DELETE" data-url="{prefix}/connections/{cid}">'
                "disconnect</button>"
            )
        items.append(f"<li>{links}</li>")
    if user_id is None:
        status, extra = "You are not logged in.", ""
    else:
        status = f"Logged in as user <code>{e(user_id)}</code>."
        extra = (
            f' · <a href="/demo/token">token expiry ({e(FIRST)})</a>'
            f' <button data-method="POST" data-url="{prefix}/logout">log out</button>'
        )
    page = PAGE.format(status=status, items="".join(items), prefix=prefix, extra=extra)
    return HTMLResponse(page)
