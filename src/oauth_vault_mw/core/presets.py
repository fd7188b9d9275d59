"""Presets: what a well-known provider needs beyond the OAuth 2.0 / OpenID Connect standards,
as data.

One frozen :class:`Preset` per provider; the table itself is ``core/preset_table.py``
(:data:`~oauth_vault_mw.core.preset_table.PRESETS`), checked by :func:`check_table` when it is
imported. ``core/connections.py`` applies a preset to a connection's settings (overrides,
template variables); ``scripts/providers_doc.py`` writes ``docs/providers.md`` from the same
records, so the documentation cannot drift from what the code does.

A preset's URLs may hold template variables, ``{name}``, declared in :attr:`Preset.variables`:
the connection gives their values in ``"params": {...}``, each checked against its
:data:`VARIABLE_KINDS` pattern before it is put in a URL.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from .dialect import ACCESS_TOKEN_SLOT, STANDARD, IdentitySpec, TokenDialect

__all__ = [
    "AUTH_METHODS",
    "RESERVED_AUTHORIZE_PARAMS",
    "RESERVED_TOKEN_PARAMS",
    "URL_FIELDS",
    "VARIABLE_KINDS",
    "Preset",
    "Variable",
    "check_table",
    "fill_template",
    "template_names",
]

URL_FIELDS = (
    "issuer",
    "authorize_url",
    "token_url",
    "refresh_url",
    "userinfo_url",
    "revocation_url",
    "extra_url",
    "api_base_url",
)
"""The URLs a preset may set; a connection overrides each with its own field of that name.
``api_base_url`` is where the provider's API is: the base of the authenticated client
(``request.connection_client``), not a URL the vault calls itself."""

AUTH_METHODS = (
    "client_secret_basic",
    "client_secret_post",
    "none",
    "private_key_jwt",
    "signed_client_secret",
)
"""How a client authenticates at the token endpoint (``core/client_auth.py``): the last two
sign a JWT with ``client_private_key`` (``signed_client_secret``: Sign in with Apple)."""

RESERVED_AUTHORIZE_PARAMS = frozenset(
    {
        "state",
        "nonce",
        "code_challenge",
        "code_challenge_method",
        "redirect_uri",
        "client_id",
        "response_type",
    }
)
"""Authorization request parameters the library sets itself."""

RESERVED_TOKEN_PARAMS = frozenset(
    {
        "grant_type",
        "code",
        "redirect_uri",
        "code_verifier",
        "refresh_token",
        "client_id",
        "client_secret",
        "client_assertion",
        "client_assertion_type",
    }
)
"""Token request parameters the library sets itself."""

VariableKind = Literal["label", "host", "segment", "url"]

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
VARIABLE_KINDS: Mapping[str, tuple[re.Pattern[str] | None, str]] = {
    "label": (re.compile(rf"^{_LABEL}\Z"), "letters, digits and inner '-' (one DNS label)"),
    "host": (
        re.compile(rf"^(?=.{{1,253}}\Z){_LABEL}(?:\.{_LABEL})*\Z"),
        "a host name such as example.com (no scheme, port or path)",
    ),
    "segment": (
        re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z"),
        "1-128 letters, digits, '_', '.', '-', starting with a letter or digit",
    ),
    "url": (None, "an absolute https URL without query or fragment"),
}
"""Each kind of template variable: the pattern its value must match and how to say so.
``url`` values are checked like any configured URL (``core/connections.py``)."""

_TEMPLATE_RE = re.compile(r"\{([a-z_]+)\}")


def template_names(url: str) -> tuple[str, ...]:
    """The template variables a URL names, in order (``{domain}`` -> ``("domain",)``)."""
    return tuple(_TEMPLATE_RE.findall(url))


def fill_template(url: str, values: Mapping[str, str]) -> str:
    """``url`` with each ``{name}`` replaced by ``values[name]`` (checked values only)."""
    return _TEMPLATE_RE.sub(lambda m: values[m.group(1)], url)


@dataclass(frozen=True)
class Variable:
    """A template variable of a preset's URLs, given in the connection's ``params``.

    ``default``: the value when the connection gives none (``None``: required);
    ``example``: shown in the documentation's connection example; ``doc``: what it is.
    """

    name: str
    kind: VariableKind
    doc: str
    example: str
    default: str | None = None

    def check(self, value: object) -> str | None:
        """Why ``value`` is not fit for this variable, or None (``url`` kind: its shape only)."""
        if not isinstance(value, str):
            return "must be a string"
        pattern, describe = VARIABLE_KINDS[self.kind]
        if pattern is None:
            parts = urlsplit(value)
            if parts.scheme not in ("https", "http") or not parts.hostname:
                return f"must be {describe}"
            if parts.query or parts.fragment or "@" in parts.netloc or "{" in value:
                return f"must be {describe}"
            return None
        return None if pattern.match(value) else f"must be {describe}"


RefreshTokens = Literal["always", "requested", "opt-in", "never"]
"""Whether a login gets a refresh token: ``always`` (the code grant returns one),
``requested`` (the preset asks for it: a scope or parameter), ``opt-in`` (a switch at the
provider or an approval decides), ``never`` (tokens do not expire or cannot be refreshed)."""


@dataclass(frozen=True, kw_only=True)
class Preset:
    """What one provider needs, and what the generated documentation says about it.

    Behaviour (copied onto the ``ConnectionConfig``):

    - ``issuer`` (OpenID Connect discovery), else ``authorize_url`` + ``token_url``;
      ``refresh_url`` (when refreshes go elsewhere than ``token_url``), ``userinfo_url``,
      ``revocation_url`` (RFC 7009 only); any of them may name ``variables``;
    - ``scopes`` and ``scope_separator``; ``authorize_params`` (what a refresh token needs);
      ``token_params`` (extra fields of the code exchange: Shopify's ``expiring=1``);
    - ``token_endpoint_auth_method``; ``default_expires_in`` (``None``: tokens without
      ``expires_in`` never expire); ``refresh_redirect_uri`` (a refresh sends the redirect
      URI too); ``user_agent`` (the provider refuses requests without a descriptive one);
    - ``incremental_params``: authorization request parameters that make a new grant keep
      the scopes granted before (Google's ``include_granted_scopes=true``), sent with every
      login and connect; ``scope_aliases``: ``(asked, reported)`` names of scopes the
      provider reports under another name in the granted ``scope`` (``core/scopes.py``);
    - ``account_chooser``: the authorization parameters of a connect that links another
      account (``?account=new``), where the provider has an account chooser (Google's
      ``prompt=select_account``); ``None``: ``prompt=login`` for an OpenID provider;
      ``account_extra``: the kept field that, with the subject, names an account (Slack's
      ``team_id``: one user id may be in several workspaces of an Enterprise Grid);
    - ``callback_keep``: callback query parameters kept as ``Credentials.extra``;
    - ``extra_url`` and ``extra_keep``: a JSON document read with the new access token at
      login, and the ``(name, dotted.path)`` values kept from it (Xero's tenants, listed by
      ``GET https://api.xero.com/connections``);
    - ``dialect``: how the token endpoint's replies differ from RFC 6749;
    - ``identity``: where a login finds the account id and the display profile;
    - ``api_base_url``: the base URL of the authenticated client (``client.get("/user")``),
      or ``api_base_url_from_extra``: the kept field holding it per login (Salesforce's
      ``instance_url``).

    Documentation only: ``title``, ``refresh_tokens`` and ``refresh_how``, ``registration``
    (what the app registration at the provider needs besides the redirect URI), ``quirks``,
    ``notes`` (the choices made where the provider catalogue marks a fact unverified), and
    ``example`` (connection fields the example shows beyond id, preset, client id/secret and
    the required params; a ``None`` value leaves that field out).
    """

    name: str
    title: str
    issuer: str | None = None
    authorize_url: str | None = None
    token_url: str | None = None
    refresh_url: str | None = None
    userinfo_url: str | None = None
    revocation_url: str | None = None
    variables: tuple[Variable, ...] = ()
    scopes: tuple[str, ...] = ()
    scope_separator: str = " "
    authorize_params: tuple[tuple[str, str], ...] = ()
    token_params: tuple[tuple[str, str], ...] = ()
    token_endpoint_auth_method: str = "client_secret_basic"
    default_expires_in: int | None = 3600
    refresh_redirect_uri: bool = False
    user_agent: bool = False
    incremental_params: tuple[tuple[str, str], ...] = ()
    account_chooser: tuple[tuple[str, str], ...] | None = None
    account_extra: str | None = None
    scope_aliases: tuple[tuple[str, str], ...] = ()
    callback_keep: tuple[str, ...] = ()
    extra_url: str | None = None
    extra_keep: tuple[tuple[str, str], ...] = ()
    api_base_url: str | None = None
    api_base_url_from_extra: str | None = None
    dialect: TokenDialect = STANDARD
    identity: IdentitySpec = field(default_factory=IdentitySpec)
    refresh_tokens: RefreshTokens
    refresh_how: str
    registration: str
    quirks: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    example: tuple[tuple[str, Any], ...] = ()

    def urls(self) -> dict[str, str]:
        """The URLs this preset sets, by field name (templates unfilled)."""
        found = {name: getattr(self, name) for name in URL_FIELDS}
        return {name: url for name, url in found.items() if url is not None}

    def variable(self, name: str) -> Variable | None:
        return next((v for v in self.variables if v.name == name), None)

    def example_connection(self) -> dict[str, Any]:
        """A connection using this preset: what the documentation shows (and tests parse)."""
        data: dict[str, Any] = {
            "id": self.name,
            "preset": self.name,
            "client_id": "...",
            "client_secret": "...",
        }
        params = {v.name: v.example for v in self.variables if v.default is None}
        if params:
            data["params"] = params
        for name, value in self.example:  # None: the example leaves the field out
            if value is None:
                data.pop(name, None)
            else:
                data[name] = value
        return data


def _check_url(preset: Preset, name: str, url: str) -> None:
    where = f"preset {preset.name}.{name}"
    if name == "userinfo_url":
        url = url.replace(ACCESS_TOKEN_SLOT, "token")
    names = template_names(url)
    for var in names:
        if preset.variable(var) is None:
            raise ValueError(f"{where}: {{{var}}} is not a declared variable")
    if "{" in _TEMPLATE_RE.sub("", url) or "}" in _TEMPLATE_RE.sub("", url):
        raise ValueError(f"{where}: stray brace")
    filled = fill_template(url, {v.name: v.example for v in preset.variables})
    parts = urlsplit(filled)
    if parts.scheme != "https" or not parts.hostname or parts.fragment:
        raise ValueError(f"{where}: must be an https URL")
    for var in names:
        kind = preset.variable(var)
        assert kind is not None
        if kind.kind == "url" and not url.startswith(f"{{{var}}}"):
            raise ValueError(f"{where}: a url variable must start the URL")
        if kind.kind != "url" and url.startswith(f"{{{var}}}"):
            raise ValueError(f"{where}: only a url variable may start the URL")


def _check_preset(preset: Preset) -> None:
    where = f"preset {preset.name}"
    if not re.match(r"^[a-z][a-z0-9-]{0,31}$", preset.name):
        raise ValueError(f"{where}: names are lower-case letters, digits and '-'")
    urls = preset.urls()
    for name, url in urls.items():
        _check_url(preset, name, url)
    used = {var for url in urls.values() for var in template_names(url)}
    seen: set[str] = set()
    for var in preset.variables:
        if var.name in seen:
            raise ValueError(f"{where}.variables: {var.name} is declared twice")
        seen.add(var.name)
        if var.name not in used:
            raise ValueError(f"{where}.variables: {var.name} is named by no URL")
        for value in (var.example, var.default):
            if value is not None and var.check(value) is not None:
                raise ValueError(f"{where}.variables: {var.name} {value!r} {var.check(value)}")
    if preset.issuer is None and (preset.authorize_url is None or preset.token_url is None):
        raise ValueError(f"{where}: needs an issuer, or authorize_url and token_url")
    source = preset.identity.source
    if source == "id_token" and preset.issuer is None:
        raise ValueError(f"{where}.identity: an ID token needs an issuer (OpenID Connect)")
    if source == "userinfo" and preset.userinfo_url is None and preset.issuer is None:
        raise ValueError(f"{where}.identity: the user endpoint needs a userinfo_url")
    if preset.token_endpoint_auth_method not in AUTH_METHODS:
        raise ValueError(f"{where}.token_endpoint_auth_method: one of {', '.join(AUTH_METHODS)}")
    if preset.scope_separator not in (" ", ","):
        raise ValueError(f"{where}.scope_separator: a space or a comma")
    if any(preset.scope_separator in s or " " in s or not s for s in preset.scopes):
        raise ValueError(f"{where}.scopes: a scope holds no separator")
    keys = [k for k, _ in preset.authorize_params]
    if len(set(keys)) != len(keys) or RESERVED_AUTHORIZE_PARAMS & set(keys):
        raise ValueError(f"{where}.authorize_params: duplicate or set by the library")
    keys = [k for k, _ in (*preset.authorize_params, *preset.incremental_params)]
    if len(set(keys)) != len(keys) or RESERVED_AUTHORIZE_PARAMS & set(keys):
        raise ValueError(f"{where}.incremental_params: duplicate or set by the library")
    asked = [a for a, _ in preset.scope_aliases]
    names = [name for pair in preset.scope_aliases for name in pair]
    if len(set(asked)) != len(asked) or any(" " in name or not name for name in names):
        raise ValueError(f"{where}.scope_aliases: one scope name each, each asked name once")
    keys = [k for k, _ in preset.token_params]
    if len(set(keys)) != len(keys) or RESERVED_TOKEN_PARAMS & set(keys):
        raise ValueError(f"{where}.token_params: duplicate or set by the library")
    if preset.default_expires_in is not None and preset.default_expires_in < 1:
        raise ValueError(f"{where}.default_expires_in: None or >= 1")
    kept = [name for name, _ in (*preset.dialect.keep, *preset.extra_keep)]
    kept += list(preset.callback_keep)
    if bool(preset.extra_url) != bool(preset.extra_keep):
        raise ValueError(f"{where}.extra_url: goes with extra_keep")
    if len(set(kept)) != len(kept):
        raise ValueError(f"{where}: a kept field name is used twice")
    from_extra = preset.api_base_url_from_extra
    if from_extra is not None and (from_extra not in kept or preset.api_base_url is not None):
        raise ValueError(f"{where}.api_base_url_from_extra: a kept field, without api_base_url")
    if not (preset.title and preset.refresh_how and preset.registration):
        raise ValueError(f"{where}: title, refresh_how and registration document the preset")


def check_table(presets: Iterable[Preset]) -> dict[str, Preset]:
    """The presets by name, once each is consistent: unique names, https URLs, every
    template variable a URL names declared (and every declared one used), an identity the
    URLs can serve. Raises ``ValueError`` naming the preset and field at fault."""
    table: dict[str, Preset] = {}
    for preset in presets:
        if preset.name in table:
            raise ValueError(f"preset {preset.name}: defined twice")
        _check_preset(preset)
        table[preset.name] = preset
    return table
