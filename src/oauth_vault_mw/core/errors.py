"""The library's errors: one root, one code per case, one HTTP status per code.

Every error carries a machine-readable ``error`` code, a human ``description`` and the
``status_code`` it maps to, so the Starlette and Flask shells render the same JSON body::

    {"error": "<code>", "error_description": "<description>"}

The tree::

    VaultError
    ├── ConfigurationError          (raised at start-up, never inside a request)
    ├── MiddlewareNotInstalled      500  the accessor was called without the middleware/extension
    ├── BadRequest                  400  invalid_request
    │   ├── InvalidState            400  invalid_state
    │   ├── CallbackError           400  invalid_callback / access_denied / ...
    │   └── ForbiddenOrigin         403  forbidden_origin
    ├── NotAuthenticated            401  not_authenticated
    ├── PermissionDenied            403  forbidden
    │   ├── LoginRefused            403  login_refused (core/hooks.py: an on_login hook said no)
    │   └── InsufficientScope       403  insufficient_scope (+ missing_scopes, login_url)
    ├── UnknownConnection           404  unknown_connection
    ├── CredentialNotFound          404  credential_not_found
    ├── IdentityConflict            409  identity_already_linked
    ├── AccountBusy                 409  account_busy (a change of default met a refresh)
    ├── ReauthenticationRequired    409  reauthentication_required (+ login_url)
    ├── CredentialUnreadable        500  credential_unreadable (seal check failed / key missing)
    ├── ProviderUnavailable         503  provider_unavailable (+ retry_after)
    ├── StorageUnavailable          503  storage_unavailable
    └── TokenExchangeError          400/401/403  RFC 8693 errors (invalid_request,
                                    invalid_client, invalid_grant, invalid_target,
                                    unauthorized_client)

A message never contains a token, a secret or a key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "AccountBusy",
    "BadRequest",
    "CallbackError",
    "ConfigurationError",
    "CredentialNotFound",
    "CredentialUnreadable",
    "ForbiddenOrigin",
    "IdentityConflict",
    "InsufficientScope",
    "InvalidState",
    "MiddlewareNotInstalled",
    "NotAuthenticated",
    "PermissionDenied",
    "ProviderUnavailable",
    "ReauthenticationRequired",
    "StorageUnavailable",
    "TokenExchangeError",
    "UnknownConnection",
    "VaultError",
]


class VaultError(Exception):
    """Root of every error the library raises on purpose."""

    error: str = "server_error"
    status_code: int = 500
    default_description: str = "internal error"

    def __init__(self, description: str | None = None, *, error: str | None = None) -> None:
        self.description = description or self.default_description
        if error is not None:
            self.error = error
        super().__init__(self.description)

    def to_dict(self) -> dict[str, Any]:
        """The JSON body both framework shells send."""
        return {"error": self.error, "error_description": self.description}

    def headers(self) -> dict[str, str]:
        """Extra response headers (``Retry-After``...)."""
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(error={self.error!r}, description={self.description!r})"


class ConfigurationError(VaultError):
    """Invalid settings. The message is one line that names the setting."""

    error = "configuration_error"


class MiddlewareNotInstalled(VaultError):
    error = "middleware_not_installed"
    default_description = (
        "oauth_vault_mw is not installed on this app: add OAuthVaultMiddleware "
        "(Starlette/FastAPI) or OAuthVault(app) (Flask) before using connection_credentials()"
    )


class BadRequest(VaultError):
    error = "invalid_request"
    status_code = 400
    default_description = "the request is malformed"


class InvalidState(BadRequest):
    error = "invalid_state"
    default_description = "the login state is missing, forged, expired or already used"


class CallbackError(BadRequest):
    error = "invalid_callback"
    default_description = "the provider's callback could not be accepted"


class ForbiddenOrigin(BadRequest):
    error = "forbidden_origin"
    status_code = 403
    default_description = "cross-origin request refused"


class NotAuthenticated(VaultError):
    error = "not_authenticated"
    status_code = 401
    default_description = "no valid session or access token"


class PermissionDenied(VaultError):
    error = "forbidden"
    status_code = 403
    default_description = "not granted"


class InsufficientScope(PermissionDenied):
    """The stored grant lacks a scope the caller needs: the user must consent to more.

    ``missing_scopes``: the scopes lacking; ``login_url``: the connect route asking the
    provider for them (``core/scopes.py``), to send the user to. A refresh cannot add
    scopes, so none is tried.
    """

    error = "insufficient_scope"
    default_description = "the stored grant lacks a scope this call needs"

    def __init__(
        self,
        description: str | None = None,
        *,
        connection_id: str,
        missing_scopes: Sequence[str],
        login_url: str,
    ) -> None:
        super().__init__(description)
        self.connection_id = connection_id
        self.missing_scopes = tuple(missing_scopes)
        self.login_url = login_url

    def to_dict(self) -> dict[str, Any]:
        return {
            **super().to_dict(),
            "missing_scopes": list(self.missing_scopes),
            "login_url": self.login_url,
        }


class UnknownConnection(VaultError):
    error = "unknown_connection"
    status_code = 404
    default_description = "no such connection"


class CredentialNotFound(VaultError):
    error = "credential_not_found"
    status_code = 404
    default_description = "no credential for this connection and user"


class AccountBusy(VaultError):
    error = "account_busy"
    status_code = 409
    default_description = "the account is being refreshed; try again"


class IdentityConflict(VaultError):
    error = "identity_already_linked"
    status_code = 409
    default_description = "this provider account is already linked to another user"


class ReauthenticationRequired(VaultError):
    """The provider refused the refresh token: the user must log in again."""

    error = "reauthentication_required"
    status_code = 409
    default_description = "the provider refused the stored grant; the user must log in again"

    def __init__(self, description: str | None = None, *, login_url: str) -> None:
        super().__init__(description)
        self.login_url = login_url

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "login_url": self.login_url}


class CredentialUnreadable(VaultError):
    error = "credential_unreadable"
    default_description = "the stored credential failed its integrity check or its key is gone"


class ProviderUnavailable(VaultError):
    error = "provider_unavailable"
    status_code = 503
    default_description = "the provider is unavailable and no valid token is stored"

    def __init__(self, description: str | None = None, *, retry_after: int = 5) -> None:
        super().__init__(description)
        self.retry_after = max(1, int(retry_after))

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class StorageUnavailable(VaultError):
    error = "storage_unavailable"
    status_code = 503
    default_description = "the credential storage is unavailable"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "1"}


class TokenExchangeError(VaultError):
    """An RFC 8693 token exchange refused, with the RFC's error code."""

    STATUSES = {"invalid_client": 401, "unauthorized_client": 403}

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description, error=error)
        self.status_code = self.STATUSES.get(error, 400)
