"""A Flask app with oauth_vault_mw: log in, connect accounts, call the provider's API.

Configured from the ``OAUTH_VAULT_*`` environment, copied into ``app.config`` (``./scripts/demo
--flask`` sets an offline one)::

    flask --app examples.flask_app.app run --host 127.0.0.1 --port 8000
    waitress-serve --threads 8 --listen 127.0.0.1:8000 examples.flask_app.app:app

Pages: ``GET /`` (login state and buttons), ``GET /demo/profile/<connection_id>`` (the
provider's userinfo, called with the vault's access token through
``request.connection_credentials``) and ``GET /demo/token/<connection_id>`` (when the current
token expires, through the function form; never the token itself).
"""

from __future__ import annotations

import atexit
import html
import os
import time
from collections.abc import Mapping
from typing import Any

import httpx
from flask import Flask, Response, jsonify

from oauth_vault_mw import Credentials, ProviderUnavailable, Settings, UnknownConnection
from oauth_vault_mw.flask import OAuthVault, connection_credentials, current_user_id
from oauth_vault_mw.flask import vault_request as request

vault_ext = OAuthVault()
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


def call_userinfo(url: str, creds: Credentials) -> httpx.Response:
    headers = {"Authorization": creds.authorization_header, "Accept": "application/json"}
    try:
        return http.get(url, headers=headers)
    except httpx.HTTPError:
        raise ProviderUnavailable("the provider's userinfo endpoint did not answer") from None


def profile(connection_id: str) -> Response:
    """The provider's userinfo JSON; a 401 from the provider gets one forced refresh."""
    url = userinfo_url(connection_id)
    creds = request.connection_credentials(connection_id)
    resp = call_userinfo(url, creds)
    if resp.status_code == 401:  # revoked or expired early: ask the vault for another token
        creds = request.connection_credentials(connection_id, force_refresh=True)
        resp = call_userinfo(url, creds)
    try:
        body: Any = resp.json()
    except ValueError:
        body = {"error": "bad_provider_response", "status": resp.status_code}
    answer = jsonify(body)
    answer.status_code = resp.status_code if resp.is_success else 502
    return answer


def token_status(connection_id: str) -> Response:
    """The function form in a plain view: expiry and scope, never the token."""
    creds = connection_credentials(connection_id)
    left = None if creds.expires_at is None else round(creds.expires_at - time.time())
    answer = jsonify({"connection_id": creds.connection_id, "expires_in": left,
                      "scope": creds.scope})  # fmt: skip
    answer.headers["Cache-Control"] = "no-store"
    return answer


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
    prefix = e(settings().prefix)
    items = []
    for conn in settings().connections:
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


def home() -> str:
    return render_home("Flask", current_user_id())


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
    return app


app = create_app()
