"""Flask integration (sync): ``OAuthVault`` and the request accessors.

::

    from flask import Flask
    from oauth_vault_mw.flask import OAuthVault, vault_request as request

    app = Flask(__name__)
    app.config.update(OAUTH_VAULT_SECRET_KEY=..., OAUTH_VAULT_ENCRYPTION_KEYS=..., ...)
    OAuthVault(app)

    @app.get("/profile")
    def profile() -> dict[str, str]:
        creds = request.connection_credentials("google")
        ...

Needs the ``flask`` extra: ``pip install 'oauth-vault-mw[flask]'``.
"""

from __future__ import annotations

try:
    import flask as _flask  # noqa: F401
except ImportError as _err:  # pragma: no cover - depends on the environment
    raise ImportError(
        "oauth_vault_mw.flask needs Flask: pip install 'oauth-vault-mw[flask]'"
    ) from _err

from .._sync.client import ConnectionClient as ConnectionClient
from .extension import OAuthVault as OAuthVault
from .extension import settings_from_config as settings_from_config
from .request import VaultRequest as VaultRequest
from .request import connection_client as connection_client
from .request import connection_credentials as connection_credentials
from .request import current_user as current_user
from .request import current_user_id as current_user_id
from .request import vault_request as vault_request
from .routes import error_response as error_response

__all__ = [
    "ConnectionClient",
    "OAuthVault",
    "VaultRequest",
    "connection_client",
    "connection_credentials",
    "current_user",
    "current_user_id",
    "error_response",
    "settings_from_config",
    "vault_request",
]
