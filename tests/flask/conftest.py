"""Fixtures for the Flask shell against the real development OpenID provider.

The app is driven in-process through ``httpx.WSGITransport``; a separate ``httpx.Client``
plays the browser at the provider. ``tests/flask/test_threads.py`` serves the app with a
real threaded WSGI server on ``server_port``, also registered at the provider. The provider,
``server_port`` and ``unique_user`` are the suite's (``tests/support/suite.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask, jsonify

from oauth_vault_mw import Vault
from oauth_vault_mw.flask import OAuthVault, connection_credentials
from oauth_vault_mw.flask import vault_request as request
from tests.support.oidc_provider import DevProvider, callback_path, complete_login
from tests.support.suite import BASE, connection_settings, new_key


def config_for(provider: DevProvider, base: str = BASE, **overrides: Any) -> dict[str, Any]:
    """Flask config with the ``OAUTH_VAULT_*`` keys (Python values, as an app would set)."""
    config: dict[str, Any] = {
        "OAUTH_VAULT_SECRET_KEY": "s" * 48,
        "OAUTH_VAULT_ENCRYPTION_KEYS": new_key(),
        "OAUTH_VAULT_BASE_URL": base,
        "OAUTH_VAULT_STORAGE_URL": "memory://",
        "OAUTH_VAULT_PROVIDER_TIMEOUT": 2,
        "OAUTH_VAULT_CONNECTIONS": connection_settings(provider),
    }
    config.update({f"OAUTH_VAULT_{k.upper()}": v for k, v in overrides.items()})
    return config


def make_app(config: dict[str, Any], ext: OAuthVault | None = None, **options: Any) -> Flask:
    """A host app with the extension and two views, one per way of asking for a token."""
    app = Flask(__name__)
    app.config.update(config)
    (ext or OAuthVault()).init_app(app, **options)

    @app.get("/profile/<cid>")
    def profile(cid: str) -> Any:
        creds = request.connection_credentials(cid)
        return jsonify(access_token=creds.access_token, expires_at=creds.expires_at)

    @app.get("/fn/<cid>")
    def by_function(cid: str) -> Any:
        creds = connection_credentials(cid)
        return jsonify(access_token=creds.access_token, user_id=request.vault_user_id())

    return app


@dataclass
class Harness:
    """A Flask app with the extension, an httpx client on it and a 'browser' for the provider."""

    app: Flask
    vault: Vault
    client: httpx.Client
    browser: httpx.Client
    provider: DevProvider
    base: str = BASE

    def login(
        self, connection_id: str = "demo", user: str = "alice", *, path: str = "login",
        return_to: str = "/",
    ) -> httpx.Response:  # fmt: skip
        """Run a whole login; returns the app's answer to the callback."""
        start = self.client.get(f"/auth/{path}/{connection_id}?return_to={return_to}")
        assert start.status_code == 302, start.text
        return self.client.get(self.authorize(start.headers["location"], user))

    def authorize(self, authorize_url: str, user: str) -> str:
        """Log in at the provider; return the callback URL (relative to the app)."""
        return callback_path(complete_login(self.browser, authorize_url, login=user), self.base)

    def user_id(self) -> str:
        me = self.client.get("/auth/me")
        assert me.status_code == 200, me.text
        return str(me.json()["user_id"])


def harness_for(app: Flask, provider: DevProvider, base: str = BASE) -> Harness:
    vault = app.extensions["oauth_vault"]
    assert isinstance(vault, Vault)
    client = httpx.Client(transport=httpx.WSGITransport(app=app), base_url=base)
    return Harness(app, vault, client, httpx.Client(), provider, base)


@pytest.fixture
def storage_url() -> str:
    """Memory; a module overrides it with ``both_storages`` to run on SQLite too."""
    return "memory://"


def both_storages(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Body of a ``storage_url`` fixture parametrized over memory and SQLite."""
    return "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'vault.db'}"


@pytest.fixture
def harness(provider: DevProvider, storage_url: str) -> Iterator[Harness]:
    app = make_app(config_for(provider, storage_url=storage_url))
    h = harness_for(app, provider)
    with h.client, h.browser:
        yield h
    OAuthVault().get_service(app).close()  # its audit trail first, then the vault
    h.vault.close()
