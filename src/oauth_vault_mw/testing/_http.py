"""The testing provider's view of HTTP: one request in, one reply out, no framework.

Every way of reaching the provider (the httpx transport, the ASGI app, the threaded loopback
server, :meth:`OpenIDProvider.approve`) turns its request into an :class:`Incoming`, calls
``OpenIDProvider.handle`` and writes the :class:`Reply` back, so all of them behave alike.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote_plus, urlencode, urlsplit

__all__ = [
    "Incoming",
    "ProtocolError",
    "Reply",
    "basic_credentials",
    "html_reply",
    "json_reply",
    "redirect_reply",
    "with_query",
]

NO_STORE = (("cache-control", "no-store"), ("pragma", "no-cache"))


class ProtocolError(Exception):
    """An OAuth error reply: ``error`` code, a description, the status and extra headers."""

    def __init__(
        self,
        error: str,
        description: str,
        status: int = 400,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status
        self.headers = headers

    def reply(self) -> Reply:
        body = {"error": self.error, "error_description": self.description}
        return json_reply(body, self.status, headers=(*self.headers, *NO_STORE))


@dataclass(frozen=True)
class Reply:
    """What the provider answers: a status, headers (lower-case names) and a body."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((value for key, value in self.headers if key == name), None)

    def json(self) -> Any:
        return json.loads(self.body)


def _single(pairs: list[tuple[str, str]], where: str) -> dict[str, str]:
    """RFC 6749 3.1 and 3.2: a parameter sent twice is an invalid request."""
    values: dict[str, str] = {}
    for key, value in pairs:
        if key in values:
            raise ProtocolError("invalid_request", f"{key} is sent more than once in the {where}")
        values[key] = value
    return values


@dataclass(frozen=True)
class Incoming:
    """One request: method, path, query and form parameters, headers (lower-case names)."""

    method: str
    path: str
    query: Mapping[str, str] = field(default_factory=dict)
    form: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def parse(
        cls, method: str, url: str, headers: Mapping[str, str] | None = None, body: bytes = b""
    ) -> Incoming:
        """Read a request; a repeated parameter or an unreadable form: :class:`ProtocolError`."""
        parts = urlsplit(url)
        lowered = {key.lower(): value for key, value in (headers or {}).items()}
        query = _single(parse_qsl(parts.query, keep_blank_values=True), "query")
        form: dict[str, str] = {}
        content_type = lowered.get("content-type", "").split(";", 1)[0].strip().lower()
        if body and content_type == "application/x-www-form-urlencoded":
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                raise ProtocolError("invalid_request", "the form is not UTF-8") from None
            form = _single(parse_qsl(text, keep_blank_values=True), "form")
        return cls(method.upper(), parts.path or "/", query, form, lowered)

    def bearer(self) -> str | None:
        """The token of an ``Authorization: Bearer`` header."""
        scheme, _, token = self.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        return token.strip() or None


def basic_credentials(request: Incoming) -> tuple[str, str] | None:
    """``client_secret_basic``: the id and secret of an ``Authorization: Basic`` header, each
    form-urlencoded before base64 (RFC 6749 2.3.1)."""
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise ProtocolError("invalid_client", "unreadable Basic credentials", 401) from None
    client_id, colon, secret = decoded.partition(":")
    if not colon:
        raise ProtocolError("invalid_client", "unreadable Basic credentials", 401)
    return unquote_plus(client_id), unquote_plus(secret)


def json_reply(body: Any, status: int = 200, *, headers: tuple[tuple[str, str], ...] = ()) -> Reply:
    data = json.dumps(body).encode()
    return Reply(status, (("content-type", "application/json"), *headers), data)


def html_reply(status: int, title: str, text: str) -> Reply:
    """A page for a person at the authorization endpoint (an error that must not redirect)."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    page = f"<!doctype html><title>{title}</title><h1>{title}</h1><p>{escaped}</p>"
    return Reply(status, (("content-type", "text/html; charset=utf-8"),), page.encode())


def with_query(url: str, params: Mapping[str, str]) -> str:
    """``url`` with ``params`` added to its query."""
    joiner = "&" if urlsplit(url).query else "?"
    return f"{url}{joiner}{urlencode(params)}"


def redirect_reply(url: str) -> Reply:
    return Reply(302, (("location", url), *NO_STORE))
