"""Settings and connections as frozen values, validated once at start-up.

Every check raises :class:`ConfigurationError` with one line that starts with the name of the
setting at fault (``OAUTH_VAULT_ENCRYPTION_KEYS: ...``, ``connections[0].client_id: ...``).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .._exceptions import ConfigurationError
from .presets import PRESETS

__all__ = ["ConnectionConfig", "Settings", "is_loopback_host", "parse_settings"]

ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_DEFAULT_STORAGE = "sqlite:///oauth_vault.db"


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_url(name: str, value: object, *, allow_none: bool = True) -> str | None:
    if value is None or value == "":
        if allow_none:
            return None
        raise ConfigurationError(f"{name}: required")
    if not isinstance(value, str):
        raise ConfigurationError(f"{name}: must be a URL string")
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigurationError(f"{name}: must be an absolute https URL")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ConfigurationError(f"{name}: plain http is only allowed on loopback hosts")
    return value.rstrip("/") if name.endswith("issuer") else value


@dataclass(frozen=True)
class ConnectionConfig:
    """One provider the app logs in with or connects to.

    ``issuer`` means OpenID Connect with discovery; otherwise ``authorize_url`` and
    ``token_url`` describe a plain OAuth 2.0 provider. ``default_expires_in`` is the lifetime
    assumed when a token response has no ``expires_in`` (``None``: such tokens never expire).
    """

    id: str
    client_id: str
    client_secret: str = field(repr=False, default="")
    preset: str | None = None
    issuer: str | None = None
    authorize_url: str | None = None
    token_url: str | None = None
    userinfo_url: str | None = None
    revocation_url: str | None = None
    scopes: tuple[str, ...] = ()
    authorize_params: tuple[tuple[str, str], ...] = ()
    min_validity: int = 60
    default_expires_in: int | None = 3600
    token_endpoint_auth_method: str = "client_secret_basic"
    subject_claim: str = "sub"

    @property
    def is_oidc(self) -> bool:
        return self.issuer is not None


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
        from .._settings import settings_from_env

        return settings_from_env(environ)

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


def _int(name: str, value: object, *, minimum: int = 0, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ConfigurationError(f"{name}: must be an integer")
    try:
        number = int(value)
    except ValueError:
        raise ConfigurationError(f"{name}: must be an integer") from None
    if number < minimum:
        raise ConfigurationError(f"{name}: must be >= {minimum}")
    return number


def _parse_connection(index: int, raw: object) -> ConnectionConfig:
    where = f"connections[{index}]"
    if not isinstance(raw, Mapping):
        raise ConfigurationError(f"{where}: must be an object")
    known = {
        "id",
        "preset",
        "issuer",
        "authorize_url",
        "token_url",
        "userinfo_url",
        "revocation_url",
        "client_id",
        "client_secret",
        "scopes",
        "authorize_params",
        "min_validity",
        "default_expires_in",
        "token_endpoint_auth_method",
        "tenant",
        "subject_claim",
    }
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigurationError(f"{where}.{unknown[0]}: unknown field")
    conn_id = raw.get("id")
    if not isinstance(conn_id, str) or not ID_RE.match(conn_id):
        raise ConfigurationError(f"{where}.id: required, letters, digits, '_', '.', '-' (max 64)")
    where = f"connections[{conn_id}]"
    data: dict[str, Any] = {}
    preset_name = raw.get("preset")
    if preset_name is not None:
        if preset_name not in PRESETS:
            raise ConfigurationError(
                f"{where}.preset: unknown preset {preset_name!r} (known: {', '.join(PRESETS)})"
            )
        data.update(PRESETS[preset_name](raw))
    preset_params = data.get("authorize_params", {})
    data.update({k: v for k, v in raw.items() if k not in ("preset", "tenant")})
    if isinstance(raw.get("authorize_params"), Mapping) and preset_params:
        # Merged, not replaced: adding Google's "hd" must keep access_type=offline.
        data["authorize_params"] = {**preset_params, **raw["authorize_params"]}
    client_id = data.get("client_id")
    if not isinstance(client_id, str) or not client_id:
        raise ConfigurationError(f"{where}.client_id: required")
    secret = data.get("client_secret", "")
    if not isinstance(secret, str):
        raise ConfigurationError(f"{where}.client_secret: must be a string")
    issuer = _check_url(f"{where}.issuer", data.get("issuer"))
    urls = {
        name: _check_url(f"{where}.{name}", data.get(name))
        for name in ("authorize_url", "token_url", "userinfo_url", "revocation_url")
    }
    if issuer is None and (urls["authorize_url"] is None or urls["token_url"] is None):
        raise ConfigurationError(
            f"{where}.issuer: required (or authorize_url and token_url for plain OAuth 2.0)"
        )
    if issuer is None and urls["userinfo_url"] is None:
        raise ConfigurationError(
            f"{where}.userinfo_url: required for plain OAuth 2.0 (it names the account)"
        )
    scopes = data.get("scopes", ["openid", "profile", "email"] if issuer else [])
    if isinstance(scopes, str):
        scopes = scopes.split()
    if not isinstance(scopes, Sequence) or not all(isinstance(s, str) for s in scopes):
        raise ConfigurationError(f"{where}.scopes: must be a list of strings")
    params = data.get("authorize_params", {})
    if not isinstance(params, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in params.items()
    ):
        raise ConfigurationError(f"{where}.authorize_params: must map strings to strings")
    reserved = {
        "state",
        "nonce",
        "code_challenge",
        "code_challenge_method",
        "redirect_uri",
        "client_id",
        "response_type",
    }
    clash = sorted(reserved & set(params))
    if clash:
        raise ConfigurationError(f"{where}.authorize_params: {clash[0]!r} is set by the library")
    method = data.get("token_endpoint_auth_method", "client_secret_basic")
    if method not in ("client_secret_basic", "client_secret_post", "none"):
        raise ConfigurationError(
            f"{where}.token_endpoint_auth_method: one of client_secret_basic, "
            "client_secret_post, none"
        )
    if method != "none" and not secret:
        raise ConfigurationError(f"{where}.client_secret: required (or auth method 'none')")
    min_validity = _int(f"{where}.min_validity", data.get("min_validity", 60))
    default_expires = _int(
        f"{where}.default_expires_in",
        data.get("default_expires_in", 3600),
        minimum=1,
        allow_none=True,
    )
    subject_claim = data.get("subject_claim", "sub")
    if not isinstance(subject_claim, str) or not subject_claim:
        raise ConfigurationError(f"{where}.subject_claim: must be a claim name")
    return ConnectionConfig(
        id=conn_id,
        client_id=client_id,
        client_secret=secret,
        preset=preset_name,
        issuer=issuer,
        scopes=tuple(scopes),
        authorize_params=tuple(sorted(params.items())),
        min_validity=min_validity or 0,
        default_expires_in=default_expires,
        token_endpoint_auth_method=method,
        subject_claim=subject_claim,
        **urls,
    )


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
        c if isinstance(c, ConnectionConfig) else _parse_connection(i, c)
        for i, c in enumerate(raw_conns)
    )
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
            extra[name] = _int(f"OAUTH_VAULT_{name.upper()}", data[name], minimum=minimum)
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
    return Settings(
        secret_key=secret,
        encryption_keys=keys,
        base_url=base_url.rstrip("/"),
        connections=conns,
        storage_url=storage_url,
        prefix=prefix,
        **extra,
    )
