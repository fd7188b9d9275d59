"""The package's own metadata, as pip installs it for users (not the dev extra)."""

from __future__ import annotations

from importlib.metadata import requires

from packaging.requirements import Requirement


def _requirements() -> list[Requirement]:
    return [Requirement(line) for line in requires("oauth-vault-mw") or []]


def test_async_postgresql_installs_greenlet_without_the_dev_extra() -> None:
    """SQLAlchemy's asyncio engine needs greenlet; a dev dependency used to pull it in, so
    ``pip install 'oauth-vault-mw[postgresql]'`` failed at the first async request."""
    core = [r for r in _requirements() if r.marker is None and r.name == "sqlalchemy"]
    assert core, "SQLAlchemy is a core dependency"
    assert all("asyncio" in r.extras for r in core)


def test_fastapi_extra_exists() -> None:
    """``pip install 'oauth-vault-mw[fastapi]'`` brings FastAPI (for the FastAPI helpers)."""
    assert any(
        r.name == "fastapi" and r.marker is not None and r.marker.evaluate({"extra": "fastapi"})
        for r in _requirements()
    )
