"""Per-request state of the Flask shell: the app's vault and service access, cookies, the
cached user lookup."""

from __future__ import annotations

from typing import Any

from flask import Flask, Request

from .._sync.service import ServiceAccess
from .._sync.vault import Vault
from ..core.cookies import SESSION_COOKIE
from ..core.errors import BadRequest, MiddlewareNotInstalled, NotAuthenticated
from ..core.model import Credentials

__all__ = [
    "EXTENSION_KEY",
    "SERVICE_KEY",
    "USER_CACHE_KEY",
    "cookie_from",
    "credentials",
    "read_cookie",
    "require_user_id",
    "service_of",
    "user_id",
    "vault_of",
]

EXTENSION_KEY = "oauth_vault"
SERVICE_KEY = "oauth_vault_service"
MAX_COOKIE_HEADER = 8192
USER_CACHE_KEY = "oauth_vault_mw.user"  # in the WSGI environ: (user id or None,)


def vault_of(app: Flask) -> Vault:
    """The vault :class:`OAuthVault` put on ``app``; ``MiddlewareNotInstalled`` otherwise."""
    vault = app.extensions.get(EXTENSION_KEY)
    if not isinstance(vault, Vault):
        raise MiddlewareNotInstalled()
    return vault


def service_of(app: Flask) -> ServiceAccess:
    """The service access :class:`OAuthVault` put on ``app`` next to its vault."""
    service = app.extensions.get(SERVICE_KEY)
    if not isinstance(service, ServiceAccess):
        raise MiddlewareNotInstalled()
    return service


def read_cookie(request: Request, name: str) -> str | None:
    """One cookie's value; an oversized ``Cookie`` header is refused (as in Starlette).

    A plain split of the raw header, as the Starlette shell does: the library's cookie
    values are URL-safe tokens, and this runs on every request.
    """
    return cookie_from(request.environ, name)


def cookie_from(environ: dict[str, Any], name: str) -> str | None:
    """:func:`read_cookie` on a WSGI environ."""
    header = environ.get("HTTP_COOKIE")
    if not header:
        return None
    if len(header) > MAX_COOKIE_HEADER:  # WSGI headers are latin-1: one char, one byte
        raise BadRequest("cookie header too large")
    if name not in header:
        return None
    for part in header.split(";"):
        found, sep, content = part.strip().partition("=")
        if sep and found == name:
            value: str = content.strip('"')
            return value
    return None


def user_id(service: ServiceAccess, request: Request) -> str | None:
    """The user of the app token (``Authorization: Bearer``) or of the session cookie,
    looked up once per request and cached in the request's WSGI environ.

    A service access key or an invalid app token in ``Authorization`` is NotAuthenticated
    (not cached: every call raises it). The environ belongs to one request, unlike ``g``,
    which an app context around several test requests shares.
    """
    environ = request.environ  # once: ``request`` may be Flask's proxy
    cached: Any = environ.get(USER_CACHE_KEY)
    if cached is not None:
        found: str | None = cached[0]
        return found
    authorization = environ.get("HTTP_AUTHORIZATION")
    found = service.user_for_app_token(authorization) if authorization else None
    if found is None:
        found = service.vault.user_for_session(cookie_from(environ, SESSION_COOKIE))
    environ[USER_CACHE_KEY] = (found,)  # per request: the environ is the request's own
    return found


def credentials(
    service: ServiceAccess,
    request: Request,
    connection_id: str,
    min_validity: float | None = None,
    force_refresh: bool = False,
) -> Credentials:
    """The request's user's credential for ``connection_id``. A request on a session cookie
    whose user is not looked up yet gets both from the vault at once (one storage read)."""
    environ = request.environ
    if USER_CACHE_KEY not in environ and not environ.get("HTTP_AUTHORIZATION"):
        found = service.vault.session_credentials(
            cookie_from(environ, SESSION_COOKIE),
            connection_id,
            min_validity=min_validity,
            force_refresh=force_refresh,
        )
        if found is None:
            environ[USER_CACHE_KEY] = (None,)
            raise NotAuthenticated()
        environ[USER_CACHE_KEY] = (found[0],)
        return found[1]
    owner = require_user_id(service, request)
    return service.vault.get_connection_credentials(
        connection_id,
        owner,
        min_validity=min_validity,
        force_refresh=force_refresh,
        actor=f"user:{owner}",
    )


def require_user_id(service: ServiceAccess, request: Request) -> str:
    found = user_id(service, request)
    if found is None:
        raise NotAuthenticated()
    return found
