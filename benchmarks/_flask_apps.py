"""The two WSGI apps the Flask endpoint benchmark serves under waitress.

``benchmarks._flask_apps:vault_app``: Flask + :class:`~oauth_vault_mw.flask.OAuthVault` on the
sqlite file the runner seeded (its blueprint serves ``GET /auth/connections/<cid>/credentials``);
``benchmarks._flask_apps:bare_app``: Flask alone, whose view (same path) returns the very dict
the vault returns, from a constant, as Flask renders a dict, with the same no-store headers.
Configured like :mod:`benchmarks._apps` (``BENCH_STORAGE_URL``, ``BENCH_SECRET_KEY``,
``BENCH_ENCRYPTION_KEY``; ``BENCH_PAYLOAD``), built on first access (PEP 562).
"""

from __future__ import annotations

from flask import Flask
from flask.typing import ResponseReturnValue

from oauth_vault_mw.flask import OAuthVault

from ._common import NO_STORE, payload_from_env, settings_from_env

# ``vault_app`` and ``bare_app`` are provided by ``__getattr__`` below.
__all__ = ["build_bare_app", "build_vault_app"]


def build_vault_app() -> Flask:
    settings = settings_from_env()
    app = Flask("bench_vault_app")
    OAuthVault(app, settings=settings)
    return app


def build_bare_app() -> Flask:
    payload = payload_from_env()
    app = Flask("bench_bare_app")

    @app.get("/auth/connections/<connection_id>/credentials")
    def credentials(connection_id: str) -> ResponseReturnValue:
        return payload, 200, NO_STORE

    return app


def __getattr__(name: str) -> Flask:
    if name == "vault_app":
        app = build_vault_app()
    elif name == "bare_app":
        app = build_bare_app()
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = app
    return app
