"""A Flask app with oauth_vault_mw: log in, connect accounts, call the provider's API.

Configured from the ``OAUTH_VAULT_*`` environment, copied into ``app.config`` (``./scripts/demo
--flask`` sets an offline one)::

    flask --app examples.flask_app.app run --host 127.0.0.1 --port 8000
    waitress-serve --threads 8 --listen 127.0.0.1:8000 examples.flask_app.app:app

Pages: ``GET /`` (who is logged in, each connection with its token's expiry and refreshes,
the buttons) and ``GET /demo/profile/<connection_id>`` (the provider's userinfo through
``request.connection_client``: a page for a browser, the provider's JSON for an API caller). The API
``GET /demo/token/<connection_id>`` uses the function form (JSON: expiry and scope). ``GET
/metrics``: the vault's metrics for Prometheus (``oauth_vault_mw.metrics``). The HTML is in
``examples/pages.py``; no page shows a token.
"""

from __future__ import annotations

import atexit
import os
import time
from collections.abc import Mapping
from typing import Any

import httpx
from flask import Flask, Response, jsonify

from examples import pages
from oauth_vault_mw import (
    ProviderUnavailable,
    Settings,
    UnknownConnection,
)
from oauth_vault_mw.flask import OAuthVault, connection_credentials, current_user
from oauth_vault_mw.flask import vault_request as request
from oauth_vault_mw.metrics import CONTENT_TYPE, PrometheusMetrics

metrics = PrometheusMetrics()  # refreshes, provider errors, lease waits... (GET /metrics)
vault_ext = OAuthVault(metrics=metrics)
http = httpx.Client(timeout=10.0)  # one pooled, thread-safe client for the app's own API calls
atexit.register(http.close)
_userinfo_urls: dict[str, str] = {}  # issuer -> its discovery's userinfo_endpoint


def settings() -> Settings:
    return vault_ext.get_vault().settings


def userinfo_url(connection_id: str) -> str:
    """The connection's ``userinfo_url``, else its OIDC discovery's ``userinfo_endpoint``."""
    conn = settings().connection(connection_id)
    if conn is None:
        raise UnknownConnection(f"no connection named {connection_id[:64]!r}")
    if conn.userinfo_url:
        return conn.userinfo_url
    issuer = str(conn.issuer)
    if issuer not in _userinfo_urls:
        try:
            resp = http.get(f"{issuer}/.well-known/openid-configuration")
            url = resp.json()["userinfo_endpoint"]
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            raise ProviderUnavailable("the provider's discovery document failed") from None
        _userinfo_urls[issuer] = str(url)
    return _userinfo_urls[issuer]


def connection_views(user_id: str | None) -> list[pages.ConnectionView]:
    """Each connection's state for the page (status, expiry, login time, refreshes), from
    ``vault.me``: what ``GET /auth/me`` shows, never a token."""
    me = vault_ext.get_vault().me(user_id) if user_id else None
    return pages.ConnectionView.all_of(me, (c.id for c in settings().connections))


def profile(connection_id: str) -> Response | tuple[str, int]:
    """The provider's userinfo, through the vault's client (it sends the current token, and
    on a 401 from the provider refreshes once and retries once): a page for a browser, the
    provider's JSON for an API caller."""
    url = userinfo_url(connection_id)
    conn = settings().connection(connection_id)
    assert conn is not None  # userinfo_url checked it
    with request.connection_client(connection_id, base_url=conn.issuer) as api:
        try:
            resp = api.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError:
            raise ProviderUnavailable("the provider's userinfo endpoint did not answer") from None
    try:
        claims: Any = resp.json()
    except ValueError:
        claims = None
    if not pages.wants_page(request.headers.get("accept"), request.headers.get("sec-fetch-mode")):
        data, status = pages.userinfo_json(resp.status_code, claims)
        answer = jsonify(data)
        answer.status_code = status
        return answer
    views = {v.connection_id: v for v in connection_views(request.vault_user_id())}
    body = pages.userinfo(
        connection_id,
        resp.status_code,
        claims if isinstance(claims, dict) else {},
        views[connection_id],
        settings().prefix,
    )
    return body, 200 if resp.is_success else 502


def token_status(connection_id: str) -> Response:
    """An API in the function form: expiry and scope as JSON, never the token."""
    creds = connection_credentials(connection_id)
    left = None if creds.expires_at is None else round(creds.expires_at - time.time())
    answer = jsonify({"connection_id": creds.connection_id, "expires_in": left,
                      "scope": creds.scope})  # fmt: skip
    answer.headers["Cache-Control"] = "no-store"
    return answer


def home() -> str:
    """Who is logged in, each connection with its token's state, and the buttons."""
    user = current_user()
    views = connection_views(user.user_id if user else None)
    flash = request.args.get("flash")
    return pages.home("Flask", user, views, settings().prefix, flash)


def prometheus_metrics() -> Response:
    """The vault's metrics, for Prometheus to scrape; in production, let only the scraper in."""
    return Response(metrics.render(), content_type=CONTENT_TYPE)


def config_from_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The ``OAUTH_VAULT_*`` variables, as Flask config keys of the same names."""
    env = os.environ if environ is None else environ
    return {key: value for key, value in env.items() if key.startswith("OAUTH_VAULT_")}


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """The app factory; ``config`` defaults to the ``OAUTH_VAULT_*`` environment."""
    app = Flask(__name__)
    app.config.update(config_from_env() if config is None else config)
    vault_ext.init_app(app)  # bad configuration fails here, at start-up
    app.add_url_rule("/", view_func=home)
    app.add_url_rule("/demo/profile/<connection_id>", view_func=profile)
    app.add_url_rule("/demo/token/<connection_id>", view_func=token_status)
    app.add_url_rule("/metrics", view_func=prometheus_metrics)
    return app


app = create_app()
