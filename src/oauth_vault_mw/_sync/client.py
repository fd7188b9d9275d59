# Generated from _async/client.py by scripts/unasync.py: do not edit.
"""An httpx client that calls a provider's API as one user (sync).

In a handler ``request.connection_client("github")``; in a background job
``vault.client("github", user_id)``::

    with request.connection_client("github") as github:
        user = (github.get("/user")).json()

What it does to each request it sends:

- A request to the base URL's origin (scheme, host and port) gets ``Authorization`` with
  the connection's current token (``min_validity`` as the connection sets it, refreshed by
  the vault when due). A request to any other origin is sent as it is, without the token,
  and never retried: the token only goes where the connection's API is.
- On a 401 from the API it asks the vault for a new token (``force_refresh=True``: one
  refresh) and sends the request once more with it; the second answer is the answer, 401 or
  not. Only a body that can be sent again is replayed: none, ``content=`` bytes or text,
  ``json=``, ``data=`` (a form). A streamed body (an iterator or generator) or ``files=``
  gets the first 401 back unchanged.
- The token is on the request only while it is sent: afterwards neither ``response.request``
  nor an httpx exception's ``request`` holds it, and the client's ``repr`` names only the
  connection and the base URL.

Lifecycle: the client borrows the vault's pooled transport (the provider client's
connection pool): making one is cheap, and closing it (``with client:``, or
``close()``) leaves the pool open; one never closed leaks nothing either. The vault closes
the pool. A client given its own ``transport=`` owns it and closes it as any httpx client.
API calls and the vault's own provider calls share the pool's limits (100 connections).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import httpx

from ..core.errors import ConfigurationError
from ..core.model import Credentials
from .base import VaultBase

__all__ = ["ConnectionClient", "CredentialsSource", "connection_client"]

CredentialsSource = Callable[[bool], Credentials]
"""The user's credential for the connection; called with ``force_refresh``."""

_NO_BASE = (
    "connection {id}: no API base URL (its preset sets none); set api_base_url in the "
    "connection's settings or pass base_url="
)


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    default = {"http": 80, "https": 443}.get(url.scheme)
    return (url.scheme, url.host, url.port if url.port is not None else default)


def _replayable(request: httpx.Request) -> bool:
    """Whether the request's body can be sent again: held in memory, not streamed."""
    return isinstance(request.stream, httpx.ByteStream)


def _scrub(requests: Iterable[httpx.Request | None], header: str) -> None:
    """Take the token off requests the caller may keep (a response's, an exception's)."""
    for request in requests:
        if request is not None and request.headers.get("authorization") == header:
            del request.headers["authorization"]


def _request_of(exc: httpx.HTTPError) -> httpx.Request | None:
    try:
        return exc.request
    except RuntimeError:  # an exception made without its request
        return None


class _BorrowedTransport(httpx.BaseTransport):
    """The vault's pooled transport, borrowed: closing the client leaves the pool open."""

    def __init__(self, pool: Callable[[], httpx.Client]) -> None:
        self._pool = pool

    def handle_request(self, req: httpx.Request) -> httpx.Response:
        # the pooled client's transport for this URL (its proxy mount, when it has one)
        transport = self._pool()._transport_for_url(req.url)
        return transport.handle_request(req)

    def close(self) -> None:
        """Nothing: the pool is the vault's, closed with it."""


class ConnectionClient(httpx.Client):
    """An ``httpx.Client`` that sends one user's token to one connection's API and
    retries once, after one refresh, on a 401 (see the module's documentation)."""

    def __init__(
        self,
        connection_id: str,
        credentials: CredentialsSource,
        *,
        base_url: str,
        pool: Callable[[], httpx.Client] | None = None,
        **kwargs: Any,
    ) -> None:
        if pool is not None and "transport" not in kwargs:
            kwargs["transport"] = _BorrowedTransport(pool)
        super().__init__(base_url=base_url, **kwargs)
        self.connection_id = connection_id
        self._credentials = credentials
        self._origin = _origin(self.base_url)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(connection_id={self.connection_id!r}, "
            f"base_url={str(self.base_url)!r})"
        )

    def send(
        self,
        request: httpx.Request,
        *,
        stream: bool = False,
        auth: Any = httpx.USE_CLIENT_DEFAULT,
        follow_redirects: Any = httpx.USE_CLIENT_DEFAULT,
    ) -> httpx.Response:
        if _origin(request.url) != self._origin:
            return super().send(
                request, stream=stream, auth=auth, follow_redirects=follow_redirects
            )
        replayable = _replayable(request)  # before a transport may read a stream into memory
        header = (self._credentials(False)).authorization_header
        sent: list[httpx.Request | None] = [request]
        try:
            request.headers["Authorization"] = header
            response = super().send(
                request, stream=stream, auth=auth, follow_redirects=follow_redirects
            )
            sent += [response.request, *(r.request for r in response.history)]
            if response.status_code != 401 or not replayable:
                return response
            response.close()
            _scrub(sent, header)
            header = (self._credentials(True)).authorization_header
            request.headers["Authorization"] = header
            response = super().send(
                request, stream=stream, auth=auth, follow_redirects=follow_redirects
            )
            sent += [response.request, *(r.request for r in response.history)]
            return response
        except httpx.HTTPError as exc:
            sent.append(_request_of(exc))
            raise
        finally:
            _scrub(sent, header)


def connection_client(
    vault: VaultBase,
    connection_id: str,
    credentials: CredentialsSource,
    *,
    base_url: str | None = None,
    **kwargs: Any,
) -> ConnectionClient:
    """A client for ``connection_id``'s API on the vault's pool. Its base URL: ``base_url``,
    else the connection's ``api_base_url``, else the login's kept field its preset names
    (Salesforce ``instance_url``; read with the credential, so the user must have one);
    none of these is a :class:`ConfigurationError`."""
    conn = vault.connection(connection_id)
    if base_url is None and conn.api_base_url is None and conn.api_base_url_from_extra:
        base_url = conn.api_base((credentials(False)).extra)
    base_url = base_url or conn.api_base_url
    if base_url is None:
        raise ConfigurationError(_NO_BASE.format(id=connection_id))
    if conn.user_agent is not None:
        headers = httpx.Headers(kwargs.get("headers"))
        headers.setdefault("User-Agent", conn.user_agent)
        kwargs["headers"] = headers
    return ConnectionClient(
        connection_id,
        credentials,
        base_url=base_url,
        pool=lambda: vault.provider.client,
        **kwargs,
    )
