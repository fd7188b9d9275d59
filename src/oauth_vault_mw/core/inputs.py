"""Checks on what a request brings, shared by the Starlette and the Flask shell.

The shells only read the raw parts (query pairs, body bytes, headers); every bound, refusal
and error here is the same for both frameworks.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import parse_qsl, urlsplit

from .errors import BadRequest, ForbiddenOrigin, TokenExchangeError

__all__ = [
    "MAX_FORM",
    "MAX_QUERY",
    "NO_STORE",
    "check_form_type",
    "check_origin",
    "check_query_size",
    "parse_form",
    "unique_params",
]

MAX_QUERY = 8192
MAX_FORM = 16384
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
FORM_TYPE = "application/x-www-form-urlencoded"


def check_query_size(raw: bytes | str) -> None:
    if len(raw) > MAX_QUERY:
        raise BadRequest("query string too long")


def unique_params(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Query parameters, each given once (a repeated one is a 400: no parameter pollution)."""
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            raise BadRequest(f"parameter {name[:64]!r} given twice")
        params[name] = value
    return params


def check_form_type(content_type: str | None) -> None:
    if (content_type or "").split(";")[0].strip().lower() != FORM_TYPE:
        raise TokenExchangeError("invalid_request", f"send {FORM_TYPE}")


def parse_form(body: bytes) -> dict[str, str]:
    """A token-endpoint body (at most ``MAX_FORM`` bytes), each field once."""
    if len(body) > MAX_FORM:
        raise TokenExchangeError("invalid_request", "request body too large")
    fields: dict[str, str] = {}
    for name, value in parse_qsl(body.decode("latin-1"), keep_blank_values=True):
        if name in fields:
            raise TokenExchangeError("invalid_request", f"parameter {name[:64]!r} given twice")
        fields[name] = value
    return fields


def check_origin(origin: str | None, base_url: str) -> None:
    """State-changing routes: an ``Origin`` header, when sent, must be the app's own."""
    if origin is None:
        return
    expected = urlsplit(base_url)
    try:
        got = urlsplit(origin)
    except ValueError:  # "http://[": not an origin at all, so not ours
        raise ForbiddenOrigin() from None
    if (got.scheme, got.netloc) != (expected.scheme, expected.netloc):
        raise ForbiddenOrigin()
