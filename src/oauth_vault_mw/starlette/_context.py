"""Per-request state the middleware puts under ``scope["oauth_vault"]``: the request as the
shared routes and the request-authentication policy read it (``_async/routes.py``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from starlette.datastructures import QueryParams
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope

from .._async.routes import AsyncHttpInput
from .._async.service import AsyncServiceAccess
from .._async.vault import AsyncVault
from ..core.errors import BadRequest, MiddlewareNotInstalled
from ..core.inputs import MAX_FORM

__all__ = ["SCOPE_KEY", "RequestContext", "context_of", "cookie_from_headers"]

SCOPE_KEY = "oauth_vault"
MAX_COOKIE_HEADER = 8192


def cookie_from_headers(headers: Iterable[tuple[bytes, bytes]], name: str) -> str | None:
    """One cookie's value from raw ASGI headers; oversized cookie headers are refused.

    A plain split, not ``http.cookies``: the library's cookie values are URL-safe tokens,
    and this runs on every request.
    """
    wanted = name.encode("latin-1")
    for key, value in headers:
        if key != b"cookie":
            continue
        if len(value) > MAX_COOKIE_HEADER:
            raise BadRequest("cookie header too large")
        for part in value.split(b";"):
            found, sep, content = part.strip().partition(b"=")
            if sep and found == wanted:
                return str(content.strip(b'"').decode("latin-1"))
    return None


class RequestContext(AsyncHttpInput):
    """This request as the vault's routes and accessors read it, with its user once looked
    up (the policy is :class:`~oauth_vault_mw._async.routes.AsyncRequestAuth`).

    It sits in the scope, so it keeps no reference back to the scope (that would be a
    reference cycle per request, left to the garbage collector: under load its passes cost
    more than the vault's read), only the scope's headers and query string, and the ASGI
    ``receive`` until :meth:`release` at the end of the request.
    """

    __slots__ = ("_headers", "_query", "_receive")

    def __init__(
        self,
        vault: AsyncVault,
        scope: Scope,
        service: AsyncServiceAccess,
        receive: Receive | None = None,
    ) -> None:
        super().__init__(vault, service)
        self._headers: Iterable[tuple[bytes, bytes]] = scope.get("headers", ())
        self._query: bytes = scope.get("query_string", b"")
        self._receive = receive

    def release(self) -> None:
        """Drop ``receive`` (the server's request object, which holds the scope) once the
        request is answered."""
        self._receive = None

    def header(self, name: str) -> str | None:
        wanted = name.encode("latin-1")
        for key, value in self._headers:
            if key == wanted:
                return str(value.decode("latin-1"))
        return None

    def cookie(self, name: str) -> str | None:
        return cookie_from_headers(self._headers, name)

    def query_string(self) -> bytes:
        return self._query

    def query_items(self) -> list[tuple[str, str]]:
        return QueryParams(self._query).multi_items()

    async def form_body(self) -> bytes:
        receive = self._receive
        if receive is None:
            raise RuntimeError("the request body is not readable here (request answered?)")
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect()
            chunk: bytes = message.get("body", b"")
            body += chunk
            if len(body) > MAX_FORM or not message.get("more_body", False):
                return body  # parse_form refuses an oversized one without the rest


def context_of(scope: Mapping[str, Any]) -> RequestContext:
    ctx = scope.get(SCOPE_KEY)
    if not isinstance(ctx, RequestContext):
        raise MiddlewareNotInstalled()
    return ctx
