"""The documented ways to mount the vault that the examples do not show, as app factories a
server loads (``uvicorn --factory tests.startup.apps:starlette_wrapped``,
``flask --app 'tests.startup.apps:flask_extension()' run``).

The examples cover the rest: ``examples/starlette_app`` (a module-level ``AsyncVault`` shared
through ``Middleware(OAuthVaultMiddleware, vault=vault)``), ``examples/fastapi_app``
(``app.add_middleware(OAuthVaultMiddleware, settings=...)``) and ``examples/flask_app`` (an
app factory calling ``vault_ext.init_app(app)``).
"""

from __future__ import annotations

import os

from flask import Flask
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from oauth_vault_mw import Settings
from oauth_vault_mw.flask import OAuthVault
from oauth_vault_mw.starlette import OAuthVaultMiddleware


async def home(request: Request) -> PlainTextResponse:
    return PlainTextResponse("home")


def starlette_add_middleware() -> Starlette:
    """The README's Starlette quick start: ``add_middleware`` with ``Settings.from_env()``."""
    app = Starlette(routes=[Route("/", home)])
    app.add_middleware(OAuthVaultMiddleware, settings=Settings.from_env())
    return app


def starlette_middleware_list() -> Starlette:
    """``Starlette(middleware=[Middleware(OAuthVaultMiddleware)])``, settings from the
    environment (no ``settings`` argument)."""
    return Starlette(routes=[Route("/", home)], middleware=[Middleware(OAuthVaultMiddleware)])


def starlette_wrapped() -> ASGIApp:
    """The middleware wrapping an app directly: ``OAuthVaultMiddleware(app, settings=...)``."""
    return OAuthVaultMiddleware(Starlette(routes=[Route("/", home)]), settings=Settings.from_env())


def flask_extension() -> Flask:
    """``OAuthVault(app)`` on an app configured from the ``OAUTH_VAULT_*`` environment."""
    app = Flask(__name__)
    app.config.update({k: v for k, v in os.environ.items() if k.startswith("OAUTH_VAULT_")})
    OAuthVault(app)
    app.add_url_rule("/", view_func=lambda: "home")
    return app
