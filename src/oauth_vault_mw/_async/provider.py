"""Provider I/O: one pooled httpx client, discovery and JWKS cached per connection.

The async client keeps one ``AsyncClient`` per event loop (such a client is bound to the loop
it was made on); the generated sync twin keeps one thread-safe ``Client`` for all threads.

Every call is bounded as a whole by ``provider_timeout``: connect, send and every byte of the
reply (``asyncio.timeout`` here; in the sync twin, socket operations clamped to the thread's
deadline by ``oauth_vault_mw._deadline``), so a provider that trickles its reply cannot hold a
refresh past its lease. The reply is read as a stream and refused past ``MAX_REPLY`` bytes
without reading the rest. Transport failures become
:class:`~oauth_vault_mw.core.http.ProviderCallFailed` for the vault to classify; what a
response means is decided in ``core`` (``core.tokens``, ``core.discovery``, ``core.http``).

Each call is one step of the vault's metrics (``metrics.provider_call``: its latency, its
error class from ``core.telemetry``, a span), labelled with the connection and what the call
is for (``operation``: ``refresh``, ``code_exchange``, ``userinfo``, ``discovery``...).
"""

from __future__ import annotations

import asyncio  # unasync: remove

# unasync: sync-only: import threading
import contextlib
import logging
import time
import weakref  # unasync: remove
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

# unasync: sync-only: from .._deadline import call_deadline, check_deadline, with_deadlines
from .._streams import with_cheap_idle_checks  # unasync: remove
from ..core.config import Settings
from ..core.connections import ConnectionConfig
from ..core.discovery import (
    METADATA_TTL,
    Endpoints,
    discovery_url,
    endpoints_from_metadata,
    oauth_metadata_urls,
    with_oauth_metadata,
)
from ..core.errors import ProviderUnavailable
from ..core.http import (
    MAX_REPLY,
    HttpRequest,
    ProviderCallFailed,
    ProviderResponse,
    json_headers,
    json_value,
)
from ..core.telemetry import reply_error_class
from ..metrics import NO_METRICS, Metrics

__all__ = ["AsyncProviderClient", "masked_in_http_logs"]

_HTTP_LOG = logging.getLogger("httpx")  # logs each request's URL at INFO


class _Mask(logging.Filter):
    """Replaces one secret, plain or URL-quoted, in the arguments of a log record."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self.forms = (quote(secret, safe=""), secret)

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(self._masked(arg) for arg in record.args)
        return True

    def _masked(self, arg: object) -> object:
        if not isinstance(arg, (str, httpx.URL)):
            return arg
        text = str(arg)
        for form in self.forms:
            text = text.replace(form, "[token]")
        return text


@contextlib.contextmanager
def masked_in_http_logs(secret: str | None) -> Iterator[None]:
    """While a request whose URL holds ``secret`` is sent (HubSpot's token information
    endpoint names the token in its path), httpx's request log line does not show it."""
    if not secret:
        yield
        return
    mask = _Mask(secret)
    _HTTP_LOG.addFilter(mask)
    try:
        yield
    finally:
        _HTTP_LOG.removeFilter(mask)


class AsyncProviderClient:
    """Sends the core's requests; caches discovery and JWKS, each behind a per-connection lock."""

    def __init__(
        self,
        settings: Settings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        metrics: Metrics = NO_METRICS,
    ) -> None:
        self.settings = settings
        self._transport = transport
        self._metrics = metrics
        self._clients: weakref.WeakKeyDictionary[Any, httpx.AsyncClient]  # unasync: remove
        self._clients = weakref.WeakKeyDictionary()  # unasync: remove
        # unasync: sync-only: self._client = self._new_client()
        self._endpoints: dict[str, tuple[float, Endpoints]] = {}
        self._jwks: dict[str, dict[str, Any]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def __repr__(self) -> str:
        return "AsyncProviderClient()"

    def _new_client(self) -> httpx.AsyncClient:
        client = httpx.AsyncClient(
            transport=self._transport,
            timeout=httpx.Timeout(self.settings.provider_timeout),
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
            follow_redirects=False,
            headers={"User-Agent": "oauth-vault-mw"},
        )
        with_cheap_idle_checks(client)  # unasync: remove
        # unasync: sync-only: with_deadlines(client)
        return client

    @property
    def client(self) -> httpx.AsyncClient:
        """The pooled client (the running event loop's, for the async client)."""
        loop = asyncio.get_running_loop()  # unasync: remove
        client = self._clients.get(loop)  # unasync: remove
        if client is None:  # unasync: remove
            client = self._clients[loop] = self._new_client()  # unasync: remove
        # unasync: sync-only: client = self._client
        return client

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()  # unasync: remove
        client = self._clients.pop(loop, None)  # unasync: remove
        if client is not None:  # unasync: remove
            await client.aclose()  # unasync: remove
        # unasync: sync-only: self._client.close()

    async def send(
        self, request: HttpRequest, *, connection_id: str = "", operation: str = "other"
    ) -> ProviderResponse:
        """Send ``request``; ``connection_id`` and ``operation`` label it in the metrics."""
        return await self._exchange(
            request.method,
            request.url,
            headers=request.headers,
            form=request.form or None,
            connection_id=connection_id,
            operation=operation,
        )

    def _deadline(self, seconds: float) -> contextlib.AbstractAsyncContextManager[object]:
        """The whole call ends within ``seconds``, or raises a timeout: :class:`TimeoutError`
        from ``asyncio.timeout``, an httpx timeout from the sync twin's streams."""
        return asyncio.timeout(seconds)  # unasync: remove
        # unasync: sync-only: return call_deadline(seconds)

    async def _exchange(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        form: Mapping[str, str] | None = None,
        connection_id: str = "",
        operation: str = "other",
    ) -> ProviderResponse:
        """One request and its whole reply within ``provider_timeout``, at most ``MAX_REPLY``
        bytes of it; else :class:`ProviderCallFailed`."""
        timeout = self.settings.provider_timeout
        metrics = self._metrics
        with metrics.provider_call(connection_id, operation, _host(url)) as step:
            try:
                async with (
                    self._deadline(timeout),
                    self.client.stream(method, url, headers=headers, data=form) as resp,
                ):
                    body = await _read_capped(resp)
            except ProviderCallFailed:
                step.note("too_large")
                raise
            except (httpx.HTTPError, TimeoutError) as exc:
                if isinstance(exc, (httpx.TimeoutException, TimeoutError)):
                    step.note("timeout")
                    raise ProviderCallFailed(f"no complete reply within {timeout:g} s") from None
                step.note("connect" if isinstance(exc, httpx.ConnectError) else "transport")
                raise ProviderCallFailed(type(exc).__name__) from None
            if metrics.enabled:
                content_type = resp.headers.get("content-type", "")
                failure = reply_error_class(operation, resp.status_code, content_type, body)
                step.note(failure or "ok", status_code=resp.status_code)
        return ProviderResponse(
            resp.status_code,
            resp.headers.get("content-type", ""),
            body,
            resp.headers.get("retry-after"),
        )

    async def get_json(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        label: str | None = None,
        hidden: str | None = None,
        connection_id: str = "",
        operation: str = "other",
    ) -> dict[str, Any]:
        """A provider's JSON object; ``label`` names it in failures instead of the URL (a URL
        may hold a token: ``hidden``, masked in the HTTP client's own log records);
        ``connection_id`` and ``operation`` label the call in the metrics."""
        data = await self.get_json_value(
            url,
            headers=headers,
            label=label,
            hidden=hidden,
            connection_id=connection_id,
            operation=operation,
        )
        if not isinstance(data, dict):
            raise ProviderCallFailed(f"{label or url.split('?', 1)[0]}: not a JSON object")
        return data

    async def get_json_value(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        label: str | None = None,
        hidden: str | None = None,
        connection_id: str = "",
        operation: str = "other",
    ) -> Any:
        """:meth:`get_json` for a document that may be any JSON value (an array)."""
        with masked_in_http_logs(hidden):
            resp = await self._exchange(
                "GET",
                url,
                headers=json_headers(headers),
                connection_id=connection_id,
                operation=operation,
            )
        return json_value(resp.status, resp.body, label or url.split("?", 1)[0])

    def _lock(self, name: str) -> asyncio.Lock:
        """The lock of one connection's discovery or JWKS: one fetch at a time per document."""
        lock = self._locks.get(name)
        if lock is None:
            lock = self._locks.setdefault(name, asyncio.Lock())
        return lock

    async def endpoints(self, conn: ConnectionConfig) -> Endpoints:
        cached = self._endpoints.get(conn.id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        if conn.issuer is None:
            value = endpoints_from_metadata(conn, None)
            self._endpoints[conn.id] = (float("inf"), value)
            return value
        async with self._lock("discovery:" + conn.id):
            cached = self._endpoints.get(conn.id)
            if cached is not None and cached[0] > time.monotonic():
                return cached[1]
            try:
                doc = await self.get_json(
                    discovery_url(conn.issuer), connection_id=conn.id, operation="discovery"
                )
            except ProviderCallFailed as exc:
                raise ProviderUnavailable(
                    f"connection {conn.id}: discovery failed ({exc})"
                ) from None
            if conn.revocation_url is None and "revocation_endpoint" not in doc:
                metadata = await self._oauth_metadata(conn.id, conn.issuer)
                doc = with_oauth_metadata(doc, metadata, conn.issuer)
            value = endpoints_from_metadata(conn, doc)
            self._endpoints[conn.id] = (time.monotonic() + METADATA_TTL, value)
            return value

    async def _oauth_metadata(self, connection_id: str, issuer: str) -> dict[str, Any] | None:
        """The issuer's RFC 8414 metadata, where it publishes one (else None: optional)."""
        for url in oauth_metadata_urls(issuer):
            try:
                return await self.get_json(
                    url,
                    label="authorization server metadata",
                    connection_id=connection_id,
                    operation="metadata",
                )
            except ProviderCallFailed:
                continue
        return None

    async def jwks(self, conn: ConnectionConfig, *, force: bool = False) -> dict[str, Any]:
        if not force and conn.id in self._jwks:
            return self._jwks[conn.id]
        endpoints = await self.endpoints(conn)
        if endpoints.jwks_uri is None:
            raise ProviderUnavailable(f"connection {conn.id}: the issuer publishes no jwks_uri")
        async with self._lock("jwks:" + conn.id):
            try:
                doc = await self.get_json(
                    endpoints.jwks_uri, connection_id=conn.id, operation="jwks"
                )
            except ProviderCallFailed as exc:
                raise ProviderUnavailable(
                    f"connection {conn.id}: JWKS fetch failed ({exc})"
                ) from None
            self._jwks[conn.id] = doc
            return doc


def _host(url: str) -> str:
    """A provider URL's host name: all of it a span may show (a path or a query may hold a
    token: HubSpot's token information endpoint names the token in its path)."""
    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""


async def _read_capped(resp: httpx.Response) -> bytes:
    """The reply's body, decoded, streamed until :data:`MAX_REPLY` bytes: a bigger one is
    refused before the rest is read (its ``Content-Length`` alone, when it gives one)."""
    length = resp.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_REPLY:
        raise ProviderCallFailed(f"reply of {length} bytes, over {MAX_REPLY}")
    body = bytearray()
    async for chunk in resp.aiter_bytes():
        body += chunk
        if len(body) > MAX_REPLY:
            raise ProviderCallFailed(f"reply over {MAX_REPLY} bytes")
        # unasync: sync-only: check_deadline()
    return bytes(body)
