"""The three examples take any preset through ``OAUTH_VAULT_CONNECTIONS``: a Slack-like and a
Salesforce-like connection configure, start, and send the browser to the provider's own URL
with the preset's scopes and params (no discovery: both speak plain OAuth 2.0)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.examples.loading import examples_configured
from tests.support.asgi import lifespan
from tests.support.suite import BASE

CONNECTIONS: list[dict[str, Any]] = [
    {"id": "slack", "preset": "slack", "client_id": "123.456", "client_secret": "s" * 32},
    {
        "id": "salesforce",
        "preset": "salesforce",
        "client_id": "3MVG9-consumer-key",
        "client_secret": "t" * 32,
        "params": {"domain": "acme.my.salesforce.com"},
    },
]

EXPECTED = {
    "slack": ("https", "slack.com", "/oauth/v2/authorize"),
    "salesforce": ("https", "acme.my.salesforce.com", "/services/oauth2/authorize"),
}


@pytest.fixture
def load_example(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with examples_configured(monkeypatch, CONNECTIONS) as load:
        yield load


def check_redirect(connection_id: str, location: str) -> None:
    url = urlsplit(location)
    assert (url.scheme, url.hostname, url.path) == EXPECTED[connection_id]
    query = parse_qs(url.query)
    assert query["redirect_uri"] == [f"{BASE}/auth/callback/{connection_id}"]
    assert query["code_challenge_method"] == ["S256"]
    if connection_id == "slack":
        assert query["user_scope"] == ["users:read"]  # the preset's user token
    else:
        assert "refresh_token" in query["scope"][0].split(" ")


@pytest.mark.parametrize("name", ["examples.starlette_app.app", "examples.fastapi_app.app"])
async def test_async_examples_start_a_login_with_any_preset(name: str, load_example: Any) -> None:
    app: Any = load_example(name).app
    transport = httpx.ASGITransport(app=app)
    async with lifespan(app), httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        for connection_id in EXPECTED:
            start = await client.get(f"/auth/login/{connection_id}?return_to=/")
            assert start.status_code == 302, start.text
            check_redirect(connection_id, start.headers["location"])


def test_flask_example_starts_a_login_with_any_preset(load_example: Any) -> None:
    app: Any = load_example("examples.flask_app.app").app
    client = app.test_client()
    for connection_id in EXPECTED:
        start = client.get(f"/auth/login/{connection_id}?return_to=/")
        assert start.status_code == 302, start.get_data(as_text=True)
        check_redirect(connection_id, start.headers["Location"])
