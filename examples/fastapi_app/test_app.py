"""Testing this app the way a host app tests itself: the library's pytest fixtures give a
Python OpenID provider (no Node, no network) and a logged-in test client.

    pytest examples/fastapi_app
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import pytest

from oauth_vault_mw.testing import OpenIDProvider
from oauth_vault_mw.testing.pytest_plugin import StarletteClientFactory

pytestmark = pytest.mark.filterwarnings(  # Starlette's TestClient on httpx, not httpx2
    "ignore:Using `httpx` with `starlette.testclient` is deprecated"
)


def test_home_greets_the_person_and_the_api_refreshes(
    load_example: Callable[[str], ModuleType],
    oauth_vault_provider: OpenIDProvider,
    oauth_vault_starlette_client: StarletteClientFactory,
) -> None:
    app = load_example("examples.fastapi_app.app").app
    oauth_vault_provider.login_as("ada", name="Ada Lovelace")
    client = oauth_vault_starlette_client(app, "demo", login="ada")
    assert "Ada Lovelace" in client.get("/").text

    oauth_vault_provider.expire_access_tokens()  # the provider now answers 401 to the token
    page = client.get("/demo/profile/demo")  # the vault's client refreshes once and retries
    assert page.status_code == 200
    assert oauth_vault_provider.counts.refreshes == 1


def test_metrics_count_the_refresh_and_show_no_token(
    load_example: Callable[[str], ModuleType],
    oauth_vault_provider: OpenIDProvider,
    oauth_vault_starlette_client: StarletteClientFactory,
) -> None:
    app = load_example("examples.fastapi_app.app").app
    client = oauth_vault_starlette_client(app, "demo", login="ada")
    seen = {client.get("/auth/me").json()["user_id"]}
    seen.add(client.get("/auth/connections/demo/credentials").json()["access_token"])
    oauth_vault_provider.expire_access_tokens()
    assert client.get("/demo/profile/demo").status_code == 200  # one refresh
    seen.add(client.get("/auth/connections/demo/credentials").json()["access_token"])

    scraped = client.get("/metrics")
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert 'oauth_vault_refreshes_total{connection="demo",outcome="refreshed"} 1.0' in scraped.text
    assert not [secret for secret in seen if secret in scraped.text]
