"""Test your app's logins and provider calls without a real provider: a pure-Python OpenID
provider, and a pytest plugin (loaded automatically once the package is installed).

::

    def test_profile(oauth_vault_provider, oauth_vault_starlette_client):
        app = create_app(
            settings=oauth_vault_provider.settings("demo"),
            http_transport=oauth_vault_provider.transport(),
        )
        client = oauth_vault_starlette_client(app, "demo", login="alice")
        assert client.get("/profile").status_code == 200

See ``docs/testing.md``. :class:`OpenIDProvider` works without pytest too.
"""

from __future__ import annotations

from ._config import DEFAULT_BASE_URL as DEFAULT_BASE_URL
from ._http import Reply as Reply
from ._login import log_in as log_in
from ._login import log_in_async as log_in_async
from ._login import log_in_flask as log_in_flask
from ._provider import DEFAULT_ISSUER as DEFAULT_ISSUER
from ._provider import LoginFailed as LoginFailed
from ._provider import OpenIDProvider as OpenIDProvider
from ._serving import ProviderTransport as ProviderTransport
from ._state import ProviderCounts as ProviderCounts
from ._state import User as User

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_ISSUER",
    "LoginFailed",
    "OpenIDProvider",
    "ProviderCounts",
    "ProviderTransport",
    "Reply",
    "User",
    "log_in",
    "log_in_async",
    "log_in_flask",
]
