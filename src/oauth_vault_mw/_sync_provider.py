"""Provider I/O for the sync shell: one pooled, thread-safe ``httpx.Client`` per vault.

The twin of ``_provider.AsyncProviderClient``; what responses mean is decided in ``core``
and in the shared helpers of ``_provider`` (``endpoints_from_metadata``).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx

from ._exceptions import ProviderUnavailable
from ._provider import (
    METADATA_TTL,
    Endpoints,
    ProviderCallFailed,
    ProviderResponse,
    endpoints_from_metadata,
    json_document,
    json_headers,
    provider_response,
)
from .core.config import ConnectionConfig, Settings
from .core.tokens import HttpRequest

__all__ = ["ProviderCallFailed", "ProviderClient"]


class ProviderClient:
    """Sends the core's requests; caches discovery and JWKS per connection."""

    def __init__(self, settings: Settings, *, transport: httpx.BaseTransport | None = None) -> None:
        self.settings = settings
        self.client = httpx.Client(
            transport=transport,
            timeout=httpx.Timeout(settings.provider_timeout),
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
            follow_redirects=False,
            headers={"User-Agent": "oauth-vault-mw"},
        )
        self._endpoints: dict[str, tuple[float, Endpoints]] = {}
        self._jwks: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return "ProviderClient()"

    def close(self) -> None:
        self.client.close()

    def send(self, request: HttpRequest) -> ProviderResponse:
        try:
            resp = self.client.request(
                request.method, request.url, headers=request.headers, data=request.form or None
            )
        except httpx.HTTPError as exc:
            raise ProviderCallFailed(type(exc).__name__) from None
        return provider_response(resp)

    def get_json(self, url: str, *, bearer: str | None = None) -> dict[str, Any]:
        try:
            resp = self.client.get(url, headers=json_headers(bearer))
        except httpx.HTTPError as exc:
            raise ProviderCallFailed(type(exc).__name__) from None
        return json_document(resp, url.split("?", 1)[0])

    def endpoints(self, conn: ConnectionConfig) -> Endpoints:
        cached = self._endpoints.get(conn.id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        if conn.issuer is None:
            value = endpoints_from_metadata(conn, None)
            self._endpoints[conn.id] = (float("inf"), value)
            return value
        with self._lock:
            cached = self._endpoints.get(conn.id)
            if cached is not None and cached[0] > time.monotonic():
                return cached[1]
            try:
                doc = self.get_json(conn.issuer + "/.well-known/openid-configuration")
            except ProviderCallFailed as exc:
                raise ProviderUnavailable(
                    f"connection {conn.id}: discovery failed ({exc})"
                ) from None
            value = endpoints_from_metadata(conn, doc)
            self._endpoints[conn.id] = (time.monotonic() + METADATA_TTL, value)
            return value

    def jwks(self, conn: ConnectionConfig, *, force: bool = False) -> dict[str, Any]:
        if not force and conn.id in self._jwks:
            return self._jwks[conn.id]
        endpoints = self.endpoints(conn)
        if endpoints.jwks_uri is None:
            raise ProviderUnavailable(f"connection {conn.id}: the issuer publishes no jwks_uri")
        with self._lock:
            try:
                doc = self.get_json(endpoints.jwks_uri)
            except ProviderCallFailed as exc:
                raise ProviderUnavailable(
                    f"connection {conn.id}: JWKS fetch failed ({exc})"
                ) from None
            self._jwks[conn.id] = doc
            return doc
