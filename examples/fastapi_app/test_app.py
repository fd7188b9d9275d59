"""Testing this app the way a host app tests itself: the library's pytest fixtures give a
Python OpenID provider (no Node, no network) and a logged-in test client.

    pytest examples/fastapi_app
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

import pytest

from oauth_vault_mw.testing import DEFAULT_BASE_URL, OpenIDProvider
from oauth_vault_mw.testing.pytest_plugin import StarletteClientFactory

pytestmark = pytest.mark.filterwarnings(  # Starlette's TestClient on httpx, not httpx2
    "ignore:Using `httpx` with `starlette.testclient` is deprecated"
)


@pytest.fixture
def example(oauth_vault_provider: OpenIDProvider, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The app, configured from the environment as in production, on the test provider."""
    for key, value in oauth_vault_provider.environ("demo", base_url=DEFAULT_BASE_URL).items():
        monkeypatch.setenv(key, value)
    sys.modules.pop("examples.fastapi_app.app", None)
    return importlib.import_module("examples.fastapi_app.app")


def test_home_greets_the_person_and_the_api_refreshes(
    example: ModuleType,
    oauth_vault_provider: OpenIDProvider,
    oauth_vault_starlette_client: StarletteClientFactory,
) -> None:
    oauth_vault_provider.login_as("ada", name="Ada Lovelace")
    client = oauth_vault_starlette_client(example.app, "demo", login="ada")
    assert "Ada Lovelace" in client.get("/").text

    oauth_vault_provider.expire_access_tokens()  # the provider now answers 401 to the token
    page = client.get("/demo/profile/demo")  # the vault's client refreshes once and retries
    assert page.status_code == 200
    assert oauth_vault_provider.counts.refreshes == 1
