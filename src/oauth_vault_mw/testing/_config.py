"""The host app's side of a testing provider: connection entries and whole settings that
point a vault at it, as a mapping, a Flask config or environment variables."""

from __future__ import annotations

import base64
import json
import os
import secrets
from collections.abc import Sequence
from typing import Any

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_SCOPES",
    "as_environ",
    "as_prefixed",
    "connection_entry",
    "settings_mapping",
]

DEFAULT_BASE_URL = "http://localhost"
"""The app origin the helpers assume: ``OAUTH_VAULT_BASE_URL``, and the base URL of the
test clients the pytest plugin makes (plain http is allowed on loopback hosts)."""

DEFAULT_SCOPES = ("openid", "profile", "email", "offline_access")


def connection_entry(
    issuer: str,
    connection_id: str,
    client_id: str,
    client_secret: str | None,
    scopes: Sequence[str],
    fields: dict[str, Any],
) -> dict[str, Any]:
    """One item of the ``connections`` setting: issuer discovery, the client, the scopes."""
    entry: dict[str, Any] = {
        "id": connection_id,
        "issuer": issuer,
        "client_id": client_id,
        "scopes": list(scopes),
    }
    if client_secret is None:
        entry["token_endpoint_auth_method"] = "none"
    else:
        entry["client_secret"] = client_secret
    entry.update(fields)
    return entry


def settings_mapping(
    connections: list[dict[str, Any]],
    *,
    base_url: str,
    prefix: str,
    storage_url: str,
    overrides: dict[str, Any],
) -> dict[str, Any]:
    """Settings for ``Settings.from_mapping`` (or the middleware's ``settings=``): fresh random
    secret and encryption key, the given storage (default ``memory://``)."""
    data: dict[str, Any] = {
        "secret_key": secrets.token_urlsafe(48),
        "encryption_keys": [base64.b64encode(os.urandom(32)).decode("ascii")],
        "base_url": base_url,
        "prefix": prefix,
        "storage_url": storage_url,
        "connections": connections,
    }
    data.update(overrides)
    return data


def as_prefixed(settings: dict[str, Any]) -> dict[str, Any]:
    """The same settings under ``OAUTH_VAULT_*`` keys (a Flask config)."""
    return {f"OAUTH_VAULT_{key.upper()}": value for key, value in settings.items()}


def as_environ(settings: dict[str, Any]) -> dict[str, str]:
    """The same settings as environment variables: strings only (JSON for the connections,
    comma-separated keys)."""
    out: dict[str, str] = {}
    for key, value in as_prefixed(settings).items():
        if isinstance(value, (list, tuple)) and key.endswith("_KEYS"):
            out[key] = ",".join(str(v) for v in value)
        elif isinstance(value, (list, tuple, dict)):
            out[key] = json.dumps(value)
        else:
            out[key] = str(value)
    return out
