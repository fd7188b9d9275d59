"""oauth_vault_mw: federated login and an encrypted provider-token vault for Python web apps.

Starlette/FastAPI: :class:`oauth_vault_mw.starlette.OAuthVaultMiddleware`.
Background jobs: :class:`AsyncVault`. Settings: :class:`Settings`.
"""

from __future__ import annotations

from ._async.audit import AsyncAuditTrail as AsyncAuditTrail
from ._async.service import AsyncServiceAccess as AsyncServiceAccess
from ._async.vault import AsyncVault as AsyncVault
from ._sync.audit import AuditTrail as AuditTrail
from ._sync.service import ServiceAccess as ServiceAccess
from ._sync.vault import Vault as Vault
from .core.config import ConnectionConfig as ConnectionConfig
from .core.config import Settings as Settings
from .core.errors import AccountBusy as AccountBusy
from .core.errors import BadRequest as BadRequest
from .core.errors import CallbackError as CallbackError
from .core.errors import ConfigurationError as ConfigurationError
from .core.errors import CredentialNotFound as CredentialNotFound
from .core.errors import CredentialUnreadable as CredentialUnreadable
from .core.errors import ForbiddenOrigin as ForbiddenOrigin
from .core.errors import IdentityConflict as IdentityConflict
from .core.errors import InsufficientScope as InsufficientScope
from .core.errors import InvalidState as InvalidState
from .core.errors import MiddlewareNotInstalled as MiddlewareNotInstalled
from .core.errors import NotAuthenticated as NotAuthenticated
from .core.errors import PermissionDenied as PermissionDenied
from .core.errors import ProviderUnavailable as ProviderUnavailable
from .core.errors import ReauthenticationRequired as ReauthenticationRequired
from .core.errors import StorageUnavailable as StorageUnavailable
from .core.errors import TokenExchangeError as TokenExchangeError
from .core.errors import UnknownConnection as UnknownConnection
from .core.errors import VaultError as VaultError
from .core.hooks import DisconnectEvent as DisconnectEvent
from .core.hooks import Hooks as Hooks
from .core.hooks import LoginEvent as LoginEvent
from .core.hooks import LoginRefused as LoginRefused
from .core.hooks import ReauthenticationEvent as ReauthenticationEvent
from .core.identity import CurrentUser as CurrentUser
from .core.identity import LoginResult as LoginResult
from .core.identity import NewIdentity as NewIdentity
from .core.model import CredentialKey as CredentialKey
from .core.model import Credentials as Credentials

__version__ = "0.1.0"

__all__ = [
    "AccountBusy",
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
    "CurrentUser",
    "DisconnectEvent",
    "ForbiddenOrigin",
    "Hooks",
    "IdentityConflict",
    "InsufficientScope",
    "InvalidState",
    "LoginEvent",
    "LoginRefused",
    "LoginResult",
    "MiddlewareNotInstalled",
    "NewIdentity",
    "NotAuthenticated",
    "PermissionDenied",
    "ProviderUnavailable",
    "ReauthenticationEvent",
    "ReauthenticationRequired",
    "ServiceAccess",
    "Settings",
    "StorageUnavailable",
    "TokenExchangeError",
    "UnknownConnection",
    "Vault",
    "VaultError",
]
