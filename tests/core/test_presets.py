"""Presets as data (issue 10): the table's own checks, each preset applied with minimal
settings, the connection's overrides, template variables, and the one-line start-up error
for each misuse."""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from oauth_vault_mw import ConfigurationError, ConnectionConfig
from oauth_vault_mw.core.connections import KNOWN_FIELDS, parse_connection
from oauth_vault_mw.core.dialect import ACCESS_TOKEN_SLOT, STANDARD, IdentitySpec, TokenDialect
from oauth_vault_mw.core.identity import userinfo_request
from oauth_vault_mw.core.preset_table import PRESETS, TABLE
from oauth_vault_mw.core.presets import (
    AUTH_METHODS,
    URL_FIELDS,
    Preset,
    Variable,
    check_table,
    fill_template,
    template_names,
)
from oauth_vault_mw.core.token_requests import (
    code_exchange_request,
)

REQUIRED = {
    *("google", "github", "microsoft", "slack", "atlassian", "salesforce", "dropbox"),
    *("spotify", "discord", "notion", "zoom", "hubspot", "linkedin", "gitlab", "okta"),
    *("auth0", "keycloak", "apple", "box", "twitch", "xero", "quickbooks", "shopify"),
    *("linear", "asana", "strava", "reddit", "x", "figma", "calendly", "zendesk"),
    *("mailchimp", "pinterest", "yahoo", "bitbucket"),
}

P256_PEM = (
    ec.generate_private_key(ec.SECP256R1())
    .private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    .decode()
)


def example(name: str) -> dict[str, Any]:
    """The documented example of a preset, with a real key where one is needed."""
    raw = PRESETS[name].example_connection()
    if "client_private_key" in raw:
        raw["client_private_key"] = P256_PEM
    return raw


def parse(raw: dict[str, Any]) -> ConnectionConfig:
    return parse_connection(0, raw)


def error(raw: dict[str, Any]) -> str:
    with pytest.raises(ConfigurationError) as info:
        parse(raw)
    message = str(info.value)
    assert "\n" not in message
    return message


def names(message: str) -> str:
    """The field an error line names (the part before ``: ``)."""
    return message.partition(": ")[0]


def minimal(name: str, **extra: Any) -> dict[str, Any]:
    return {"id": name, "preset": name, "client_id": "cid", "client_secret": "csecret", **extra}


# -- the table ------------------------------------------------------------------------------


def test_the_table_holds_the_providers_people_connect() -> None:
    assert set(PRESETS) >= REQUIRED
    assert len(PRESETS) >= 35
    assert list(PRESETS) == [p.name for p in TABLE]
    assert check_table(TABLE) == PRESETS


@pytest.mark.parametrize("preset", TABLE, ids=lambda p: p.name)
def test_each_record_is_consistent(preset: Preset) -> None:
    urls = preset.urls()
    assert urls, "a preset sets URLs"
    declared = {v.name for v in preset.variables}
    used = {name for url in urls.values() for name in template_names(url)}
    assert used == declared
    examples = {v.name: v.example for v in preset.variables}
    for url in urls.values():
        assert urlsplit(fill_template(url, examples)).scheme == "https"
    assert preset.token_endpoint_auth_method in AUTH_METHODS
    assert preset.title
    assert preset.refresh_how
    assert preset.registration


def _bad(**changes: Any) -> Preset:
    base = Preset(
        name="demo",
        title="Demo",
        authorize_url="https://demo.example/authorize",
        token_url="https://demo.example/token",
        userinfo_url="https://demo.example/me",
        identity=IdentitySpec("userinfo", subject="id"),
        refresh_tokens="always",
        refresh_how="always",
        registration="an app",
    )
    return replace(base, **changes)


@pytest.mark.parametrize(
    ("table", "fault"),
    [
        pytest.param([_bad(), _bad()], "preset demo: defined twice", id="duplicate"),
        pytest.param([_bad(name="Demo")], "preset Demo: names", id="bad-name"),
        pytest.param(
            [_bad(token_url="http://demo.example/token")], "preset demo.token_url", id="http"
        ),
        pytest.param(
            [_bad(token_url="https://{tenant}.demo.example/token")],
            "preset demo.token_url: {tenant} is not a declared variable",
            id="undeclared-variable",
        ),
        pytest.param(
            [_bad(variables=(Variable("shop", "label", "the shop", "s"),))],
            "preset demo.variables: shop is named by no URL",
            id="unused-variable",
        ),
        pytest.param(
            [
                _bad(
                    token_url="https://{shop}.demo.example/token",
                    variables=(Variable("shop", "label", "the shop", "not a label"),),
                )
            ],
            "preset demo.variables: shop",
            id="bad-example",
        ),
        pytest.param(
            [
                _bad(
                    token_url="{shop}/token",
                    variables=(Variable("shop", "label", "the shop", "s"),),
                )
            ],
            "preset demo.token_url",
            id="label-starts-url",
        ),
        pytest.param(
            [_bad(identity=IdentitySpec("id_token"))], "preset demo.identity", id="id-token-no-oidc"
        ),
        pytest.param([_bad(userinfo_url=None)], "preset demo.identity", id="userinfo-without-url"),
        pytest.param(
            [_bad(token_endpoint_auth_method="client_secret_jwt")],
            "preset demo.token_endpoint_auth_method",
            id="auth-method",
        ),
        pytest.param([_bad(token_url=None)], "preset demo: needs an issuer", id="no-endpoints"),
        pytest.param([_bad(scope_separator=";")], "preset demo.scope_separator", id="separator"),
        pytest.param(
            [_bad(authorize_params=(("state", "x"),))],
            "preset demo.authorize_params",
            id="reserved-param",
        ),
        pytest.param(
            [_bad(default_expires_in=0)], "preset demo.default_expires_in", id="expires-zero"
        ),
        pytest.param([_bad(registration="")], "preset demo: title", id="undocumented"),
        pytest.param(
            [
                _bad(
                    callback_keep=("shop",),
                    dialect=TokenDialect(keep=(("shop", "shop"),)),
                )
            ],
            "preset demo: a kept field name is used twice",
            id="kept-twice",
        ),
    ],
)
def test_the_table_check_names_the_fault(table: list[Preset], fault: str) -> None:
    with pytest.raises(ValueError, match="^" + fault.replace("{", r"\{").replace("}", r"\}")):
        check_table(table)


# -- each preset with minimal settings ------------------------------------------------------


@pytest.mark.parametrize("name", list(PRESETS))
def test_each_preset_parses_from_its_documented_example(name: str) -> None:
    preset = PRESETS[name]
    conn = parse(example(name))
    assert conn.preset == name
    for field in URL_FIELDS:
        url = getattr(conn, field)
        assert (url is None) == (getattr(preset, field) is None), field
        if url is not None:
            assert urlsplit(url).scheme == "https"
            per_login = url.replace(ACCESS_TOKEN_SLOT, "") if field == "userinfo_url" else url
            assert "{" not in per_login, "every template variable is filled"
    assert conn.is_oidc == (preset.issuer is not None)
    assert conn.scopes == preset.scopes
    assert dict(preset.authorize_params).items() <= dict(conn.authorize_params).items()
    assert conn.token_endpoint_auth_method == preset.token_endpoint_auth_method
    assert conn.default_expires_in == preset.default_expires_in
    assert conn.scope_separator == preset.scope_separator
    assert conn.refresh_redirect_uri == preset.refresh_redirect_uri
    assert conn.callback_keep == preset.callback_keep
    assert conn.dialect == preset.dialect
    assert conn.identity_spec == preset.identity
    assert (conn.user_agent is not None) == (preset.user_agent or "user_agent" in example(name))
    if conn.identity_spec.source == "userinfo" and not conn.is_oidc:
        assert conn.userinfo_url is not None


@pytest.mark.parametrize(
    "name", [p.name for p in TABLE if all(v.default is not None for v in p.variables)]
)
def test_presets_without_required_params_need_only_the_client(name: str) -> None:
    raw = minimal(name)
    if PRESETS[name].token_endpoint_auth_method == "signed_client_secret":
        raw.update(client_private_key=P256_PEM, client_key_id="KEY1", team_id="TEAM1")
    assert parse(raw).preset == name


def test_google() -> None:
    conn = parse(minimal("google"))
    assert conn.issuer == "https://accounts.google.com"
    assert dict(conn.authorize_params) == {"access_type": "offline", "prompt": "consent"}
    assert conn.token_endpoint_auth_method == "client_secret_post"
    assert conn.identity_spec.source == "id_token"


def test_github_names_the_account_by_its_numeric_id() -> None:
    conn = parse(minimal("github"))
    assert conn.identity_spec == IdentitySpec(
        "userinfo",
        subject="id",
        profile=(
            ("name", "name"),
            ("email", "email"),
            ("picture", "avatar_url"),
            ("preferred_username", "login"),
        ),
    )
    assert conn.subject_claim == "id"
    assert conn.default_expires_in is None


def test_slack_stores_the_user_token() -> None:
    conn = parse(minimal("slack"))
    assert conn.dialect.token_path == ("authed_user",)
    assert ("team_id", "team.id") in conn.dialect.keep
    assert conn.dialect.is_reauth_error("invalid_refresh_token")
    assert conn.identity_spec.source == "token_response"
    assert conn.identity_spec.subject == "authed_user.id"
    assert conn.scope_separator == ","
    assert dict(conn.authorize_params)["user_scope"] == "users:read"


def test_atlassian_asks_for_a_refresh_token() -> None:
    conn = parse(minimal("atlassian"))
    params = dict(conn.authorize_params)
    assert params == {"audience": "api.atlassian.com", "prompt": "consent"}
    assert "offline_access" in conn.scopes


def test_providers_that_need_a_parameter_for_refresh_tokens() -> None:
    assert dict(parse(minimal("dropbox")).authorize_params) == {"token_access_type": "offline"}
    assert dict(parse(minimal("reddit")).authorize_params) == {"duration": "permanent"}
    for name in ("microsoft", "xero"):
        assert "offline_access" in parse(minimal(name)).scopes
    assert "offline.access" in parse(minimal("x")).scopes
    assert "refresh_token" in parse(minimal("salesforce")).scopes


def test_quirks_reach_the_connection() -> None:
    assert parse(minimal("salesforce")).dialect.keep[:2] == (
        ("instance_url", "instance_url"),
        ("id", "id"),
    )
    assert parse(minimal("mailchimp")).dialect.zero_expires_never
    strava = parse(minimal("strava"))
    assert strava.dialect.expires_at_field == "expires_at"
    assert ("athlete_id", "athlete.id") in strava.dialect.keep
    assert parse(minimal("quickbooks")).callback_keep == ("realmId",)
    assert parse(minimal("figma")).refresh_url == "https://api.figma.com/v1/oauth/refresh"
    assert parse(minimal("gitlab")).refresh_redirect_uri
    assert parse(minimal("yahoo")).refresh_redirect_uri
    hubspot = parse(minimal("hubspot"))
    assert hubspot.dialect.is_reauth_error("BAD_REFRESH_TOKEN")
    assert hubspot.dialect.error_fields == ("status", "category")
    notion = parse(minimal("notion"))
    assert {"workspace_id", "bot_id"} <= {name for name, _ in notion.dialect.keep}


def test_connections_without_a_preset_keep_the_standard_behaviour() -> None:
    conn = parse({"id": "corp", "issuer": "https://idp.example.com", "client_id": "c",
                  "client_secret": "s"})  # fmt: skip
    assert conn.dialect is STANDARD
    assert conn.identity is None
    assert conn.params == ()
    assert conn.user_agent is None
    assert conn.scope_separator == " "


# -- templates ------------------------------------------------------------------------------


def test_template_variables_fill_the_urls() -> None:
    shop = parse(minimal("shopify", params={"shop": "acme-store"}))
    assert shop.authorize_url == "https://acme-store.myshopify.com/admin/oauth/authorize"
    assert shop.params == (("shop", "acme-store"),)
    keycloak = parse(
        minimal("keycloak", params={"base_url": "https://sso.example.com/auth/", "realm": "r1"})
    )
    assert keycloak.issuer == "https://sso.example.com/auth/realms/r1"
    okta = parse(minimal("okta", params={"domain": "acme.okta.com"}))
    assert okta.issuer == "https://acme.okta.com/oauth2/default"
    zendesk = parse(minimal("zendesk", params={"subdomain": "acme"}))
    assert zendesk.token_url == "https://acme.zendesk.com/oauth/tokens"
    auth0 = parse(minimal("auth0", params={"domain": "acme.eu.auth0.com"}))
    assert auth0.issuer == "https://acme.eu.auth0.com"  # discovery's own issuer keeps the '/'


def test_amazon_token_host_by_region() -> None:
    assert parse(minimal("amazon")).token_url == "https://api.amazon.com/auth/o2/token"
    europe = parse(minimal("amazon", params={"tld": "co.uk"}))
    assert europe.token_url == "https://api.amazon.co.uk/auth/o2/token"
    assert europe.authorize_url == "https://www.amazon.com/ap/oa"


def test_variables_have_defaults_where_the_provider_has_one() -> None:
    assert parse(minimal("gitlab")).userinfo_url == "https://gitlab.com/api/v4/user"
    own = parse(minimal("gitlab", params={"base_url": "https://git.example.com"}))
    assert own.token_url == "https://git.example.com/oauth/token"
    assert parse(minimal("salesforce")).token_url == (
        "https://login.salesforce.com/services/oauth2/token"
    )
    sandbox = parse(minimal("salesforce", params={"domain": "test.salesforce.com"}))
    assert sandbox.authorize_url == "https://test.salesforce.com/services/oauth2/authorize"


def test_a_loopback_base_url_may_be_plain_http() -> None:
    conn = parse(minimal("keycloak", params={"base_url": "http://127.0.0.1:8080", "realm": "r"}))
    assert conn.issuer == "http://127.0.0.1:8080/realms/r"


def test_microsoft_tenant_old_field_and_params() -> None:
    default = parse(minimal("microsoft"))
    assert default.issuer == "https://login.microsoftonline.com/common/v2.0"
    assert default.params == (("tenant", "common"),)
    old = parse(minimal("microsoft", tenant="contoso.onmicrosoft.com"))
    new = parse(minimal("microsoft", params={"tenant": "contoso.onmicrosoft.com"}))
    assert old == new
    assert new.issuer == "https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0"


PARAM_ERRORS = [
    pytest.param("shopify", {}, "connections[shopify].params.shop", id="missing-shop"),
    pytest.param(
        "shopify", {"shop": "evil.example/x"}, "connections[shopify].params.shop", id="shop-path"
    ),
    pytest.param(
        "shopify", {"shop": "acme.myshopify.com"}, "connections[shopify].params.shop", id="dots"
    ),
    pytest.param("shopify", {"shop": 7}, "connections[shopify].params.shop", id="not-string"),
    pytest.param("zendesk", {}, "connections[zendesk].params.subdomain", id="missing-subdomain"),
    pytest.param("okta", {}, "connections[okta].params.domain", id="missing-domain"),
    pytest.param(
        "okta", {"domain": "acme.okta.com/x"}, "connections[okta].params.domain", id="domain-path"
    ),
    pytest.param(
        "okta",
        {"domain": "acme.okta.com", "authorization_server": "../x"},
        "connections[okta].params.authorization_server",
        id="traversal",
    ),
    pytest.param("auth0", {"domain": ""}, "connections[auth0].params.domain", id="empty-domain"),
    pytest.param("keycloak", {"realm": "r"}, "connections[keycloak].params.base_url", id="no-base"),
    pytest.param(
        "keycloak",
        {"base_url": "https://sso.example.com"},
        "connections[keycloak].params.realm",
        id="no-realm",
    ),
    pytest.param(
        "keycloak",
        {"base_url": "http://sso.example.com", "realm": "r"},
        "connections[keycloak].params.base_url",
        id="http-base-url",
    ),
    pytest.param(
        "gitlab",
        {"base_url": "https://gitlab.example.com/?x=1"},
        "connections[gitlab].params.base_url",
        id="base-url-query",
    ),
    pytest.param(
        "gitlab",
        {"base_url": "gitlab.example.com"},
        "connections[gitlab].params.base_url",
        id="base-url-no-scheme",
    ),
    pytest.param(
        "salesforce",
        {"domain": "login.salesforce.com:8443"},
        "connections[salesforce].params.domain",
        id="domain-port",
    ),
    pytest.param(
        "microsoft", {"tenant": "../evil"}, "connections[microsoft].params.tenant", id="tenant"
    ),
    pytest.param("google", {"tenant": "x"}, "connections[google].params.tenant", id="unknown"),
]


@pytest.mark.parametrize(("name", "params", "field"), PARAM_ERRORS)
def test_params_errors_name_the_variable(name: str, params: dict[str, Any], field: str) -> None:
    message = error(minimal(name, params=params))
    assert names(message) == field, message
    assert message.partition(": ")[2]


def test_param_errors_never_echo_the_secret() -> None:
    message = error(minimal("shopify", params={"shop": "bad shop"}, client_secret="s3cr3t-x"))
    assert "s3cr3t-x" not in message


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        pytest.param(minimal("microsoft", tenant="../evil"), "tenant", id="old-tenant-bad"),
        pytest.param(minimal("microsoft", tenant="a", params={"tenant": "b"}), "tenant", id="both"),
        pytest.param(minimal("google", tenant="common"), "tenant", id="tenant-not-microsoft"),
        pytest.param(minimal("shopify", params=["shop"]), "params", id="params-not-object"),
        pytest.param(
            {
                "id": "p",
                "issuer": "https://i.example",
                "client_id": "c",
                "client_secret": "s",
                "params": {"shop": "x"},
            },
            "params.shop",
            id="params-without-preset",
        ),
    ],
)
def test_misused_params_fail_at_start_up(raw: dict[str, Any], field: str) -> None:
    message = error(raw)
    assert names(message) == f"connections[{raw['id']}].{field}", message


# -- overrides ------------------------------------------------------------------------------


def test_one_url_overrides_the_presets_of_that_name_only() -> None:
    conn = parse(minimal("hubspot", token_url="https://api.hubapi.com/oauth/2026-03/token"))
    assert conn.token_url == "https://api.hubapi.com/oauth/2026-03/token"
    assert conn.authorize_url == PRESETS["hubspot"].authorize_url
    assert conn.dialect == PRESETS["hubspot"].dialect
    conn = parse(minimal("github", userinfo_url="https://proxy.example.com/user"))
    assert conn.userinfo_url == "https://proxy.example.com/user"
    assert conn.token_url == PRESETS["github"].token_url
    conn = parse(minimal("figma", refresh_url="https://proxy.example.com/refresh"))
    assert conn.refresh_url == "https://proxy.example.com/refresh"
    assert conn.token_url == PRESETS["figma"].token_url


MOCK = {
    "authorize_url": "http://127.0.0.1:9000/authorize",
    "token_url": "http://127.0.0.1:9000/token",
}


def test_a_moved_oidc_preset_needs_no_discovery() -> None:
    """Both endpoints named, no issuer: the preset's issuer (and its other URLs) are dropped,
    the account comes from the connection's user endpoint."""
    message = error(minimal("google", **MOCK))
    assert names(message) == "connections[google].userinfo_url", message
    conn = parse(minimal("google", **MOCK, userinfo_url="http://127.0.0.1:9000/userinfo"))
    assert conn.issuer is None
    assert not conn.is_oidc
    assert conn.revocation_url is None  # Google's real endpoint is not contacted either
    assert conn.identity_spec == IdentitySpec("userinfo", subject="sub")
    assert dict(conn.authorize_params)["access_type"] == "offline"  # the rest stays
    assert conn.scopes == PRESETS["google"].scopes


def test_a_moved_preset_contacts_only_the_urls_it_names() -> None:
    conn = parse(minimal("figma", **MOCK, userinfo_url="http://127.0.0.1:9000/me"))
    assert conn.refresh_url is None  # refreshes go to the named token_url
    assert conn.revocation_url is None
    conn = parse(minimal("strava", **MOCK))  # the account is in the token reply
    assert conn.userinfo_url is None
    assert conn.identity_spec.subject == "athlete.id"
    assert conn.dialect.expires_at_field == "expires_at"


def test_a_moved_preset_needs_no_template_values() -> None:
    conn = parse(minimal("shopify", **MOCK, userinfo_url="http://127.0.0.1:9000/shop.json"))
    assert conn.token_url == MOCK["token_url"]
    assert conn.callback_keep == ("shop",)
    conn = parse(minimal("keycloak", issuer="http://127.0.0.1:9000/realms/test"))
    assert conn.issuer == "http://127.0.0.1:9000/realms/test"
    assert conn.identity_spec.source == "id_token"


def test_an_issuer_override_moves_the_preset() -> None:
    conn = parse(minimal("google", issuer="http://localhost:9000"))
    assert conn.issuer == "http://localhost:9000"
    assert conn.revocation_url is None  # from discovery, if the issuer offers one
    conn = parse(minimal("microsoft", issuer="https://login.microsoftonline.com/t1/v2.0"))
    assert conn.issuer == "https://login.microsoftonline.com/t1/v2.0"


def test_connection_fields_win_over_the_preset() -> None:
    conn = parse(
        minimal(
            "atlassian",
            scopes=["read:jira-work", "offline_access"],
            authorize_params={"prompt": "login"},
            default_expires_in=600,
            token_endpoint_auth_method="client_secret_basic",
            subject_claim="email",
        )
    )
    assert conn.scopes == ("read:jira-work", "offline_access")
    assert dict(conn.authorize_params) == {"audience": "api.atlassian.com", "prompt": "login"}
    assert conn.default_expires_in == 600
    assert conn.token_endpoint_auth_method == "client_secret_basic"
    assert conn.identity_spec.subject == "email"
    assert conn.identity_spec.profile == PRESETS["atlassian"].identity.profile
    assert parse(minimal("github", default_expires_in=None)).default_expires_in is None
    assert parse(minimal("slack", scopes=[])).scopes == ()


# -- user agent, client authentication ------------------------------------------------------


def test_reddit_sends_a_descriptive_user_agent() -> None:
    default = parse(minimal("reddit")).user_agent
    assert default is not None
    assert default.startswith("python:oauth-vault-mw:")
    own = parse(minimal("reddit", user_agent="python:myapp:1.0 (by /u/me)"))
    assert own.user_agent == "python:myapp:1.0 (by /u/me)"
    plain = parse(minimal("github", user_agent="myapp/1.0"))
    assert plain.user_agent == "myapp/1.0"
    assert parse(minimal("github")).user_agent is None


@pytest.mark.parametrize("value", ["", "line\nbreak", "x" * 257, 42, "caf\u00e9"])
def test_a_bad_user_agent_fails_at_start_up(value: object) -> None:
    assert names(error(minimal("reddit", user_agent=value))) == "connections[reddit].user_agent"


def test_apple_signs_its_client_secret() -> None:
    raw = example("apple")
    assert "client_secret" not in raw
    conn = parse(raw)
    assert conn.token_endpoint_auth_method == "signed_client_secret"
    assert conn.client_private_key == P256_PEM
    assert conn.client_key_id == "ABC123DEFG"
    assert conn.team_id == "TEAM123456"
    assert conn.scopes == ()  # no name/email: the callback stays a GET
    assert "response_mode" not in dict(conn.authorize_params)
    assert P256_PEM not in repr(conn)


@pytest.mark.parametrize(
    ("drop", "field"),
    [
        ("client_private_key", "client_private_key"),
        ("team_id", "team_id"),
        ("client_key_id", "client_key_id"),
    ],
)
def test_apple_without_its_key_fields_fails(drop: str, field: str) -> None:
    raw = {k: v for k, v in example("apple").items() if k != drop}
    assert names(error(raw)) == f"connections[apple].{field}"


def test_key_fields_are_checked_for_shape() -> None:
    raw = example("apple")
    assert names(error({**raw, "client_private_key": "not a key"})) == (
        "connections[apple].client_private_key"
    )
    assert names(error({**raw, "team_id": "a b"})) == "connections[apple].team_id"
    assert names(error({**raw, "client_key_id": ""})) == "connections[apple].client_key_id"


def test_unknown_fields_still_fail() -> None:
    assert names(error(minimal("google", colour="blue"))) == "connections[0].colour"
    assert {"refresh_url", "params", "user_agent", "client_private_key"} <= KNOWN_FIELDS


def test_token_params_merge_over_the_presets_and_reach_the_code_exchange() -> None:
    shopify = parse(minimal("shopify", params={"shop": "acme"}))
    assert dict(shopify.token_params) == {"expiring": "1"}  # expiring offline tokens
    older = parse(minimal("shopify", params={"shop": "acme"}, token_params={"expiring": "0"}))
    assert dict(older.token_params) == {"expiring": "0"}
    request = code_exchange_request(shopify, "https://t", "code", "https://cb", "verifier")
    assert request.form["expiring"] == "1"
    assert request.form["grant_type"] == "authorization_code"


@pytest.mark.parametrize("field", ["grant_type", "code", "client_secret", "refresh_token"])
def test_token_params_cannot_replace_what_the_library_sends(field: str) -> None:
    message = error(minimal("github", token_params={field: "x"}))
    assert message.startswith("connections[github].token_params:")


def test_hubspot_names_the_user_through_the_token_info_endpoint() -> None:
    conn = parse(minimal("hubspot"))
    assert conn.userinfo_url is not None
    url, headers = userinfo_request(conn, conn.userinfo_url, "CN/a+b")
    assert url == "https://api.hubapi.com/oauth/v1/access-tokens/CN%2Fa%2Bb"
    assert "Authorization" not in headers
    assert conn.identity_spec.subject == "user_id"  # the person, not the portal
    github = parse(minimal("github"))
    assert github.userinfo_url is not None
    url, headers = userinfo_request(github, github.userinfo_url, "gho_x")
    assert url == github.userinfo_url
    assert headers["Authorization"] == "Bearer gho_x"
