"""oauth_vault_mw: federated login and an encrypted provider-token vault for Python web apps.

Starlette/FastAPI: :class:`oauth_vault_mw.starlette.OAuthVaultMiddleware`.
Background jobs: :class:`AsyncVault`. Settings: :class:`Settings`.
"""

from __future__ import annotations

from ._exceptions import BadRequest as BadRequest
from ._exceptions import CallbackError as CallbackError
from ._exceptions import ConfigurationError as ConfigurationError
from ._exceptions import CredentialNotFound as CredentialNotFound
from ._exceptions import CredentialUnreadable as CredentialUnreadable
from ._exceptions import ForbiddenOrigin as ForbiddenOrigin
from ._exceptions import IdentityConflict as IdentityConflict
from ._exceptions import InvalidState as InvalidState
from ._exceptions import MiddlewareNotInstalled as MiddlewareNotInstalled
from ._exceptions import NotAuthenticated as NotAuthenticated
from ._exceptions import PermissionDenied as PermissionDenied
from ._exceptions import ProviderUnavailable as ProviderUnavailable
from ._exceptions import ReauthenticationRequired as ReauthenticationRequired
from ._exceptions import StorageUnavailable as StorageUnavailable
from ._exceptions import TokenExchangeError as TokenExchangeError
from ._exceptions import UnknownConnection as UnknownConnection
from ._exceptions import VaultError as VaultError
from ._service import AsyncAuditTrail as AsyncAuditTrail
from ._service import AsyncServiceAccess as AsyncServiceAccess
from ._sync_service import AuditTrail as AuditTrail
from ._sync_service import ServiceAccess as ServiceAccess
from ._sync_vault import Vault as Vault
from ._vault import AsyncVault as AsyncVault
from .core.config import ConnectionConfig as ConnectionConfig
from .core.config import Settings as Settings
from .core.model import CredentialKey as CredentialKey
from .core.model import Credentials as Credentials
from .core.vault_logic import LoginResult as LoginResult
from .core.vault_logic import NewIdentity as NewIdentity

__version__ = "0.1.0"

__all__ = [
    "AsyncAuditTrail",
    "AsyncServiceAccess",
    "AsyncVault",
    "AuditTrail",
    "BadRequest",
    "CallbackError",
    "ConfigurationError",
    "ConnectionConfig",
    "CredentialKey",
    "CredentialNotFound",
    "CredentialUnreadable",
    "Credentials",
    "ForbiddenOrigin",
    "IdentityConflict",
    "InvalidState",
    "LoginResult",
    "MiddlewareNotInstalled",
    "NewIdentity",
    "NotAuthenticated",
    "PermissionDenied",
    "ProviderUnavailable",
    "ReauthenticationRequired",
    "ServiceAccess",
    "Settings",
    "StorageUnavailable",
    "TokenExchangeError",
    "UnknownConnection",
    "Vault",
    "VaultError",
]
