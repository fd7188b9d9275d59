"""Settings from ``OAUTH_VAULT_*`` environment variables (the examples and the CLI use these)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._exceptions import ConfigurationError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib
from .core.config import Settings, parse_settings

__all__ = ["ENV_PREFIX", "SETTING_NAMES", "load_connections", "settings_from_env"]

ENV_PREFIX = "OAUTH_VAULT_"
SETTING_NAMES = (
    "secret_key",
    "encryption_keys",
    "storage_url",
    "base_url",
    "prefix",
    "connections",
    "session_max_age",
    "state_max_age",
    "provider_timeout",
    "refresh_attempts",
    "failure_backoff",
    "clock_skew",
    "lease_ttl",
    "app_token_keys",
    "app_token_lifetime",
)


def load_connections(value: str) -> Any:
    """``OAUTH_VAULT_CONNECTIONS``: a JSON list, or a path to a JSON or TOML file holding it."""
    text = value.strip()
    if text.startswith("["):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigurationError(f"OAUTH_VAULT_CONNECTIONS: invalid JSON ({exc.msg})") from None
    path = Path(text)
    if not path.is_file():
        raise ConfigurationError("OAUTH_VAULT_CONNECTIONS: neither a JSON list nor a file path")
    try:
        if path.suffix == ".toml":
            data: Any = tomllib.loads(path.read_text())
            data = data.get("connections", data) if isinstance(data, dict) else data
        else:
            data = json.loads(path.read_text())
    except (ValueError, OSError) as exc:
        raise ConfigurationError(f"OAUTH_VAULT_CONNECTIONS: cannot read {path}: {exc}") from None
    return data


def settings_from_env(environ: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    for key in SETTING_NAMES:
        value = env.get(ENV_PREFIX + key.upper())
        if value is not None and value != "":
            data[key] = value
    if "connections" in data:
        data["connections"] = load_connections(data["connections"])
    return parse_settings(data)
