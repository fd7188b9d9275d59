"""A Flask host app tested through the pytest plugin's fixtures: no Node, no network (the
vault reaches the provider through its in-process transport)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from flask import Flask, jsonify

from oauth_vault_mw import Settings, Vault
from oauth_vault_mw.flask import OAuthVault
from oauth_vault_mw.flask import vault_request as request
from oauth_vault_mw.testing import LoginFailed, OpenIDProvider
from oauth_vault_mw.testing.pytest_plugin import FlaskClientFactory


class Clock:
    """The one clock of the vault and the provider: a token expires without sleeping."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def host_app(provider: OpenIDProvider, vault: Vault | None = None) -> Flask:
    """The host app: its views, the extension, the vault pointed at ``provider``."""
    app = Flask(__name__)
    if vault is not None:
        OAuthVault(app, vault=vault)
    else:
        app.config.update(provider.flask_config("demo"))
        OAuthVault(app, http_transport=provider.transport())

    @app.get("/profile")
    def profile() -> Any:
        force = request.args.get("force") == "1"
        creds = request.connection_credentials("demo", force_refresh=force)
        return jsonify(access_token=creds.access_token, expires_at=creds.expires_at)

    @app.get("/userinfo")
    def userinfo() -> Any:
        creds = request.connection_credentials("demo")
        headers = {"Authorization": creds.authorization_header}
        reply = httpx.get(f"{provider.issuer}/userinfo", headers=headers)
        return jsonify(reply.json()), reply.status_code

    return app


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def vault(oauth_vault_provider: OpenIDProvider, clock: Clock) -> Iterator[Vault]:
    oauth_vault_provider.clock = clock
    settings = Settings.from_mapping(oauth_vault_provider.settings("demo"))
    vault = Vault(settings, http_transport=oauth_vault_provider.transport(), clock=clock)
    yield vault
    vault.close()


def test_login_then_credentials_then_one_refresh_at_expiry(
    oauth_vault_provider: OpenIDProvider,
    oauth_vault_flask_client: FlaskClientFactory,
    vault: Vault,
    clock: Clock,
) -> None:
    provider = oauth_vault_provider
    provider.access_token_ttl = 300
    provider.login_as("alice", name="Alice Example")
    client = oauth_vault_flask_client(host_app(provider, vault), "demo")

    me = client.get("/auth/me").get_json()
    assert [c["connection_id"] for c in me["connections"]] == ["demo"]
    first = client.get("/profile").get_json()
    assert client.get("/profile").get_json() == first
    assert (provider.counts.code_exchanges, provider.counts.refreshes) == (1, 0)

    clock.now += 301
    answers = [client.get("/profile").get_json() for _ in range(5)]
    tokens = {a["access_token"] for a in answers}
    assert len(tokens) == 1
    assert first["access_token"] not in tokens
    assert provider.counts.refreshes == 1
    assert provider.counts.refusals == {}


def test_a_refused_refresh_asks_the_user_to_log_in_again(
    oauth_vault_provider: OpenIDProvider, oauth_vault_flask_client: FlaskClientFactory
) -> None:
    provider = oauth_vault_provider
    client = oauth_vault_flask_client(host_app(provider), "demo", login="bob")
    assert client.get("/profile?force=1").status_code == 200
    provider.refuse_next_refresh()
    refused = client.get("/profile?force=1")
    assert refused.status_code == 409, refused.get_data(as_text=True)
    assert refused.get_json()["error"] == "reauthentication_required"
    assert provider.counts.refusals == {"invalid_grant": 1}
    assert provider.counts.refreshes == 1


def test_a_view_that_calls_the_provider_itself_reaches_the_served_provider(
    oauth_vault_provider: OpenIDProvider, oauth_vault_flask_client: FlaskClientFactory
) -> None:
    oauth_vault_provider.login_as("carol", email="carol@corp.test")
    client = oauth_vault_flask_client(host_app(oauth_vault_provider), "demo")
    reply = client.get("/userinfo")
    assert reply.status_code == 200, reply.get_data(as_text=True)
    assert reply.get_json()["email"] == "carol@corp.test"


def test_a_refused_login(
    oauth_vault_provider: OpenIDProvider, oauth_vault_flask_client: FlaskClientFactory
) -> None:
    oauth_vault_provider.refuse_next_login()
    with pytest.raises(LoginFailed, match="callback answered"):
        oauth_vault_flask_client(host_app(oauth_vault_provider), "demo")
    assert oauth_vault_provider.counts.refusals == {"access_denied": 1}


def test_two_users_two_clients(
    oauth_vault_provider: OpenIDProvider, oauth_vault_flask_client: FlaskClientFactory
) -> None:
    app = host_app(oauth_vault_provider)
    alice = oauth_vault_flask_client(app, "demo", login="alice")
    bob = oauth_vault_flask_client(app, "demo", login="bob")
    ids = {c.get("/auth/me").get_json()["user_id"] for c in (alice, bob)}
    assert len(ids) == 2
