"""The example apps' pages, against the testing provider (no Node): the name, each connection
with its token's state, the userinfo page, a refresh counted, flash messages, disconnect and
logout; everything escaped, no token shown. The same walk on all three examples."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest

from oauth_vault_mw.testing import DEFAULT_BASE_URL, OpenIDProvider
from oauth_vault_mw.testing.pytest_plugin import FlaskClientFactory, StarletteClientFactory

NAME = '<script>alert("x")</script> Eve'
ESCAPED = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; Eve"
pytestmark = pytest.mark.filterwarnings(  # Starlette's TestClient on httpx, not httpx2
    "ignore:Using `httpx` with `starlette.testclient` is deprecated"
)
EXAMPLES = ["examples.starlette_app.app", "examples.fastapi_app.app", "examples.flask_app.app"]


class Browser:
    """A logged-in test client of either kind, as (status, text) pairs."""

    def __init__(self, client: Any, flask: bool) -> None:
        self.client, self.flask = client, flask

    def get(self, path: str) -> tuple[int, str]:
        resp = self.client.get(path, headers={"Accept": "text/html"})  # as a browser asks
        text = resp.get_data(as_text=True) if self.flask else resp.text
        return resp.status_code, text

    def send(self, method: str, path: str) -> tuple[int, Any]:
        headers = {"Origin": DEFAULT_BASE_URL}
        if self.flask:
            resp = self.client.open(path, method=method, headers=headers)
        else:
            resp = self.client.request(method, path, headers=headers)
        return resp.status_code, resp.get_json() if self.flask else resp.json()


@pytest.fixture
def example(
    oauth_vault_provider: OpenIDProvider, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str], ModuleType]]:
    import importlib
    import sys

    environ = oauth_vault_provider.environ("demo", "other", base_url=DEFAULT_BASE_URL)
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    loaded: list[str] = []

    def load(name: str) -> ModuleType:
        sys.modules.pop(name, None)
        loaded.append(name)
        return importlib.import_module(name)

    yield load
    for name in loaded:
        module = sys.modules.pop(name, None)
        if module is not None and name.endswith("flask_app.app"):
            module.app.extensions["oauth_vault"].close()


@pytest.mark.parametrize("name", EXAMPLES)
def test_pages_walk(
    name: str,
    example: Callable[[str], ModuleType],
    oauth_vault_provider: OpenIDProvider,
    oauth_vault_starlette_client: StarletteClientFactory,
    oauth_vault_flask_client: FlaskClientFactory,
) -> None:
    provider = oauth_vault_provider
    app = example(name).app
    flask = name.endswith("flask_app.app")
    anonymous = Browser(
        oauth_vault_flask_client(app) if flask else oauth_vault_starlette_client(app), flask
    )
    status, home = anonymous.get("/")
    assert status == 200
    assert "You are not logged in." in home
    assert 'href="/auth/login/demo?return_to=%2F%3Fflash%3Dlogged_in"' in home

    provider.login_as("eve", name=NAME, email="eve@example.test")
    factory: Any = oauth_vault_flask_client if flask else oauth_vault_starlette_client
    browser = Browser(factory(app, "demo", login="eve", return_to="/?flash=logged_in"), flask)
    _, token = browser.send("GET", "/auth/connections/demo/credentials")
    access_token = token["access_token"]

    status, home = browser.get("/?flash=logged_in")
    assert status == 200
    assert "You are logged in." in home
    assert f'<strong id="user-name">{ESCAPED}</strong>' in home
    assert "<script>alert" not in home
    assert '<tr id="connection-demo">' in home
    assert 'class="status">active<' in home
    assert 'data-count="0">not yet' in home
    assert "data-expires=" in home
    assert '<tr id="connection-other"><th>other</th><td colspan="4" class="muted">' in home
    assert access_token not in home

    # An early expiry at the provider: userinfo answers 401, the page forces one refresh.
    provider.expire_access_tokens()
    status, info = browser.get("/demo/profile/demo")
    assert status == 200, info
    assert '<table id="userinfo">' in info
    assert f"<tr><th>name</th><td>{ESCAPED}</td></tr>" in info
    assert 'data-count="1">1 time, last at' in info
    assert provider.counts.refreshes == 1
    _, token = browser.send("GET", "/auth/connections/demo/credentials")
    assert token["access_token"] not in info
    assert access_token not in info

    status, _ = browser.send("DELETE", "/auth/connections/demo")
    assert status == 200
    _, home = browser.get("/?flash=disconnected")
    assert "Disconnected: the grant was revoked" in home
    assert '<tr id="connection-demo"><th>demo</th><td colspan="4" class="muted">' in home

    status, _ = browser.send("POST", "/auth/logout")
    assert status == 200
    _, home = browser.get("/?flash=logged_out")
    assert "You are logged out." in home
    assert "You are not logged in." in home
    _, home = browser.get("/?flash=%3Cb%3Eowned%3C/b%3E")
    assert "owned" not in home  # unknown flash keys are not echoed
