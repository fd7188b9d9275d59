"""Connections: one provider each, as a frozen value checked once at start-up.

Every check raises :class:`ConfigurationError` with one line that starts with the field at
fault (``connections[google].client_id: ...``).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigurationError
from .presets import PRESETS

__all__ = ["ID_RE", "ConnectionConfig", "check_int", "is_loopback_host", "parse_connection"]

ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


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


def check_int(
    name: str, value: object, *, minimum: int = 0, allow_none: bool = False
) -> int | None:
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


def parse_connection(index: int, raw: object) -> ConnectionConfig:
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
    min_validity = check_int(f"{where}.min_validity", data.get("min_validity", 60))
    default_expires = check_int(
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
