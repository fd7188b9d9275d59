"""``connection_credentials`` for Flask views.

Two equivalent ways, both needing :class:`~oauth_vault_mw.flask.OAuthVault` on the app::

    # 1. the function, in any view (and in any app, whatever its request class)
    from oauth_vault_mw.flask import connection_credentials, current_user_id

    creds = connection_credentials("google", min_validity=120)

    # a scope the user may not have granted yet: 403 insufficient_scope with a login_url
    creds = connection_credentials("google", scopes=["drive.file"])

    # 2. request.connection_credentials(...): OAuthVault makes VaultRequest the app's
    #    request class (unless the app has its own). ``vault_request`` is ``flask.request``
    #    typed as VaultRequest, for mypy.
    from oauth_vault_mw.flask import vault_request as request

    creds = request.connection_credentials("google")
    user_id = request.vault_user_id()

And an httpx client on the connection's API that sends the token and retries once after a
refresh on a 401 (docs/client.md)::

    with request.connection_client("github") as github:
        user = github.get("/user").json()
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

import flask

from .._sync.client import ConnectionClient
from .._sync.client import connection_client as _client_for
from ..core.errors import InsufficientScope
from ..core.identity import CurrentUser
from ..core.model import Credentials
from ..core.scopes import add_return_to
from ._context import context_of, service_of

__all__ = [
    "VaultRequest",
    "connection_client",
    "connection_credentials",
    "current_user",
    "current_user_id",
    "vault_request",
]

_NO_REQUEST = (
    "{name}() needs a Flask request; a background job calls "
    "Vault.get_connection_credentials(connection_id, user_id) instead (OAuthVault.get_vault)"
)


def _credentials_for(
    request: flask.Request,
    connection_id: str,
    min_validity: float | None,
    force_refresh: bool,
    scopes: Iterable[str] | None = None,
    account: str | None = None,
) -> Credentials:
    ctx = context_of(service_of(_current_app()), request)
    if scopes is None and account is None:
        return ctx.credentials(connection_id, min_validity, force_refresh)
    try:
        return ctx.credentials(connection_id, min_validity, force_refresh, scopes, account)
    except InsufficientScope as exc:
        _come_back(exc, request)
        raise


def _come_back(exc: InsufficientScope, request: flask.Request) -> None:
    """Send the user back to this request's page after the consent, for a GET."""
    if request.method in ("GET", "HEAD"):
        path = request.script_root + request.path
        query = request.query_string.decode("latin-1")
        add_return_to(exc, f"{path}?{query}" if query else path)


def _current_app() -> flask.Flask:
    """The app behind ``flask.current_app``, unwrapped once (each attribute access through
    the proxy costs a context-variable lookup)."""
    app: flask.Flask = cast(Any, flask.current_app)._get_current_object()
    return app


def _current_request(name: str) -> flask.Request:
    if not flask.has_request_context():
        raise RuntimeError(_NO_REQUEST.format(name=name))
    current: flask.Request = cast(Any, flask.request)._get_current_object()
    return current


def connection_credentials(
    connection_id: str,
    *,
    min_validity: float | None = None,
    force_refresh: bool = False,
    scopes: Iterable[str] | None = None,
    account: str | None = None,
) -> Credentials:
    """The current user's access token for ``connection_id``, valid ``min_validity`` s.

    ``min_validity`` defaults to the connection's setting. ``force_refresh=True`` after the
    provider answered 401 to the token. ``scopes``: the scopes the view needs; when the user
    has not granted one, ``InsufficientScope`` (403 ``insufficient_scope`` with
    ``missing_scopes`` and a ``login_url`` that asks for them and, for a GET, comes back to
    this request's path). Raises ``NotAuthenticated`` (no session),
    ``ReauthenticationRequired``, ``ProviderUnavailable``, ``CredentialNotFound``,
    ``UnknownConnection``; the extension's error handler renders each as its JSON error.
    ``MiddlewareNotInstalled`` when ``OAuthVault`` was not set up on the current app.
    ``account``: one of the user's accounts of the connection by its id (``/me`` lists
    them; an unknown one is ``CredentialNotFound``); ``None``: the default account.
    """
    request = _current_request("connection_credentials")
    return _credentials_for(request, connection_id, min_validity, force_refresh, scopes, account)


def _client_of(
    request: flask.Request,
    connection_id: str,
    min_validity: float | None,
    base_url: str | None,
    kwargs: dict[str, Any],
    scopes: Iterable[str] | None = None,
    account: str | None = None,
) -> ConnectionClient:
    ctx = context_of(service_of(_current_app()), request)

    def credentials(force_refresh: bool) -> Credentials:
        try:
            return ctx.credentials(connection_id, min_validity, force_refresh, scopes, account)
        except InsufficientScope as exc:
            _come_back(exc, request)
            raise

    return _client_for(ctx.vault, connection_id, credentials, base_url=base_url, **kwargs)


def connection_client(
    connection_id: str,
    *,
    min_validity: float | None = None,
    base_url: str | None = None,
    scopes: Iterable[str] | None = None,
    account: str | None = None,
    **kwargs: Any,
) -> ConnectionClient:
    """An ``httpx.Client`` on ``connection_id``'s API as the current user: it sends the
    token (valid ``min_validity`` s, the connection's setting by default; holding ``scopes``
    as :func:`connection_credentials` checks them) to the API's origin only, and on a 401
    refreshes once and retries once (a replayable body only).

    The base URL is ``base_url``, else the connection's ``api_base_url`` (its preset's, or
    from the login: Salesforce ``instance_url``). It borrows the vault's connection pool:
    ``with`` closes the client, not the pool, and one left open leaks nothing. Use it
    within the request; a background job uses ``Vault.client(connection_id, user_id)``.
    ``kwargs`` go to httpx (``timeout=``, ``headers=``...). Raises what
    :func:`connection_credentials` raises, and ``ConfigurationError`` when no base URL is
    known. See docs/client.md.
    """
    request = _current_request("connection_client")
    return _client_of(request, connection_id, min_validity, base_url, kwargs, scopes, account)


def current_user_id() -> str | None:
    """The logged-in user's id (session cookie or ``Authorization: Bearer`` app token), or
    ``None``; an invalid app token or a service access key there is ``NotAuthenticated``."""
    request = _current_request("current_user_id")
    return context_of(service_of(_current_app()), request).user_id()


def current_user() -> CurrentUser | None:
    """The logged-in user (``user_id``, and ``profile``: the display claims of their last
    login, such as ``name`` and ``email``), or ``None``."""
    request = _current_request("current_user")
    return context_of(service_of(_current_app()), request).current_user()


class VaultRequest(flask.Request):
    """A Flask request with ``connection_credentials()``, ``connection_client()``,
    ``vault_user_id()`` and ``current_user()``."""

    def connection_credentials(
        self,
        connection_id: str,
        *,
        min_validity: float | None = None,
        force_refresh: bool = False,
        scopes: Iterable[str] | None = None,
        account: str | None = None,
    ) -> Credentials:
        return _credentials_for(self, connection_id, min_validity, force_refresh, scopes, account)

    def connection_client(
        self,
        connection_id: str,
        *,
        min_validity: float | None = None,
        base_url: str | None = None,
        scopes: Iterable[str] | None = None,
        account: str | None = None,
        **kwargs: Any,
    ) -> ConnectionClient:
        return _client_of(self, connection_id, min_validity, base_url, kwargs, scopes, account)

    def vault_user_id(self) -> str | None:
        return context_of(service_of(_current_app()), self).user_id()

    def current_user(self) -> CurrentUser | None:
        return context_of(service_of(_current_app()), self).current_user()


vault_request: VaultRequest = cast(VaultRequest, flask.request)
"""``flask.request``, typed as :class:`VaultRequest` (the same proxy)."""
