"""A Starlette app with oauth_vault_mw: log in, connect accounts, call the provider's API.

Configured from the ``OAUTH_VAULT_*`` environment (``./scripts/demo`` sets an offline one)::

    uvicorn examples.starlette_app.app:app --host 127.0.0.1 --port 8000

Pages: ``GET /`` (who is logged in, each connection with its token's expiry and refreshes,
the buttons) and ``GET /demo/profile/{connection_id}`` (the provider's userinfo through
``request.connection_client``: a page for a browser, the provider's JSON for an API caller).
APIs: ``GET /demo/token/{connection_id}`` (JSON: expiry and scope, through the plain
accessor) and ``POST /demo/jobs/{connection_id}`` (a background
job). ``GET /metrics``: the vault's metrics for Prometheus (``oauth_vault_mw.metrics``). The
HTML is in ``examples/pages.py``; no page shows a token.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from examples import pages
from oauth_vault_mw import (
    AsyncVault,
    ProviderUnavailable,
    Settings,
    UnknownConnection,
    VaultError,
)
from oauth_vault_mw.metrics import PrometheusMetrics
from oauth_vault_mw.starlette import (
    OAuthVaultMiddleware,
    VaultRequest,
    VaultRoute,
    connection_credentials,
    current_user,
    current_user_id,
)

settings = Settings.from_env()  # bad configuration fails here, at start-up
metrics = PrometheusMetrics()  # refreshes, provider errors, lease waits... (GET /metrics)
vault = AsyncVault(settings, metrics=metrics)  # the middleware's and the background jobs'
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


async def connection_views(user_id: str | None) -> list[pages.ConnectionView]:
    """Each connection's state for the page (status, expiry, login time, refreshes), from
    ``vault.me``: what ``GET /auth/me`` shows, never a token."""
    me = await vault.me(user_id) if user_id else None
    return pages.ConnectionView.all_of(me, (c.id for c in settings.connections))


async def profile(request: VaultRequest) -> Response:
    """The provider's userinfo, through the vault's client (it sends the current token, and
    on a 401 from the provider refreshes once and retries once): a page for a browser, the
    provider's JSON for an API caller."""
    connection_id: str = request.path_params["connection_id"]
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
    user_id = await request.vault_user_id()
    views = {v.connection_id: v for v in await connection_views(user_id)}
    body = pages.userinfo(
        connection_id,
        resp.status_code,
        claims if isinstance(claims, dict) else {},
        views[connection_id],
        settings.prefix,
    )
    return HTMLResponse(body, status_code=200 if resp.is_success else 502)


async def token_status(request: Request) -> Response:
    """An API with the plain accessor in a plain route: expiry and scope, never the token."""
    creds = await connection_credentials(request, request.path_params["connection_id"])
    left = None if creds.expires_at is None else round(creds.expires_at - time.time())
    return JSONResponse(
        {"connection_id": creds.connection_id, "expires_in": left, "scope": creds.scope},
        headers={"Cache-Control": "no-store"},
    )


# -- a background job: works for the user while they are away (logged out, tab closed) -------

jobs: dict[str, dict[str, Any]] = {}  # a real app keeps these in its own database/queue


async def run_job(job_id: str, connection_id: str, user_id: str, delay: float) -> None:
    """Waits, then calls the provider for the user: no request, no session, only the vault."""
    await asyncio.sleep(delay)
    try:
        url = await userinfo_url(connection_id)
        conn = settings.connection(connection_id)
        assert conn is not None
        async with await vault.client(connection_id, user_id, base_url=conn.issuer) as api:
            resp = await api.get(url, headers={"Accept": "application/json"})
        jobs[job_id] = {"state": "done", "status": resp.status_code, "result": resp.json()}
    except VaultError as exc:  # e.g. reauthentication_required: tell the user next time
        jobs[job_id] = {"state": "failed", "error": exc.error}
    except (httpx.HTTPError, ValueError):
        jobs[job_id] = {"state": "failed", "error": "provider_unavailable"}


async def start_job(request: Request) -> Response:
    """``POST /demo/jobs/{connection_id}?delay=5``: schedule a job for the current user."""
    user_id = await current_user_id(request)
    if user_id is None:
        return JSONResponse({"error": "not_authenticated"}, status_code=401)
    connection_id = request.path_params["connection_id"]
    vault.connection(connection_id)  # unknown connection: 404 JSON from the middleware
    try:
        delay = min(max(float(request.query_params.get("delay", "5")), 0.0), 600.0)
    except ValueError:
        return JSONResponse({"error": "invalid_request"}, status_code=400)
    job_id = secrets.token_urlsafe(8)
    jobs[job_id] = {"state": "scheduled"}
    task = asyncio.create_task(run_job(job_id, connection_id, user_id, delay))
    background.add(task)
    task.add_done_callback(background.discard)
    return JSONResponse({"job_id": job_id}, status_code=202)


async def job_status(request: Request) -> Response:
    job = jobs.get(request.path_params["job_id"])
    if job is None:
        return JSONResponse({"error": "not_found"}, status_code=404)
    return JSONResponse(job)


background: set[asyncio.Task[None]] = set()


async def home(request: Request) -> Response:
    """Who is logged in, each connection with its token's state, and the buttons."""
    user = await current_user(request)
    views = await connection_views(user.user_id if user else None)
    flash = request.query_params.get("flash")
    return HTMLResponse(pages.home("Starlette", user, views, settings.prefix, flash))


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    yield
    await http.aclose()


app = Starlette(
    routes=[
        Route("/", home),
        VaultRoute("/demo/profile/{connection_id}", profile),
        Route("/demo/token/{connection_id}", token_status),
        Route("/demo/jobs/{connection_id}", start_job, methods=["POST"]),
        Route("/demo/job/{job_id}", job_status),
        # for Prometheus to scrape; in production, let only the scraper reach it
        Route("/metrics", metrics.asgi_app()),
    ],
    middleware=[Middleware(OAuthVaultMiddleware, vault=vault)],
    lifespan=lifespan,
)
