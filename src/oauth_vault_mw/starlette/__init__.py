"""Starlette and FastAPI integration (async)."""

from __future__ import annotations

from .._async.client import AsyncConnectionClient as AsyncConnectionClient
from .middleware import OAuthVaultMiddleware as OAuthVaultMiddleware
from .request import VaultRequest as VaultRequest
from .request import VaultRoute as VaultRoute
from .request import connection_client as connection_client
from .request import connection_credentials as connection_credentials
from .request import current_user as current_user
from .request import current_user_id as current_user_id
from .request import vault_of as vault_of
from .routes import error_response as error_response

__all__ = [
    "AsyncConnectionClient",
    "OAuthVaultMiddleware",
    "VaultRequest",
    "VaultRoute",
    "connection_client",
    "connection_credentials",
    "current_user",
    "current_user_id",
    "error_response",
    "vault_of",
]
