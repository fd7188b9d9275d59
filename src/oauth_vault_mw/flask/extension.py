"""``OAuthVault``: the Flask extension (``__init__(app=None)`` + ``init_app(app)``).

::

    vault_ext = OAuthVault()

    def create_app() -> Flask:
        app = Flask(__name__)
        app.config.from_prefixed_env()  # or app.config["OAUTH_VAULT_SECRET_KEY"] = ...
        vault_ext.init_app(app)
        return app

Settings come from the app's ``OAUTH_VAULT_*`` config keys (the names and meanings of the
environment variables) unless ``settings`` is given, and are validated in ``init_app``, which
also creates the storage tables: bad configuration (the storage URL's scheme and driver
included) raises :class:`~oauth_vault_mw.ConfigurationError` there, so ``flask run``,
waitress and gunicorn stop at start-up with one line naming the setting.

The extension keeps no reference to any app: each app gets its own sync
:class:`~oauth_vault_mw.Vault` in ``app.extensions["oauth_vault"]`` and, next to it, its
``ServiceAccess`` (service clients, app tokens, token exchange, the audit trail) in
``app.extensions["oauth_vault_service"]``.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Mapping
from typing import Any

import httpx
from flask import Flask, current_app
from flask import Request as FlaskRequest

from .._sync.service import ServiceAccess
from .._sync.vault import NewUserIdHook, Vault
from ..core.config import Settings, parse_settings, settings_from_prefixed
from ..core.errors import StorageUnavailable, VaultError
from ..core.hooks import Hooks
from ..metrics import Metrics
from ..storage import Storage
from ._context import EXTENSION_KEY, SERVICE_KEY, service_of, vault_of
from .request import VaultRequest
from .routes import build_blueprint, error_response

__all__ = ["OAuthVault", "settings_from_config"]

logger = logging.getLogger("oauth_vault_mw")


def settings_from_config(config: Mapping[str, Any]) -> Settings:
    """:class:`Settings` from a Flask config's ``OAUTH_VAULT_*`` keys.

    Values may be what the environment holds (strings: a JSON list or a file path for
    ``OAUTH_VAULT_CONNECTIONS``, comma-separated ``OAUTH_VAULT_ENCRYPTION_KEYS``) or Python
    values (a list of connection dicts, a list of keys, numbers). ``None`` and ``""`` are unset.
    """
    return settings_from_prefixed(config)


def _resolve_settings(app: Flask, given: Settings | Mapping[str, Any] | None) -> Settings:
    if isinstance(given, Settings):
        return given
    if given is not None:
        return parse_settings(given)
    return settings_from_config(app.config)


def _start(vault: Vault) -> None:
    """Create the storage tables; a storage that cannot be set up names the setting."""
    try:
        vault.startup()
    except StorageUnavailable as exc:
        raise StorageUnavailable(
            f"OAUTH_VAULT_STORAGE_URL: the storage could not be set up ({exc.description})"
        ) from None


def _handle_vault_error(exc: VaultError) -> Any:
    return error_response(exc)


def _shutdown(service: ServiceAccess, vault: Vault | None) -> None:
    """When the app goes (garbage-collected, or at exit): write the audit events still
    pending, then close the vault if the extension made it."""
    try:
        service.close()
    except Exception:  # a finalizer must not raise; the events are in the log records
        logger.warning("oauth_vault_mw: could not flush the audit trail", exc_info=True)
    if vault is not None:
        vault.close()


class OAuthVault:
    """Mounts the vault on Flask apps: routes under the prefix, accessors, JSON errors.

    Options given here are the defaults of every :meth:`init_app`; ``init_app``'s own win.
    ``settings``: a :class:`Settings` or a mapping for ``Settings.from_mapping`` (default: the
    app's ``OAUTH_VAULT_*`` config). ``vault``: a ready :class:`Vault` (the other options are
    then ignored, and the caller closes it). ``new_user_id`` chooses the user id of a provider
    account seen for the first time (default: a random id). ``hooks``: the app's
    :class:`~oauth_vault_mw.Hooks` (plain or coroutine functions). ``metrics``: what the
    vault reports to (``oauth_vault_mw.metrics``: Prometheus, OpenTelemetry).
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        settings: Settings | Mapping[str, Any] | None = None,
        vault: Vault | None = None,
        storage: Storage | None = None,
        new_user_id: NewUserIdHook | None = None,
        http_transport: httpx.BaseTransport | None = None,
        hooks: Hooks | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._settings = settings
        self._hooks = hooks
        self._metrics = metrics
        self._vault = vault
        self._storage = storage
        self._new_user_id = new_user_id
        self._http_transport = http_transport
        if app is not None:
            self.init_app(app)

    def __repr__(self) -> str:
        return "OAuthVault()"

    def init_app(
        self,
        app: Flask,
        *,
        settings: Settings | Mapping[str, Any] | None = None,
        vault: Vault | None = None,
        storage: Storage | None = None,
        new_user_id: NewUserIdHook | None = None,
        http_transport: httpx.BaseTransport | None = None,
        hooks: Hooks | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        """Validate the settings, create the storage tables, register routes and handlers."""
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError("OAuthVault is already initialised on this app")
        vault = vault if vault is not None else self._vault
        owned = vault is None
        if vault is None:
            # a storage URL whose driver is missing is a ConfigurationError from the storage
            vault = Vault(
                _resolve_settings(app, settings if settings is not None else self._settings),
                storage=storage if storage is not None else self._storage,
                new_user_id=new_user_id if new_user_id is not None else self._new_user_id,
                http_transport=http_transport
                if http_transport is not None
                else self._http_transport,
                hooks=hooks if hooks is not None else self._hooks,
                metrics=metrics if metrics is not None else self._metrics,
            )
        try:
            _start(vault)
            service = ServiceAccess(vault)
            app.register_blueprint(build_blueprint(vault, service))
        except BaseException:
            if owned:
                vault.close()
            raise
        # No shutdown hook in WSGI: flush the audit trail (and close the pooled client and
        # the storage of a vault made here) with the app. A given vault is the caller's.
        weakref.finalize(app, _shutdown, service, vault if owned else None)
        app.extensions[EXTENSION_KEY] = vault
        app.extensions[SERVICE_KEY] = service
        app.register_error_handler(VaultError, _handle_vault_error)
        self._set_request_class(app)

    @staticmethod
    def _set_request_class(app: Flask) -> None:
        if issubclass(app.request_class, VaultRequest):
            return
        if app.request_class is FlaskRequest:
            app.request_class = VaultRequest
            return
        logger.info(
            "oauth_vault_mw: %s keeps its request class %s; use "
            "oauth_vault_mw.flask.connection_credentials() in its views "
            "(request.connection_credentials() needs VaultRequest as a base class)",
            app.name,
            app.request_class.__qualname__,
        )

    def get_vault(self, app: Flask | None = None) -> Vault:
        """The :class:`Vault` of ``app`` (default: ``current_app``), for background jobs."""
        return vault_of(app if app is not None else current_app)

    def get_service(self, app: Flask | None = None) -> ServiceAccess:
        """The ``ServiceAccess`` of ``app`` (default: ``current_app``): service clients and
        their keys, app tokens, the audit trail. It shares the app's vault."""
        return service_of(app if app is not None else current_app)
