"""What the shells send to a provider and what they hand back: plain values, no I/O.

The core builds :class:`HttpRequest` values (``core.tokens``); a shell sends them with httpx and
returns a :class:`ProviderResponse`, or raises :class:`ProviderCallFailed` when the provider
could not be reached in time. Reading a JSON document (discovery, JWKS, userinfo) is decided
here too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "MAX_DOCUMENT",
    "MAX_REPLY",
    "HttpRequest",
    "ProviderCallFailed",
    "ProviderResponse",
    "json_document",
    "json_headers",
    "json_value",
]

MAX_DOCUMENT = 512 * 1024
"""The largest JSON document (discovery, JWKS, userinfo) read from a provider."""
MAX_REPLY = MAX_DOCUMENT
"""The most bytes of any provider reply read: the shells stop reading there."""


@dataclass(frozen=True)
class HttpRequest:
    """A request for a shell to send. ``form`` and ``headers`` may hold secrets: no repr."""

    method: str
    url: str
    headers: dict[str, str] = field(repr=False, default_factory=dict)
    form: dict[str, str] = field(repr=False, default_factory=dict)


class ProviderCallFailed(Exception):
    """The provider could not be reached, did not answer in time, or sent more than
    :data:`MAX_REPLY` bytes."""


@dataclass(frozen=True)
class ProviderResponse:
    """A provider's reply. ``body`` may hold tokens (a refresh token): no repr."""

    status: int
    content_type: str
    body: bytes = field(repr=False)
    retry_after: str | None = None


def json_headers(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Headers of a JSON ``GET`` at a provider: ``Accept``, plus ``extra`` (the token as the
    provider's identity endpoint wants it, a ``User-Agent`` of its own)."""
    headers = {"Accept": "application/json"}
    if extra:
        headers.update(extra)
    return headers


def json_value(status: int, body: bytes, what: str) -> Any:
    """A provider's JSON document, any JSON value (Xero lists its tenants in an array), or
    :class:`ProviderCallFailed`."""
    if status != 200 or len(body) > MAX_DOCUMENT:
        raise ProviderCallFailed(f"{what}: http {status}")
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise ProviderCallFailed(f"{what}: not JSON") from None


def json_document(status: int, body: bytes, what: str) -> dict[str, Any]:
    """A provider's JSON object (discovery, JWKS, userinfo), or :class:`ProviderCallFailed`."""
    data = json_value(status, body, what)
    if not isinstance(data, dict):
        raise ProviderCallFailed(f"{what}: not a JSON object")
    return data
