"""``examples/flask_app``: configured from the environment, its pages against the provider."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest

from tests.support.oidc_provider import REPO_ROOT, DevProvider

from .conftest import config_for, harness_for

pytestmark = pytest.mark.integration


def _environ(provider: DevProvider) -> dict[str, str]:
    """The example's environment, as ``./scripts/demo`` would set it."""
    config = config_for(provider, connections=[{
        "id": "demo", "issuer": provider.issuer, "client_id": "demo",
        "client_secret": "demo-secret", "scopes": ["openid", "profile", "email", "offline_access"],
    }])  # fmt: skip
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}


@pytest.fixture
def example(provider: DevProvider, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    for name, value in _environ(provider).items():
        monkeypatch.setenv(name, value)
    module = importlib.import_module("examples.flask_app.app")
    module = importlib.reload(module)  # its module-level app reads this environment
    yield module
    module.app.extensions["oauth_vault"].close()


def test_pages(example: ModuleType, provider: DevProvider, unique_user: Callable[[], str]) -> None:
    """The Flask example's own views on the real provider: the home page names the person,
    the userinfo (JSON, or a page for a browser) goes through the vault's client, the JSON
    API shows no token, and a
    grant revoked at the provider ends in 409 with a login_url (the pages' walk in a browser
    is tests/examples/test_pages.py)."""
    h = harness_for(example.app, provider)
    with h.client, h.browser:
        home = h.client.get("/")
        assert home.status_code == 200
        assert "/auth/login/demo?return_to=" in home.text
        login = unique_user()
        assert h.login(user=login).status_code in (302, 303)
        home = h.client.get("/")
        assert login[0].upper() + login[1:] in home.text  # the profile's name

        profile = h.client.get("/demo/profile/demo")  # an API caller: the provider's JSON
        assert profile.status_code == 200, profile.text
        assert profile.json()["sub"] == login
        page = h.client.get("/demo/profile/demo", headers={"Accept": "text/html"})
        assert "<table" in page.text  # a browser: the userinfo as a page
        assert login in page.text  # the userinfo's sub and preferred_username
        token = h.client.get("/demo/token/demo")
        body: dict[str, Any] = token.json()
        assert body["connection_id"] == "demo"
        assert 0 < body["expires_in"] <= 4
        assert "access_token" not in body

        # Revoked at the provider: userinfo says 401, the forced refresh is refused: 409.
        provider.revoke_grants(login)
        again = h.client.get("/demo/profile/demo")
        assert again.status_code == 409
        assert again.json()["login_url"] == "http://127.0.0.1:8000/auth/login/demo"
        assert h.client.get("/demo/profile/nope").json()["error"] == "unknown_connection"


def test_flask_cli_loads_the_app(provider: DevProvider) -> None:
    """``flask --app examples.flask_app.app run`` finds the app (``routes`` loads it alike)."""
    env = {"PATH": "/usr/bin:/bin", **_environ(provider)}
    done = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "examples.flask_app.app", "routes"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for rule in ("/auth/login/<connection_id>", "/auth/callback/<connection_id>",
                 "/demo/profile/<connection_id>", "/demo/token/<connection_id>"):  # fmt: skip
        assert rule in done.stdout


def test_bad_environment_stops_the_cli_with_one_line(provider: DevProvider) -> None:
    env = {"PATH": "/usr/bin:/bin", **_environ(provider), "OAUTH_VAULT_SECRET_KEY": "short"}
    done = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "examples.flask_app.app", "routes"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert "OAUTH_VAULT_SECRET_KEY: required, at least 32 characters" in done.stderr
