"""Incremental authorization tested the way a host app tests it with ``oauth_vault_mw.testing``
(docs/testing.md): the provider narrows a grant (``decline_next_scopes``), reports the granted
scope where real providers do (``scope_in_reply``, ``scope_on_callback``), and a connect that
asks for more (``log_in(..., connect=True, scopes=...)``) or follows the 403's ``login_url``
gets it. No Node, no network."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from flask import Flask, jsonify
from starlette.applications import Starlette
from starlette.responses import JSONResponse

from oauth_vault_mw.flask import OAuthVault
from oauth_vault_mw.flask import vault_request as flask_request
from oauth_vault_mw.starlette import OAuthVaultMiddleware, VaultRequest, VaultRoute
from oauth_vault_mw.testing import OpenIDProvider, log_in
from oauth_vault_mw.testing.pytest_plugin import FlaskClientFactory, StarletteClientFactory

pytestmark = pytest.mark.filterwarnings(
    "ignore:Using `httpx` with `starlette.testclient` is deprecated"
)

DEFAULT_SCOPES = ["openid", "profile", "email", "offline_access"]
SCOPES = [*DEFAULT_SCOPES, "calendar"]


def settings(provider: OpenIDProvider) -> dict[str, Any]:
    data = provider.settings("demo")
    data["connections"][0]["scopes"] = SCOPES
    return data


async def calendar(request: VaultRequest) -> JSONResponse:
    creds = await request.connection_credentials("demo", scopes=["calendar"])
    return JSONResponse({"scope": creds.scope})


async def drive(request: VaultRequest) -> JSONResponse:
    creds = await request.connection_credentials("demo", scopes=["drive"])
    return JSONResponse({"scope": creds.scope})


def starlette_app(provider: OpenIDProvider) -> Starlette:
    app = Starlette(routes=[VaultRoute("/calendar", calendar), VaultRoute("/drive", drive)])
    app.add_middleware(
        OAuthVaultMiddleware, settings=settings(provider), http_transport=provider.transport()
    )
    return app


def follow(client: httpx.Client, provider: OpenIDProvider, login_url: str) -> httpx.Response:
    """What a browser sent to a 403's ``login_url`` does: the app's connect, the provider's
    approval, the callback."""
    start = client.get(login_url, follow_redirects=False)
    assert start.status_code == 302, start.text
    back = httpx.URL(provider.approve(start.headers["location"]))
    return client.get(f"{back.path}?{back.query.decode()}", follow_redirects=False)


def test_a_declined_scope_shows_in_me_and_a_connect_grants_it(
    oauth_vault_provider: OpenIDProvider, oauth_vault_starlette_client: StarletteClientFactory
) -> None:
    provider = oauth_vault_provider
    provider.decline_next_scopes("calendar")
    client = oauth_vault_starlette_client(starlette_app(provider), "demo")
    entry = client.get("/auth/me").json()["connections"][0]
    assert entry["declined_scopes"] == ["calendar"]
    assert "calendar" not in entry["granted_scopes"]
    refused = client.get("/calendar")
    assert refused.status_code == 403
    assert refused.json()["missing_scopes"] == ["calendar"]

    done = follow(client, provider, refused.json()["login_url"])
    assert (done.status_code, done.headers["location"]) == (303, "/calendar")
    assert client.get("/calendar").status_code == 200
    assert client.get("/auth/me").json()["connections"][0]["declined_scopes"] == []

    # asking for a scope the connection does not name, through the testing helper
    assert client.get("/drive").status_code == 403
    log_in(client, provider, "demo", connect=True, scopes=["drive"])
    assert set(client.get("/drive").json()["scope"].split()) >= {"calendar", "drive"}


@pytest.mark.parametrize(
    ("in_reply", "on_callback"), [(True, False), (False, True), (False, False), (True, True)]
)
def test_the_granted_scope_from_the_reply_the_callback_or_the_request(
    oauth_vault_provider: OpenIDProvider,
    oauth_vault_starlette_client: StarletteClientFactory,
    in_reply: bool,
    on_callback: bool,
) -> None:
    provider = oauth_vault_provider
    provider.scope_in_reply = in_reply
    provider.scope_on_callback = on_callback
    provider.decline_next_scopes("calendar")
    client = oauth_vault_starlette_client(starlette_app(provider), "demo")
    entry = client.get("/auth/me").json()["connections"][0]
    if in_reply or on_callback:  # the provider says what it granted
        assert entry["granted_scopes"] == DEFAULT_SCOPES
        assert entry["declined_scopes"] == ["calendar"]
    else:  # RFC 6749 5.1: a reply without scope granted what was asked
        assert entry["granted_scopes"] == SCOPES
        assert entry["declined_scopes"] == []


def test_a_flask_host_sees_the_same(
    oauth_vault_provider: OpenIDProvider, oauth_vault_flask_client: FlaskClientFactory
) -> None:
    provider = oauth_vault_provider
    app = Flask(__name__)
    app.config.update({f"OAUTH_VAULT_{k.upper()}": v for k, v in settings(provider).items()})
    OAuthVault(app, http_transport=provider.transport())

    @app.get("/calendar")
    def flask_calendar() -> Any:
        creds = flask_request.connection_credentials("demo", scopes=["calendar"])
        return jsonify(scope=creds.scope)

    provider.decline_next_scopes("calendar")
    client = oauth_vault_flask_client(app, "demo")
    me = client.get("/auth/me").json
    assert me is not None
    assert me["connections"][0]["declined_scopes"] == ["calendar"]
    refused = client.get("/calendar")
    assert refused.status_code == 403
    assert refused.json is not None
    login_url = refused.json["login_url"]
    start = client.get(login_url)
    back = httpx.URL(provider.approve(start.headers["Location"]))
    done = client.get(f"{back.path}?{back.query.decode()}")
    assert done.headers["Location"] == "/calendar"
    assert client.get("/calendar").status_code == 200
