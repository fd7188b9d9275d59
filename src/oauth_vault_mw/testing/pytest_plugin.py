"""pytest fixtures for apps that use oauth_vault_mw (registered under the ``pytest11`` entry
point: installed with the package, nothing to configure). All fixture names start with
``oauth_vault_``; nothing here runs before a test asks for one of them.

- ``oauth_vault_provider``: a fresh :class:`~oauth_vault_mw.testing.OpenIDProvider` per
  test, served on a free loopback port (its :attr:`issuer`) while the test runs, and reachable
  in process through ``oauth_vault_provider.transport()``;
- ``oauth_vault_starlette_client``: ``make(app, connection_id=None, *, login=None,
  base_url=DEFAULT_BASE_URL, prefix="/auth", return_to="/")`` returns a started
  ``starlette.testclient.TestClient`` on ``app`` (Starlette or FastAPI), logged in through the
  provider when ``connection_id`` is given; closed after the test;
- ``oauth_vault_flask_client``: the same for a Flask app (``app.test_client()``).

To disable the plugin: ``pytest -p no:oauth_vault_mw``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

import pytest

if TYPE_CHECKING:
    from flask import Flask
    from flask.testing import FlaskClient
    from starlette.testclient import TestClient
    from starlette.types import ASGIApp

    from ._provider import OpenIDProvider

__all__ = [
    "FlaskClientFactory",
    "StarletteClientFactory",
    "oauth_vault_flask_client",
    "oauth_vault_provider",
    "oauth_vault_starlette_client",
]


class StarletteClientFactory(Protocol):
    """The ``oauth_vault_starlette_client`` fixture's value."""

    def __call__(
        self,
        app: ASGIApp,
        connection_id: str | None = None,
        *,
        login: str | None = None,
        base_url: str = ...,
        prefix: str = "/auth",
        return_to: str = "/",
    ) -> TestClient: ...


class FlaskClientFactory(Protocol):
    """The ``oauth_vault_flask_client`` fixture's value."""

    def __call__(
        self,
        app: Flask,
        connection_id: str | None = None,
        *,
        login: str | None = None,
        prefix: str = "/auth",
        return_to: str = "/",
    ) -> FlaskClient: ...


@pytest.fixture
def oauth_vault_provider() -> Iterator[OpenIDProvider]:
    """A fresh testing OpenID provider, served on 127.0.0.1 for the test's duration."""
    from ._provider import OpenIDProvider

    provider = OpenIDProvider()
    with provider.serve():
        yield provider


@pytest.fixture
def oauth_vault_starlette_client(
    oauth_vault_provider: OpenIDProvider,
) -> Iterator[StarletteClientFactory]:
    """Makes started (lifespan run) Starlette/FastAPI test clients, logged in on request."""
    from starlette.testclient import TestClient

    from ._config import DEFAULT_BASE_URL
    from ._login import log_in

    with contextlib.ExitStack() as stack:

        def make(
            app: ASGIApp,
            connection_id: str | None = None,
            *,
            login: str | None = None,
            base_url: str = DEFAULT_BASE_URL,
            prefix: str = "/auth",
            return_to: str = "/",
        ) -> TestClient:
            client = stack.enter_context(TestClient(app, base_url=base_url))
            if connection_id is not None:
                log_in(
                    client,
                    oauth_vault_provider,
                    connection_id,
                    login=login,
                    prefix=prefix,
                    return_to=return_to,
                )
            return client

        yield make


@pytest.fixture
def oauth_vault_flask_client(
    oauth_vault_provider: OpenIDProvider,
) -> FlaskClientFactory:
    """Makes Flask test clients, logged in on request."""
    from ._login import log_in_flask

    def make(
        app: Flask,
        connection_id: str | None = None,
        *,
        login: str | None = None,
        prefix: str = "/auth",
        return_to: str = "/",
    ) -> FlaskClient:
        client = app.test_client()
        if connection_id is not None:
            log_in_flask(
                client,
                oauth_vault_provider,
                connection_id,
                login=login,
                prefix=prefix,
                return_to=return_to,
            )
        return client

    return make
