"""The two WSGI apps the Flask endpoint benchmark serves under waitress.

``benchmarks._flask_apps:vault_app``: Flask + :class:`~oauth_vault_mw.flask.OAuthVault` on the
sqlite file the runner seeded (its blueprint serves ``GET /auth/connections/<cid>/credentials``);
``benchmarks._flask_apps:bare_app``: Flask alone, whose view (same path) returns the very dict
the vault returns, from a constant, as Flask renders a dict, with the same no-store headers.
Configured like :mod:`benchmarks._apps` (``BENCH_STORAGE_URL``, ``BENCH_SECRET_KEY``,
``BENCH_ENCRYPTION_KEY``; ``BENCH_PAYLOAD``), built on first access (PEP 562).
"""

from __future__ import annotations

import json
import os
from typing import Any

from flask import Flask
from flask.typing import ResponseReturnValue

from oauth_vault_mw.flask import OAuthVault

from ._common import make_settings

# ``vault_app`` and ``bare_app`` are provided by ``__getattr__`` below.
__all__ = ["NO_STORE", "build_bare_app", "build_vault_app"]

# The headers the vault's credential route sends (checked against it before timing).
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _env(name: str) -> str:
    try:
        return os.environ[name]
    except KeyError:
        raise RuntimeError(f"{name} is not set: run the benchmarks with ./scripts/bench") from None


def build_vault_app() -> Flask:
    settings = make_settings(
        _env("BENCH_STORAGE_URL"), _env("BENCH_SECRET_KEY"), _env("BENCH_ENCRYPTION_KEY")
    )
    app = Flask("bench_vault_app")
    OAuthVault(app, settings=settings)
    return app


def build_bare_app() -> Flask:
    payload: dict[str, Any] = json.loads(_env("BENCH_PAYLOAD"))
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
