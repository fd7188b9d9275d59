"""A Starlette app with oauth_vault_mw: log in, connect accounts, call the provider's API.

Configured from the ``OAUTH_VAULT_*`` environment (``./scripts/demo`` sets an offline one)::

    uvicorn examples.starlette_app.app:app --host 127.0.0.1 --port 8000

Pages: ``GET /`` (login state and buttons), ``GET /demo/profile/{connection_id}`` (the
provider's userinfo, called with the vault's access token) and ``GET /demo/token/{connection_id}``
(when the current token expires; never the token itself).
"""

from __future__ import annotations

import contextlib
import html
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from oauth_vault_mw import Credentials, ProviderUnavailable, Settings, UnknownConnection
from oauth_vault_mw.starlette import (
    OAuthVaultMiddleware,
    VaultRequest,
    VaultRoute,
    connection_credentials,
    current_user_id,
)

settings = Settings.from_env()  # bad configuration fails here, at start-up
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


async def profile(request: VaultRequest) -> Response:
    """The provider's userinfo JSON; a 401 from the provider gets one forced refresh."""
    connection_id: str = request.path_params["connection_id"]
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


async def token_status(request: Request) -> Response:
    """The plain accessor in a plain route: expiry and scope, never the token."""
    creds = await connection_credentials(request, request.path_params["connection_id"])
    left = None if creds.expires_at is None else round(creds.expires_at - time.time())
    return JSONResponse(
        {"connection_id": creds.connection_id, "expires_in": left, "scope": creds.scope},
        headers={"Cache-Control": "no-store"},
    )


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>oauth_vault_mw demo</title>
<style>body{{font-family:sans-serif;max-width:44rem;margin:2rem auto}}
li{{margin:.4rem 0}}button{{margin-left:.3rem}}</style></head>
<body><h1>oauth_vault_mw demo ({framework})</h1>
<p>{status}</p><ul>{items}</ul>
<p><a href="{prefix}/me">{prefix}/me</a> (your connections, as JSON){logout}</p>
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


def render_home(framework: str, user_id: str | None) -> str:
    """The home page; every dynamic value goes through ``html.escape``."""
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
                f'<a href="/demo/token/{cid}">token expiry</a> · '
                f'<a href="{prefix}/connect/{cid}?return_to=/">connect</a>'
                f'<button data-method="DELETE" data-url="{prefix}/connections/{cid}">'
                "disconnect</button>"
            )
        items.append(f"<li>{links}</li>")
    if user_id is None:
        status, logout = "You are not logged in.", ""
    else:
        status = f"Logged in as user <code>{e(user_id)}</code>."
        logout = f' <button data-method="POST" data-url="{prefix}/logout">log out</button>'
    return PAGE.format(
        framework=e(framework), status=status, items="".join(items), prefix=prefix, logout=logout
    )


async def home(request: Request) -> Response:
    return HTMLResponse(render_home("Starlette", await current_user_id(request)))


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    yield
    await http.aclose()


app = Starlette(
    routes=[
        Route("/", home),
        VaultRoute("/demo/profile/{connection_id}", profile),
        Route("/demo/token/{connection_id}", token_status),
    ],
    middleware=[Middleware(OAuthVaultMiddleware, settings=settings)],
    lifespan=lifespan,
)
