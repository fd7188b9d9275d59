"""Provider I/O for the async shell: one pooled httpx.AsyncClient per event loop.

Discovery documents and JWKS are cached per connection; every call is bounded by
``provider_timeout``. Transport failures become :class:`ProviderCallFailed` for the vault to
classify; nothing here decides what a response means (that is ``core.tokens``).
"""

from __future__ import annotations

import asyncio
import json
import time
import weakref
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from ._exceptions import ProviderUnavailable
from .core.config import ConnectionConfig, Settings, is_loopback_host
from .core.tokens import HttpRequest

__all__ = [
    "AsyncProviderClient",
    "Endpoints",
    "ProviderCallFailed",
    "ProviderResponse",
    "endpoints_from_metadata",
    "json_document",
    "json_headers",
    "provider_response",
]

METADATA_TTL = 3600.0
MAX_DOCUMENT = 512 * 1024


class ProviderCallFailed(Exception):
    """The provider could not be reached or did not answer in time."""


@dataclass(frozen=True)
class ProviderResponse:
    status: int
    content_type: str
    body: bytes
    retry_after: str | None


@dataclass(frozen=True)
class Endpoints:
    """A connection's endpoints: its settings, completed by OIDC discovery."""

    issuer: str | None
    authorize_url: str
    token_url: str
    userinfo_url: str | None
    revocation_url: str | None
    jwks_uri: str | None
    iss_parameter_supported: bool
    id_token_algorithms: tuple[str, ...]


def endpoints_from_metadata(conn: ConnectionConfig, doc: dict[str, Any] | None) -> Endpoints:
    """Merge explicit settings over a discovery document (pure; also used by the sync shell)."""
    doc = doc or {}
    if conn.issuer is not None:
        found = doc.get("issuer")
        same = isinstance(found, str) and found.rstrip("/") == conn.issuer.rstrip("/")
        templated = isinstance(found, str) and "{tenantid}" in found
        if not (same or templated):
            raise ProviderUnavailable(
                f"connection {conn.id}: the discovery document names another issuer"
            )
    algs = doc.get("id_token_signing_alg_values_supported") or ["RS256"]

    def _s(name: str) -> str | None:
        value = doc.get(name)
        if not isinstance(value, str):
            return None
        parts = urlsplit(value)
        secure = parts.scheme == "https" or (
            parts.scheme == "http" and is_loopback_host(parts.hostname)
        )
        if not secure:  # discovered endpoints obey the rule configured ones do
            raise ProviderUnavailable(f"connection {conn.id}: discovery names a non-https {name}")
        return value

    authorize = conn.authorize_url or _s("authorization_endpoint")
    token = conn.token_url or _s("token_endpoint")
    if authorize is None or token is None:
        raise ProviderUnavailable(f"connection {conn.id}: the discovery document lacks endpoints")
    return Endpoints(
        issuer=_s("issuer") or conn.issuer,
        authorize_url=authorize,
        token_url=token,
        userinfo_url=conn.userinfo_url or _s("userinfo_endpoint"),
        revocation_url=conn.revocation_url or _s("revocation_endpoint"),
        jwks_uri=_s("jwks_uri"),
        iss_parameter_supported=doc.get("authorization_response_iss_parameter_supported") is True,
        id_token_algorithms=tuple(a for a in algs if isinstance(a, str)),
    )


def provider_response(resp: httpx.Response) -> ProviderResponse:
    return ProviderResponse(
        resp.status_code,
        resp.headers.get("content-type", ""),
        resp.content,
        resp.headers.get("retry-after"),
    )


def json_headers(bearer: str | None) -> dict[str, str]:
    headers = {"Accept": "application/json"}
    if bearer is not None:
        headers["Authorization"] = f"Bearer {bearer}"
    return headers


def json_document(resp: httpx.Response, what: str) -> dict[str, Any]:
    if resp.status_code != 200 or len(resp.content) > MAX_DOCUMENT:
        raise ProviderCallFailed(f"{what}: http {resp.status_code}")
    try:
        data = json.loads(resp.content)
    except ValueError:
        raise ProviderCallFailed(f"{what}: not JSON") from None
    if not isinstance(data, dict):
        raise ProviderCallFailed(f"{what}: not a JSON object")
    return data


class AsyncProviderClient:
    """Sends the core's requests; caches discovery and JWKS per connection."""

    def __init__(
        self, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.settings = settings
        self._transport = transport
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient]
        self._clients = weakref.WeakKeyDictionary()
        self._endpoints: dict[str, tuple[float, Endpoints]] = {}
        self._jwks: dict[str, dict[str, Any]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def __repr__(self) -> str:
        return "AsyncProviderClient()"

    @property
    def client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = httpx.AsyncClient(
                transport=self._transport,
                timeout=httpx.Timeout(self.settings.provider_timeout),
                limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
                follow_redirects=False,
                headers={"User-Agent": "oauth-vault-mw"},
            )
            self._clients[loop] = client
        return client

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        client = self._clients.pop(loop, None)
        if client is not None:
            await client.aclose()

    async def send(self, request: HttpRequest) -> ProviderResponse:
        try:
            resp = await self.client.request(
                request.method,
                request.url,
                headers=request.headers,
                data=request.form or None,
            )
        except httpx.HTTPError as exc:
            raise ProviderCallFailed(type(exc).__name__) from None
        return provider_response(resp)

    async def get_json(self, url: str, *, bearer: str | None = None) -> dict[str, Any]:
        try:
            resp = await self.client.get(url, headers=json_headers(bearer))
        except httpx.HTTPError as exc:
            raise ProviderCallFailed(type(exc).__name__) from None
        return json_document(resp, url.split("?", 1)[0])

    def _lock(self, name: str) -> asyncio.Lock:
        lock = self._locks.get(name)
        if lock is None:
            lock = self._locks[name] = asyncio.Lock()
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
            url = conn.issuer + "/.well-known/openid-configuration"
            try:
                doc = await self.get_json(url)
            except ProviderCallFailed as exc:
                raise ProviderUnavailable(
                    f"connection {conn.id}: discovery failed ({exc})"
                ) from None
            value = endpoints_from_metadata(conn, doc)
            self._endpoints[conn.id] = (time.monotonic() + METADATA_TTL, value)
            return value

    async def jwks(self, conn: ConnectionConfig, *, force: bool = False) -> dict[str, Any]:
        if not force and conn.id in self._jwks:
            return self._jwks[conn.id]
        endpoints = await self.endpoints(conn)
        if endpoints.jwks_uri is None:
            raise ProviderUnavailable(f"connection {conn.id}: the issuer publishes no jwks_uri")
        async with self._lock("jwks:" + conn.id):
            try:
                doc = await self.get_json(endpoints.jwks_uri)
            except ProviderCallFailed as exc:
                raise ProviderUnavailable(
                    f"connection {conn.id}: JWKS fetch failed ({exc})"
                ) from None
            self._jwks[conn.id] = doc
            return doc
