"""Per-request state of the Flask shell: the app's vault and service access, and the
request's :class:`RequestContext` (its input to the shared routes, its user once looked up)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flask import Flask, Request
from werkzeug.wsgi import get_input_stream

from .._sync.routes import HttpInput
from .._sync.service import ServiceAccess
from .._sync.vault import Vault
from ..core.errors import BadRequest, MiddlewareNotInstalled
from ..core.inputs import MAX_FORM

__all__ = [
    "EXTENSION_KEY",
    "SERVICE_KEY",
    "USER_CACHE_KEY",
    "RequestContext",
    "context_of",
    "cookie_from",
    "service_of",
    "vault_of",
]

EXTENSION_KEY = "oauth_vault"
SERVICE_KEY = "oauth_vault_service"
MAX_COOKIE_HEADER = 8192
USER_CACHE_KEY = "oauth_vault_mw.user"  # in the WSGI environ: the RequestContext


def vault_of(app: Flask) -> Vault:
    """The vault :class:`OAuthVault` put on ``app``; ``MiddlewareNotInstalled`` otherwise."""
    vault = app.extensions.get(EXTENSION_KEY)
    if not isinstance(vault, Vault):
        raise MiddlewareNotInstalled()
    return vault


def service_of(app: Flask) -> ServiceAccess:
    """The service access :class:`OAuthVault` put on ``app`` next to its vault."""
    service = app.extensions.get(SERVICE_KEY)
    if not isinstance(service, ServiceAccess):
        raise MiddlewareNotInstalled()
    return service


def cookie_from(environ: dict[str, Any], name: str) -> str | None:
    """One cookie's value; an oversized ``Cookie`` header is refused (as in Starlette).

    Read from the raw header, as the Starlette shell reads it, without splitting it into
    every cookie the browser sends: the first ``name=value`` pair whose name, once
    stripped, is ``name`` exactly; the value stripped of trailing spaces and quotes. The
    library's cookie values are URL-safe tokens, and this runs on every request.
    """
    header: str | None = environ.get("HTTP_COOKIE")
    if not header:
        return None
    if len(header) > MAX_COOKIE_HEADER:  # WSGI headers are latin-1: one char, one byte
        raise BadRequest("cookie header too large")
    at = header.find(name)
    while at >= 0:
        end = at + len(name)
        if header.startswith("=", end):
            start = header.rfind(";", 0, at) + 1  # where this pair begins
            if start == at or header[start:at].isspace():
                stop = header.find(";", end)
                value = header[end + 1 : stop] if stop >= 0 else header[end + 1 :]
                return value.rstrip().strip('"')
        at = header.find(name, at + 1)
    return None


def _environ_key(name: str) -> str:
    """Where the WSGI environ holds the header ``name`` (as werkzeug's ``EnvironHeaders``)."""
    key = name.upper().replace("-", "_")
    return key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key


_ENVIRON_KEYS = {name: _environ_key(name) for name in ("authorization", "content-type", "origin")}


class RequestContext(HttpInput):
    """This request as the vault's routes and accessors read it, with its user once looked
    up (the policy is :class:`~oauth_vault_mw._sync.routes.RequestAuth`). Kept in the
    request's WSGI environ (:func:`context_of`)."""

    __slots__ = ("_environ", "_request")

    def __init__(
        self, service: ServiceAccess, request: Request, environ: dict[str, Any] | None = None
    ) -> None:
        super().__init__(service.vault, service)
        self._request = request
        self._environ: dict[str, Any] = request.environ if environ is None else environ

    def header(self, name: str) -> str | None:
        key = _ENVIRON_KEYS.get(name) or _environ_key(name)
        value: str | None = self._environ.get(key)
        return value

    def cookie(self, name: str) -> str | None:
        return cookie_from(self._environ, name)

    def query_string(self) -> bytes:
        return self._request.query_string

    def query_items(self) -> Iterable[tuple[str, str]]:
        return self._request.args.items(multi=True)

    def form_body(self) -> bytes:
        """Read from the WSGI input itself, so the app's ``MAX_CONTENT_LENGTH`` and Flask's
        form parser play no part: the bound and the errors are those of the Starlette shell."""
        stream = get_input_stream(self._environ, max_content_length=None)
        body = b""
        while chunk := stream.read(MAX_FORM + 1 - len(body)):
            body += chunk
            if len(body) > MAX_FORM:
                break  # parse_form refuses it without reading the rest
        return body


def context_of(service: ServiceAccess, request: Request) -> RequestContext:
    """The :class:`RequestContext` of ``request`` (the request itself, not Flask's proxy),
    made on first use. It lives in the WSGI environ, which belongs to one request, unlike
    ``g``, which an app context around several test requests shares."""
    environ = request.environ
    found: RequestContext | None = environ.get(USER_CACHE_KEY)
    if found is None:
        found = environ[USER_CACHE_KEY] = RequestContext(service, request, environ)
    return found
