"""The HTTP routes of DESIGN.md as a Flask blueprint: the twin of ``starlette/routes.py``.

Every rule under the prefix accepts every method and answers JSON itself: a wrong method is
a ``405`` JSON error with ``Allow``, an unknown path a ``404`` JSON error, never Flask's HTML
pages (Flask's routing errors bypass blueprint error handlers, so the rules leave none).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

from flask import Blueprint, Response, request
from flask.sansio.blueprints import BlueprintSetupState
from werkzeug.routing import BaseConverter, Rule
from werkzeug.wsgi import get_input_stream

from .._sync.service import ServiceAccess
from .._sync.vault import Vault
from ..core.cookies import SESSION_COOKIE, STATE_COOKIE, CookieSpec
from ..core.errors import (
    NotAuthenticated,
    VaultError,
)
from ..core.flow import check_return_to
from ..core.inputs import (
    MAX_FORM,
    NO_STORE,
    check_form_type,
    check_origin,
    check_query_size,
    parse_form,
    unique_params,
)
from ._context import credentials as user_credentials
from ._context import read_cookie, require_user_id

__all__ = ["build_blueprint", "error_response", "json_response"]

_LOCATION_SAFE = ":/%#?=@[]!$&'()*+,;"  # what Starlette's RedirectResponse leaves unquoted

_REST = "oauth_vault_rest"
_JSON = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
Handler = Callable[..., Response]
Cookies = tuple[CookieSpec, ...] | list[CookieSpec]


def json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """JSON as Starlette's ``JSONResponse`` writes it, whatever the app's JSON provider."""
    response = Response(_JSON.encode(body), status=status, mimetype="application/json")
    if headers:
        response.headers.extend(headers)
    return response


def error_response(exc: VaultError) -> Response:
    """The library's JSON error: ``{"error", "error_description"}``, status and headers."""
    return json_response(exc.to_dict(), exc.status_code, exc.headers())


def _redirect(url: str, status: int, cookies: Cookies) -> Response:
    response = Response(b"", status=status, headers={"Location": quote(url, safe=_LOCATION_SAFE)})
    del response.headers["Content-Type"]  # an empty redirect, as Starlette's
    response.headers.update(NO_STORE)
    _set_cookies(response, cookies)
    return response


def _set_cookies(response: Response, cookies: Cookies) -> None:
    for spec in cookies:
        response.headers.add("Set-Cookie", spec.header())


def _query() -> dict[str, str]:
    check_query_size(request.query_string)
    return unique_params(request.args.items(multi=True))


def _form() -> dict[str, str]:
    """A bounded ``application/x-www-form-urlencoded`` body, each field once.

    Read from the WSGI input itself, so the app's ``MAX_CONTENT_LENGTH`` and Flask's form
    parser play no part: the bound and the errors are those of the Starlette shell.
    """
    check_form_type(request.headers.get("Content-Type"))
    stream = get_input_stream(request.environ, max_content_length=None)
    body = b""
    while chunk := stream.read(MAX_FORM + 1 - len(body)):
        body += chunk
        if len(body) > MAX_FORM:
            break  # parse_form refuses it without reading the rest
    return parse_form(body)


def _check_origin(vault: Vault) -> None:
    check_origin(request.headers.get("Origin"), vault.settings.base_url)


def _handlers(vault: Vault, service: ServiceAccess) -> list[tuple[str, str, str, Handler]]:
    """(endpoint, path under the prefix, method, handler) for every route."""

    def begin(connection_id: str, *, connect: bool) -> Response:
        params = _query()
        vault.connection(connection_id)
        return_to = check_return_to(params.get("return_to"))
        user_id = require_user_id(service, request) if connect else None
        url, cookie = vault.begin_login(connection_id, return_to=return_to, user_id=user_id)
        return _redirect(url, 302, [cookie])

    def login(connection_id: str) -> Response:
        return begin(connection_id, connect=False)

    def connect(connection_id: str) -> Response:
        return begin(connection_id, connect=True)

    def callback(connection_id: str) -> Response:
        params = _query()
        result = vault.complete_login(
            connection_id,
            params,
            state_cookie=read_cookie(request, STATE_COOKIE),
            session_cookie=read_cookie(request, SESSION_COOKIE),
        )
        return _redirect(result.return_to, 303, result.cookies)

    def logout() -> Response:
        _check_origin(vault)
        cookie = vault.logout(read_cookie(request, SESSION_COOKIE))
        response = json_response({"logged_out": True}, headers=NO_STORE)
        _set_cookies(response, [cookie])
        return response

    def me() -> Response:
        user_id = require_user_id(service, request)
        return json_response(vault.me(user_id), headers=NO_STORE)

    def credentials(connection_id: str) -> Response:
        vault.connection(connection_id)  # an unknown connection is a 404 before any 401
        creds = user_credentials(service, request, connection_id)
        return json_response(creds.to_dict(), headers=NO_STORE)

    def service_credentials(connection_id: str, user_id: str) -> Response:
        principal = service.authenticate(request.headers.get("Authorization"))
        creds = service.credentials_for(principal, connection_id, user_id)
        return json_response(creds.to_dict(), headers=NO_STORE)

    def app_token() -> Response:
        # The browser session only: an app token cannot renew itself past logout.
        user_id = vault.user_for_session(read_cookie(request, SESSION_COOKIE))
        if user_id is None:
            raise NotAuthenticated("app tokens are issued to a session (log in first)")
        return json_response(service.issue_app_token(user_id), headers=NO_STORE)

    def jwks() -> Response:
        cache = {"Cache-Control": "public, max-age=300"}
        return json_response(service.app_tokens.jwks(), headers=cache)

    def token_exchange() -> Response:
        form = _form()
        answer = service.exchange(form, request.headers.get("Authorization"))
        return json_response(answer, headers=NO_STORE)

    def disconnect(connection_id: str) -> Response:
        _check_origin(vault)
        vault.connection(connection_id)
        user_id = require_user_id(service, request)
        revoked = vault.disconnect(connection_id, user_id)
        return json_response({"connection_id": connection_id, "revoked": revoked})

    cid = "<connection_id>"
    of_user = f"/connections/{cid}/users/<user_id>/credentials"
    return [
        ("login", f"/login/{cid}", "GET", login),
        ("connect", f"/connect/{cid}", "GET", connect),
        ("callback", f"/callback/{cid}", "GET", callback),
        ("logout", "/logout", "POST", logout),
        ("me", "/me", "GET", me),
        ("credentials", f"/connections/{cid}/credentials", "GET", credentials),
        ("service_credentials", of_user, "GET", service_credentials),
        ("app_token", "/app-token", "GET", app_token),
        ("jwks", "/.well-known/jwks.json", "GET", jwks),
        ("token", "/token", "POST", token_exchange),
        ("disconnect", f"/connections/{cid}", "DELETE", disconnect),
    ]


class _Rest(BaseConverter):
    """Anything, empty and ``//`` included: the rest of a path nothing else matched."""

    regex = ".*"
    weight = 500
    part_isolating = False


def _not_found(**_: str) -> Response:
    return json_response({"error": "not_found", "error_description": "no such route"}, 404)


def _view(method: str, handler: Handler) -> Handler:
    allowed = {"GET", "HEAD"} if method == "GET" else {method}
    allow = ", ".join(sorted(allowed))

    def view(**kwargs: str) -> Response:
        if request.method not in allowed:
            body = {"error": "method_not_allowed", "error_description": "Method Not Allowed"}
            return json_response(body, 405, {"Allow": allow})
        try:
            return handler(**kwargs)
        except VaultError as exc:  # the app's own VaultError handler must not restyle ours
            return error_response(exc)

    view.__name__ = handler.__name__
    return view


def build_blueprint(vault: Vault, service: ServiceAccess) -> Blueprint:
    """The ``oauth_vault`` blueprint serving ``vault``'s routes (and ``service``'s: service
    credentials, app tokens, JWKS, token exchange) under its prefix."""
    blueprint = Blueprint("oauth_vault", __name__)
    prefix = vault.settings.prefix
    routes = [
        (name, path, _view(method, handler))
        for name, path, method, handler in _handlers(vault, service)
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
