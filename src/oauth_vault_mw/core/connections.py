"""Connections: one provider each, as a frozen value checked once at start-up.

Every check raises :class:`ConfigurationError` with one line that starts with the field at
fault (``connections[google].client_id: ...``).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import metadata
from typing import Any
from urllib.parse import urlsplit

from .dialect import STANDARD, IdentitySpec, TokenDialect
from .errors import ConfigurationError
from .preset_table import PRESETS
from .presets import (
    AUTH_METHODS,
    RESERVED_AUTHORIZE_PARAMS,
    RESERVED_TOKEN_PARAMS,
    URL_FIELDS,
    Preset,
    fill_template,
    template_names,
)

__all__ = ["ID_RE", "ConnectionConfig", "check_int", "is_loopback_host", "parse_connection"]

ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")


def is_loopback_host(host: str | None) -> bool:
    """``localhost``, ``127.0.0.0/8`` or ``::1``: where plain ``http://`` is allowed. Not
    ``*.localhost`` names, which a resolver may send anywhere."""
    if not host:
        return False
    if host.lower() == "localhost":
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
    token_params: tuple[tuple[str, str], ...] = ()
    min_validity: int = 60
    default_expires_in: int | None = 3600
    token_endpoint_auth_method: str = "client_secret_basic"
    subject_claim: str = "sub"
    refresh_url: str | None = None
    scope_separator: str = " "
    refresh_redirect_uri: bool = False
    user_agent: str | None = None
    callback_keep: tuple[str, ...] = ()
    incremental_params: tuple[tuple[str, str], ...] = ()
    """Authorization parameters that make a new grant keep the earlier scopes (the preset's;
    a connection's own ``authorize_params`` of the same name win)."""
    scope_aliases: tuple[tuple[str, str], ...] = ()
    """``(asked, reported)``: scopes the provider reports under another name (the preset's)."""
    extra_url: str | None = None
    extra_keep: tuple[tuple[str, str], ...] = ()
    params: tuple[tuple[str, str], ...] = ()
    dialect: TokenDialect = STANDARD
    identity: IdentitySpec | None = None
    client_private_key: str | None = field(repr=False, default=None)
    """PEM private key for ``private_key_jwt`` and ``signed_client_secret`` (core.client_auth)."""
    client_key_id: str | None = None
    """The ``kid`` header of those JWTs (Apple: the key id of the Sign in with Apple key)."""
    team_id: str | None = None
    """``signed_client_secret``: the ``iss`` of the signed client secret (Apple: Team ID)."""
    api_base_url: str | None = None
    """The provider's API: the authenticated client's base URL (``client.get("/user")``)."""
    api_base_url_from_extra: str | None = None
    """The kept field (``Credentials.extra``) holding the API's URL per login, when
    ``api_base_url`` is not set (Salesforce: ``instance_url``)."""

    account_extra: str | None = None
    """The kept field that tells accounts of one subject apart (the preset's: Slack's
    ``team_id``): part of the account id (``core/accounts.py``)."""
    account_chooser: tuple[tuple[str, str], ...] | None = None
    """Authorization parameters of ``connect?account=new`` (the preset's): what makes the
    provider ask which account to link. ``None``: ``prompt=login`` for an OpenID provider."""

    @property
    def is_oidc(self) -> bool:
        return self.issuer is not None

    @property
    def new_account_params(self) -> tuple[tuple[str, str], ...]:
        """What a connect adding another account sends (over ``authorize_params``): the
        preset's account chooser, else OpenID Connect's ``prompt=login`` (sign in again, so
        another account can be chosen); nothing for a plain OAuth provider without one (the
        user switches accounts at the provider)."""
        if self.account_chooser is not None:
            return self.account_chooser
        return (("prompt", "login"),) if self.is_oidc else ()

    def api_base(self, extra: Mapping[str, Any]) -> str | None:
        """The authenticated client's base URL: ``api_base_url``, else the login's kept
        ``api_base_url_from_extra`` field when it is an absolute https URL (a provider's
        value: anything else is ignored), else ``None``."""
        if self.api_base_url is not None:
            return self.api_base_url
        if self.api_base_url_from_extra is None:
            return None
        value = extra.get(self.api_base_url_from_extra)
        try:
            return _check_url("api_base_url", value, allow_none=False)
        except ConfigurationError:
            return None

    @property
    def identity_spec(self) -> IdentitySpec:
        """Where a login finds the account: the preset's choice, else the ID token (OpenID
        Connect), else ``subject_claim`` in the user endpoint's JSON."""
        if self.identity is not None:
            return self.identity
        if self.is_oidc:
            return IdentitySpec("id_token")
        return IdentitySpec("userinfo", subject=self.subject_claim)


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


KNOWN_FIELDS = frozenset(
    {
        "id",
        "preset",
        "params",
        "tenant",
        *URL_FIELDS,
        "client_id",
        "client_secret",
        "token_endpoint_auth_method",
        "client_private_key",
        "client_key_id",
        "team_id",
        "scopes",
        "authorize_params",
        "token_params",
        "min_validity",
        "default_expires_in",
        "subject_claim",
        "user_agent",
    }
)
"""The fields a connection's settings may hold; any other fails at start-up."""

_MOVED = (
    "the connection names its own issuer, or its own authorize_url and token_url, so none of "
    "the preset's URLs is used"
)


def _preset(where: str, raw: Mapping[str, Any]) -> Preset | None:
    name = raw.get("preset")
    if name is None:
        return None
    if not isinstance(name, str) or name not in PRESETS:
        raise ConfigurationError(
            f"{where}.preset: unknown preset {name!r} (known: {', '.join(sorted(PRESETS))})"
        )
    return PRESETS[name]


def _given_params(
    where: str, raw: Mapping[str, Any], preset: Preset | None
) -> dict[str, tuple[str, object]]:
    """The template variables the connection gives: name -> (the field to name in an error,
    the value). The old top-level ``tenant`` (``microsoft``) counts as ``params.tenant``."""
    given = raw.get("params", {})
    if given is None:
        given = {}
    if not isinstance(given, Mapping):
        raise ConfigurationError(f"{where}.params: must map variable names to strings")
    found: dict[str, tuple[str, object]] = {
        str(name): (f"params.{name}", value) for name, value in given.items()
    }
    if "tenant" in raw:
        if preset is None or preset.variable("tenant") is None:
            raise ConfigurationError(
                f"{where}.tenant: only for presets with a {{tenant}} (microsoft)"
            )
        if "tenant" in found:
            raise ConfigurationError(f"{where}.tenant: give params.tenant or tenant, not both")
        found["tenant"] = ("tenant", raw["tenant"])
    for name, (label, _) in found.items():
        if preset is None:
            raise ConfigurationError(f"{where}.{label}: params fill a preset's URLs; no preset")
        if preset.variable(name) is None:
            takes = ", ".join(v.name for v in preset.variables) or "none"
            raise ConfigurationError(
                f"{where}.{label}: unknown variable (preset {preset.name} takes: {takes})"
            )
    return found


def _param_values(
    where: str, preset: Preset, given: Mapping[str, tuple[str, object]], needed: set[str]
) -> dict[str, str]:
    """Every variable's checked value (given, else its default); a variable a URL in use
    needs and that has neither fails."""
    values: dict[str, str] = {}
    for var in preset.variables:
        if var.name in given:
            label, value = given[var.name]
            problem = var.check(value)
            if problem is not None:
                raise ConfigurationError(f"{where}.{label}: {problem}")
            assert isinstance(value, str)
            if var.kind == "url":
                value = (_check_url(f"{where}.{label}", value, allow_none=False) or "").rstrip("/")
            values[var.name] = value
        elif var.default is not None:
            values[var.name] = var.default
        elif var.name in needed:
            raise ConfigurationError(
                f"{where}.params.{var.name}: required by preset {preset.name} ({var.doc})"
            )
    return values


def _urls(
    where: str, raw: Mapping[str, Any], preset: Preset | None
) -> tuple[dict[str, str | None], dict[str, str], bool]:
    """The connection's URLs, its template values, and whether it has moved off the preset's
    URLs.

    A URL field of the connection replaces the preset's of that name. A connection naming
    its own ``issuer``, or its own ``authorize_url`` and ``token_url``, has *moved*: none of
    the preset's URLs is kept (and so no discovery at the preset's issuer), the vault
    contacts only the URLs the connection names. Template variables are filled from
    ``params`` (or their defaults) in the preset URLs still in use.
    """
    own = {name: raw.get(name) for name in URL_FIELDS if raw.get(name) not in (None, "")}
    given = _given_params(where, raw, preset)
    moved = "issuer" in own or ("authorize_url" in own and "token_url" in own)
    inherited: dict[str, str] = {}
    values: dict[str, str] = {}
    if preset is not None:
        if not moved:
            inherited = {n: u for n, u in preset.urls().items() if n not in own}
        needed = {var for url in inherited.values() for var in template_names(url)}
        values = _param_values(where, preset, given, needed)
        inherited = {n: fill_template(u, values) for n, u in inherited.items()}
    urls: dict[str, str | None] = {}
    for name in URL_FIELDS:
        if name in own:
            urls[name] = _check_url(f"{where}.{name}", own[name])
        elif name in inherited:
            urls[name] = _check_url(f"{where}.{name}", inherited[name])
        else:
            urls[name] = None
    return urls, values, moved


def _identity(
    raw: Mapping[str, Any], preset: Preset | None, issuer: str | None, subject_claim: object
) -> IdentitySpec | None:
    """The preset's identity spec, as the connection leaves it: without an issuer there is no
    ID token to read (the user endpoint's ``subject_claim`` names the account instead), and
    the connection's ``subject_claim`` replaces the preset's subject path."""
    if preset is None:
        return None
    spec = preset.identity
    if spec.source == "id_token" and issuer is None:
        return None
    if "subject_claim" in raw and isinstance(subject_claim, str):
        spec = replace(spec, subject=subject_claim)
    return spec


def _string_list(where: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        value = value.split()
    if not isinstance(value, Sequence) or not all(isinstance(s, str) for s in value):
        raise ConfigurationError(f"{where}: must be a list of strings")
    return tuple(value)


def _merged_params(
    where: str,
    raw: Mapping[str, Any],
    field_name: str,
    from_preset: tuple[tuple[str, str], ...],
    reserved: frozenset[str],
) -> tuple[tuple[str, str], ...]:
    """``authorize_params`` or ``token_params``: the connection's own merged over the
    preset's, key by key (adding Google's ``hd`` must keep ``access_type=offline``)."""
    own = raw.get(field_name, {})
    if not isinstance(own, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in own.items()
    ):
        raise ConfigurationError(f"{where}.{field_name}: must map strings to strings")
    clash = sorted(reserved & set(own))
    if clash:
        raise ConfigurationError(f"{where}.{field_name}: {clash[0]!r} is set by the library")
    merged = {**dict(from_preset), **own}
    return tuple(sorted(merged.items()))


def _optional_string(
    name: str, value: object, *, pattern: re.Pattern[str], describe: str
) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not pattern.match(value):
        raise ConfigurationError(f"{name}: must be {describe}")
    return value


_PRINTABLE = re.compile(r"^[\x20-\x7e]{1,256}\Z")
_KEY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,128}\Z")
_KEY_IDS = "1-128 letters, digits, '_', '.', '-'"


def _default_user_agent() -> str:
    """What a preset that needs a User-Agent sends unless the connection names its own:
    Reddit's ``platform:app:version`` form, naming this library."""
    try:
        version = metadata.version("oauth-vault-mw")
    except metadata.PackageNotFoundError:
        version = "0"
    return f"python:oauth-vault-mw:{version}"


def _client_auth(
    where: str, raw: Mapping[str, Any], preset: Preset | None
) -> tuple[str, str, str | None, str | None, str | None]:
    """The client authentication method, secret, and signing key fields: their shapes here;
    whether the key signs (PEM, curve) is ``core.client_auth.check_client_auth``'s."""
    default = preset.token_endpoint_auth_method if preset else "client_secret_basic"
    method = raw.get("token_endpoint_auth_method", default)
    if method not in AUTH_METHODS:
        raise ConfigurationError(
            f"{where}.token_endpoint_auth_method: one of {', '.join(AUTH_METHODS)}"
        )
    secret = raw.get("client_secret", "")
    if not isinstance(secret, str):
        raise ConfigurationError(f"{where}.client_secret: must be a string")
    if method in ("client_secret_basic", "client_secret_post") and not secret:
        raise ConfigurationError(f"{where}.client_secret: required (or auth method 'none')")
    key = raw.get("client_private_key")
    if key is not None and (not isinstance(key, str) or "PRIVATE KEY" not in key):
        raise ConfigurationError(f"{where}.client_private_key: must be a PEM private key")
    if method in ("private_key_jwt", "signed_client_secret") and not key:
        raise ConfigurationError(f"{where}.client_private_key: required for {method}")
    key_id = _optional_string(
        f"{where}.client_key_id", raw.get("client_key_id"), pattern=_KEY_ID, describe=_KEY_IDS
    )
    team_id = _optional_string(
        f"{where}.team_id", raw.get("team_id"), pattern=_KEY_ID, describe=_KEY_IDS
    )
    if method == "signed_client_secret":
        if not team_id:
            raise ConfigurationError(f"{where}.team_id: required for signed_client_secret")
        if not key_id:
            raise ConfigurationError(f"{where}.client_key_id: required for signed_client_secret")
    return method, secret, key, key_id, team_id


def parse_connection(index: int, raw: object) -> ConnectionConfig:
    """One connection's settings, checked, with its preset applied.

    The connection's own fields win over the preset's: each URL field replaces the preset's
    of that name (see :func:`_urls` for a connection that moves every endpoint), ``scopes``
    replace the preset's, ``authorize_params`` merge over them key by key. The preset's other
    behaviour (dialect, identity, parameters for refresh tokens...) stays.
    """
    where = f"connections[{index}]"
    if not isinstance(raw, Mapping):
        raise ConfigurationError(f"{where}: must be an object")
    unknown = sorted(set(raw) - KNOWN_FIELDS)
    if unknown:
        raise ConfigurationError(f"{where}.{unknown[0]}: unknown field")
    conn_id = raw.get("id")
    if not isinstance(conn_id, str) or not ID_RE.match(conn_id):
        raise ConfigurationError(f"{where}.id: required, letters, digits, '_', '.', '-' (max 64)")
    where = f"connections[{conn_id}]"
    preset = _preset(where, raw)
    client_id = raw.get("client_id")
    if not isinstance(client_id, str) or not client_id:
        raise ConfigurationError(f"{where}.client_id: required")
    method, secret, key, key_id, team_id = _client_auth(where, raw, preset)
    urls, values, moved = _urls(where, raw, preset)
    issuer = urls["issuer"]
    if issuer is None and (urls["authorize_url"] is None or urls["token_url"] is None):
        raise ConfigurationError(
            f"{where}.issuer: required (or authorize_url and token_url for plain OAuth 2.0)"
        )
    subject_claim = raw.get("subject_claim", "sub")
    if not isinstance(subject_claim, str) or not subject_claim:
        raise ConfigurationError(f"{where}.subject_claim: must be a claim name")
    identity = _identity(raw, preset, issuer, subject_claim)
    if "subject_claim" not in raw and identity is not None and identity.source == "userinfo":
        subject_claim = identity.subject
    source = identity.source if identity is not None else ("id_token" if issuer else "userinfo")
    if source == "userinfo" and issuer is None and urls["userinfo_url"] is None:
        why = _MOVED if moved and preset is not None else "it names the account"
        raise ConfigurationError(f"{where}.userinfo_url: required for plain OAuth 2.0 ({why})")
    if "scopes" in raw:
        scopes = _string_list(f"{where}.scopes", raw["scopes"])
    elif preset is not None:
        scopes = preset.scopes
    else:
        scopes = ("openid", "profile", "email") if issuer else ()
    min_validity = check_int(f"{where}.min_validity", raw.get("min_validity", 60))
    preset_expires = preset.default_expires_in if preset else 3600
    default_expires = check_int(
        f"{where}.default_expires_in",
        raw.get("default_expires_in", preset_expires),
        minimum=1,
        allow_none=True,
    )
    user_agent = _optional_string(
        f"{where}.user_agent",
        raw.get("user_agent"),
        pattern=_PRINTABLE,
        describe="1-256 printable ASCII characters",
    )
    if user_agent is None and preset is not None and preset.user_agent:
        user_agent = _default_user_agent()
    return ConnectionConfig(
        id=conn_id,
        client_id=client_id,
        client_secret=secret,
        preset=preset.name if preset else None,
        issuer=issuer,
        authorize_url=urls["authorize_url"],
        token_url=urls["token_url"],
        userinfo_url=urls["userinfo_url"],
        revocation_url=urls["revocation_url"],
        extra_url=urls["extra_url"] if preset and preset.extra_keep else None,
        extra_keep=preset.extra_keep if preset and urls["extra_url"] else (),
        scopes=scopes,
        authorize_params=_merged_params(
            where,
            raw,
            "authorize_params",
            preset.authorize_params if preset else (),
            RESERVED_AUTHORIZE_PARAMS,
        ),
        token_params=_merged_params(
            where,
            raw,
            "token_params",
            preset.token_params if preset else (),
            RESERVED_TOKEN_PARAMS,
        ),
        min_validity=min_validity or 0,
        default_expires_in=default_expires,
        token_endpoint_auth_method=method,
        subject_claim=subject_claim,
        refresh_url=urls["refresh_url"],
        scope_separator=preset.scope_separator if preset else " ",
        refresh_redirect_uri=preset.refresh_redirect_uri if preset else False,
        user_agent=user_agent,
        callback_keep=preset.callback_keep if preset else (),
        incremental_params=preset.incremental_params if preset else (),
        account_chooser=preset.account_chooser if preset else None,
        account_extra=preset.account_extra if preset else None,
        scope_aliases=preset.scope_aliases if preset else (),
        params=tuple(sorted(values.items())),
        dialect=preset.dialect if preset else STANDARD,
        identity=identity,
        client_private_key=key,
        client_key_id=key_id,
        team_id=team_id,
        api_base_url=urls["api_base_url"],
        api_base_url_from_extra=preset.api_base_url_from_extra if preset else None,
    )
