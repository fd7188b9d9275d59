"""Starlette and FastAPI integration (async)."""

from __future__ import annotations

from .middleware import OAuthVaultMiddleware as OAuthVaultMiddleware
from .request import VaultRequest as VaultRequest
from .request import VaultRoute as VaultRoute
from .request import connection_credentials as connection_credentials
from .request import current_user as current_user
from .request import current_user_id as current_user_id
from .routes import error_response as error_response

__all__ = [
    "OAuthVaultMiddleware",
    "VaultRequest",
    "VaultRoute",
    "connection_credentials",
    "current_user",
    "current_user_id",
    "error_response",
]
