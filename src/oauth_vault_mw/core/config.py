"""Settings as a frozen value, validated once at start-up, and where they come from.

Every check raises :class:`ConfigurationError` with one line that starts with the name of the
setting at fault (``OAUTH_VAULT_ENCRYPTION_KEYS: ...``, ``connections[0].client_id: ...``).
The environment and a Flask config are the same kind of source, a mapping with
``OAUTH_VAULT_*`` keys: :func:`settings_from_prefixed` reads either.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

from .client_auth import check_client_auth
from .connections import ConnectionConfig, check_int, is_loopback_host, parse_connection
from .errors import ConfigurationError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "ENV_PREFIX",
    "SETTING_NAMES",
    "ConnectionConfig",
    "Settings",
    "is_loopback_host",
    "load_connections",
    "parse_settings",
    "settings_from_prefixed",
]

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
    "error_url",
)
_DEFAULT_STORAGE = "sqlite:///oauth_vault.db"


@dataclass(frozen=True)
class Settings:
    """Everything the vault needs; build it with :func:`parse_settings` or ``Settings.from_env``."""

    secret_key: str = field(repr=False)
    encryption_keys: tuple[bytes, ...] = field(repr=False)
    base_url: str
    connections: tuple[ConnectionConfig, ...]
    storage_url: str = _DEFAULT_STORAGE
    prefix: str = "/auth"
    session_max_age: int = 14 * 24 * 3600
    state_max_age: int = 600
    provider_timeout: float = 5.0
    refresh_attempts: int = 3
    failure_backoff: float = 10.0
    lease_ttl: float = 15.0
    app_token_keys: tuple[bytes, ...] = field(repr=False, default=())
    app_token_lifetime: int = 300
    clock_skew: int = 120
    error_url: str | None = None
    """Where a failed login or connect in a browser is sent (with ``error`` and
    ``error_description``); None: the library's own small HTML page."""

    @property
    def secure_cookies(self) -> bool:
        return self.base_url.startswith("https://")

    def connection(self, connection_id: str) -> ConnectionConfig | None:
        for conn in self.connections:
            if conn.id == connection_id:
                return conn
        return None

    def redirect_uri(self, connection_id: str) -> str:
        return f"{self.base_url}{self.prefix}/callback/{connection_id}"

    def login_url(self, connection_id: str) -> str:
        return f"{self.base_url}{self.prefix}/login/{connection_id}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``OAUTH_VAULT_*`` variables of ``environ`` (default ``os.environ``)."""
        return settings_from_prefixed(os.environ if environ is None else environ)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Settings:
        return parse_settings(data)


def _decode_key(index: int, raw: str, setting: str = "OAUTH_VAULT_ENCRYPTION_KEYS") -> bytes:
    try:
        padded = raw.strip() + "=" * (-len(raw.strip()) % 4)
        key = base64.b64decode(padded, altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise ConfigurationError(f"{setting}: key {index + 1} is not valid base64") from None
    if len(key) != 32:
        raise ConfigurationError(
            f"{setting}: key {index + 1} decodes to {len(key)} bytes, expected 32"
        )
    return key


def parse_settings(data: Mapping[str, Any]) -> Settings:
    """Validate a mapping with the keys of DESIGN.md (lower-case, without ``OAUTH_VAULT_``)."""
    secret = data.get("secret_key")
    if not isinstance(secret, str) or len(secret) < 32:
        raise ConfigurationError("OAUTH_VAULT_SECRET_KEY: required, at least 32 characters")
    raw_keys = data.get("encryption_keys")
    if isinstance(raw_keys, str):
        raw_keys = [k for k in raw_keys.split(",") if k.strip()]
    if not raw_keys or not isinstance(raw_keys, Sequence):
        raise ConfigurationError("OAUTH_VAULT_ENCRYPTION_KEYS: required, base64 32-byte keys")
    keys = tuple(
        k if isinstance(k, bytes) and len(k) == 32 else _decode_key(i, str(k))
        for i, k in enumerate(raw_keys)
    )
    base_url = data.get("base_url")
    if not isinstance(base_url, str) or not base_url:
        raise ConfigurationError("OAUTH_VAULT_BASE_URL: required, the app's public origin")
    parts = urlsplit(base_url)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.path not in ("", "/")
        or any(c in base_url for c in "?#@")  # query, fragment, credentials: not an origin
    ):
        raise ConfigurationError(
            "OAUTH_VAULT_BASE_URL: must be an origin like https://app.example.com"
        )
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ConfigurationError("OAUTH_VAULT_BASE_URL: plain http is only allowed on loopback")
    prefix = data.get("prefix", "/auth")
    if not isinstance(prefix, str) or not re.match(r"^(/[A-Za-z0-9_.-]+)+$", prefix):
        raise ConfigurationError("OAUTH_VAULT_PREFIX: must look like /auth")
    storage_url = data.get("storage_url") or _DEFAULT_STORAGE
    if not isinstance(storage_url, str) or "://" not in storage_url:
        raise ConfigurationError("OAUTH_VAULT_STORAGE_URL: must be a URL such as sqlite:///x.db")
    raw_conns = data.get("connections")
    if not isinstance(raw_conns, Sequence) or isinstance(raw_conns, str) or not raw_conns:
        raise ConfigurationError("OAUTH_VAULT_CONNECTIONS: required, a non-empty list")
    conns = tuple(
        c if isinstance(c, ConnectionConfig) else parse_connection(i, c)
        for i, c in enumerate(raw_conns)
    )
    for conn in conns:
        check_client_auth(conn)  # a key that does not load fails here, not at the first login
    seen: set[str] = set()
    for conn in conns:
        if conn.id in seen:
            raise ConfigurationError(f"OAUTH_VAULT_CONNECTIONS: duplicate id {conn.id!r}")
        seen.add(conn.id)
    extra: dict[str, Any] = {}
    for name, minimum in (
        ("session_max_age", 60),
        ("state_max_age", 30),
        ("refresh_attempts", 1),
        ("clock_skew", 0),
        ("app_token_lifetime", 30),
    ):
        if name in data:
            extra[name] = check_int(f"OAUTH_VAULT_{name.upper()}", data[name], minimum=minimum)
    for name in ("provider_timeout", "failure_backoff", "lease_ttl"):
        if name in data:
            try:
                extra[name] = float(data[name])
            except (TypeError, ValueError):
                raise ConfigurationError(f"OAUTH_VAULT_{name.upper()}: must be a number") from None
            if extra[name] <= 0:
                raise ConfigurationError(f"OAUTH_VAULT_{name.upper()}: must be > 0")
    raw_app_keys = data.get("app_token_keys")
    if isinstance(raw_app_keys, str):
        raw_app_keys = [k for k in raw_app_keys.split(",") if k.strip()]
    if raw_app_keys:
        extra["app_token_keys"] = tuple(
            k
            if isinstance(k, bytes) and len(k) == 32
            else _decode_key(i, str(k), setting="OAUTH_VAULT_APP_TOKEN_KEYS")
            for i, k in enumerate(raw_app_keys)
        )
    timeout = extra.get("provider_timeout", 5.0)
    lease_ttl = extra.get("lease_ttl", max(15.0, 2 * timeout + 5))
    if lease_ttl <= 2 * timeout:
        raise ConfigurationError(
            "OAUTH_VAULT_LEASE_TTL: must exceed twice OAUTH_VAULT_PROVIDER_TIMEOUT "
            "(a refresh, retries included, must end before its lease does)"
        )
    extra["lease_ttl"] = lease_ttl
    if data.get("error_url"):
        extra["error_url"] = _check_error_url(data["error_url"], parts)
    return Settings(
        secret_key=secret,
        encryption_keys=keys,
        base_url=base_url.rstrip("/"),
        connections=conns,
        storage_url=storage_url,
        prefix=prefix,
        **extra,
    )


def _check_error_url(value: Any, base: SplitResult) -> str:
    """``error_url``: a path on this site (``/oops``) or a URL of ``base_url``'s origin, with
    no fragment: the library never sends a browser to another site (no open redirector)."""
    text = value if isinstance(value, str) else ""
    parts = urlsplit(text) if text.isprintable() and "\\" not in text else None
    same_site = parts is not None and (
        (not parts.scheme and not parts.netloc and text.startswith("/"))
        or (
            parts.scheme == base.scheme
            and parts.netloc.lower() == base.netloc.lower()
            and "@" not in parts.netloc
        )
    )
    if (
        parts is None
        or not same_site
        or len(text) > 512
        or "#" in text
        or " " in text
        or "//" in parts.path
        or not parts.path.startswith("/")
    ):
        raise ConfigurationError(
            "OAUTH_VAULT_ERROR_URL: must be a path on this site, like /login-failed, or a URL "
            "of OAUTH_VAULT_BASE_URL's origin (no fragment)"
        )
    return text


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


def settings_from_prefixed(values: Mapping[str, Any], prefix: str = ENV_PREFIX) -> Settings:
    """:class:`Settings` from the ``OAUTH_VAULT_*`` keys of a mapping: the environment or a
    Flask config.

    Values may be what the environment holds (strings: a JSON list or a file path for
    ``OAUTH_VAULT_CONNECTIONS``, comma-separated ``OAUTH_VAULT_ENCRYPTION_KEYS``) or Python
    values (a list of connection dicts, a list of keys, numbers). ``None`` and ``""`` are unset.
    """
    data: dict[str, Any] = {}
    for key in SETTING_NAMES:
        value = values.get(prefix + key.upper())
        if value is not None and value != "":
            data[key] = value
    if isinstance(data.get("connections"), str):
        data["connections"] = load_connections(data["connections"])
    return parse_settings(data)
