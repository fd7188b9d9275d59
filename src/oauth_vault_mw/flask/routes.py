"""The routes of ``core/routes.py`` as a Flask blueprint: each view runs its shared handler
(``_sync/routes.py``) on the request's :class:`~._context.RequestContext` and sends the reply
as a Flask response.

Every rule under the prefix accepts every method and answers JSON itself: a wrong method is
a ``405`` JSON error with ``Allow``, an unknown path a ``404`` JSON error, never Flask's HTML
pages (Flask's routing errors bypass blueprint error handlers, so the rules leave none).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any, cast
from urllib.parse import quote

from flask import Blueprint, Request, Response, request
from flask.sansio.blueprints import BlueprintSetupState
from werkzeug.datastructures import Headers
from werkzeug.routing import BaseConverter, Rule

from .._sync.routes import Handler, RouteHandlers
from .._sync.service import ServiceAccess
from .._sync.vault import Vault
from ..core.errors import VaultError
from ..core.inputs import NO_STORE
from ..core.routes import NOT_FOUND, ROUTES, Reply
from ._context import context_of

__all__ = ["build_blueprint", "error_response", "json_response", "reply_response"]

_LOCATION_SAFE = ":/%#?=@[]!$&'()*+,;"  # what Starlette's RedirectResponse leaves unquoted

_PATH_PARAM = re.compile(r"\{(\w+)\}")  # ROUTES' {name} is Flask's <name>
_REST = "oauth_vault_rest"
_JSON = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
View = Callable[..., Response]


def _prebuilt_headers() -> bool:
    """Whether werkzeug's ``Headers`` keeps its pairs in a plain ``_list`` (it has since
    0.x): then a reply's usual headers, checked once, are handed to each response as a
    copy, instead of being checked again (no newline in a value) on every request."""
    headers = Headers([_JSON_TYPE])
    return isinstance(getattr(headers, "_list", None), list) and list(headers) == [_JSON_TYPE]


_JSON_TYPE = ("Content-Type", "application/json")
_FAST_HEADERS = _prebuilt_headers()
_NO_STORE_JSON = tuple(Headers([_JSON_TYPE, *NO_STORE.items()]).to_wsgi_list())  # checked


def _json_headers(headers: Mapping[str, str] | None) -> Headers:
    """A new ``Headers`` for a JSON response; the no-store ones of every token and user
    reply from the list checked at import."""
    if headers is NO_STORE and _FAST_HEADERS:
        fresh = Headers()
        fresh._list = list(_NO_STORE_JSON)  # see _prebuilt_headers
        return fresh
    return Headers([_JSON_TYPE, *headers.items()] if headers else [_JSON_TYPE])


def json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """JSON as Starlette's ``JSONResponse`` writes it, whatever the app's JSON provider."""
    return Response(_JSON.encode(body).encode(), status, _json_headers(headers))


def error_response(exc: VaultError) -> Response:
    """The library's JSON error: ``{"error", "error_description"}``, status and headers."""
    return json_response(exc.to_dict(), exc.status_code, exc.headers())


def reply_response(reply: Reply) -> Response:
    """A handler's reply as a Flask response, as the Starlette shell sends it: the same JSON
    (or HTML page);
    a redirect with no body, no ``Content-Type`` and ``Location`` quoted as Starlette's
    ``RedirectResponse`` does; its cookies last."""
    if reply.page is not None:  # an HTML page: its headers hold its Content-Type
        response = Response(reply.page.encode("utf-8"), reply.status, Headers(reply.headers))
    elif reply.location is None:
        response = json_response(reply.body, reply.status, reply.headers)
    else:
        location = quote(reply.location, safe=_LOCATION_SAFE)
        response = Response(b"", status=reply.status, headers={"Location": location})
        del response.headers["Content-Type"]
        response.headers.update(reply.headers)
    for cookie in reply.cookies:
        response.headers.add("Set-Cookie", cookie.header())
    return response


class _Rest(BaseConverter):
    """Anything, empty and ``//`` included: the rest of a path nothing else matched."""

    regex = ".*"
    weight = 500
    part_isolating = False


def _not_found(**_: str) -> Response:
    return reply_response(NOT_FOUND)


def _view(service: ServiceAccess, method: str, handler: Handler) -> View:
    """A route's view: the method check (``GET`` allows ``HEAD``), then the route's handler
    on the request's context; a ``VaultError`` becomes the library's JSON error here."""
    allowed = {"GET", "HEAD"} if method == "GET" else {method}
    allow = ", ".join(sorted(allowed))

    def view(**path_params: str) -> Response:
        current: Request = cast(Any, request)._get_current_object()
        if current.method not in allowed:
            body = {"error": "method_not_allowed", "error_description": "Method Not Allowed"}
            return json_response(body, 405, {"Allow": allow})
        try:
            return reply_response(handler(context_of(service, current), path_params))
        except VaultError as exc:  # the app's own VaultError handler must not restyle ours
            return error_response(exc)

    return view


def build_blueprint(vault: Vault, service: ServiceAccess) -> Blueprint:
    """The ``oauth_vault`` blueprint serving ``vault``'s routes (and ``service``'s: service
    credentials, app tokens, JWKS, token exchange) under its prefix."""
    blueprint = Blueprint("oauth_vault", __name__)
    prefix = vault.settings.prefix
    handlers = RouteHandlers(vault, service)
    routes = [
        (
            r.name,
            _PATH_PARAM.sub(r"<\1>", r.path),
            _view(service, r.method, handlers.handler(r.name)),
        )
        for r in ROUTES
    ]
    routes += [("not_found", path, _not_found) for path in ("", f"/<{_REST}:rest>")]

    def setup(state: BlueprintSetupState) -> None:
        # Rules added directly: ``methods=None`` (every method) is what Flask's
        # ``add_url_rule`` cannot express, and it keeps 405s out of Flask's HTML handler.
        base = f"{state.name_prefix}.{state.name}".lstrip(".")
        state.app.url_map.converters.setdefault(_REST, _Rest)
        for name, path, view in routes:
            endpoint = f"{base}.{name}"
            state.app.url_map.add(
                Rule(prefix + path, endpoint=endpoint, methods=None, merge_slashes=False)
            )
            state.app.view_functions[endpoint] = view

    blueprint.record_once(setup)
    return blueprint
