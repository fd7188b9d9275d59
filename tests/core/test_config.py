"""Settings and connections: what parses, and the one-line error for each misconfiguration."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from oauth_vault_mw import ConfigurationError, ConnectionConfig, Settings
from oauth_vault_mw.core.config import is_loopback_host, parse_settings

SECRET = "s3cret-" + "x" * 40
KEY = bytes(range(32))
KEY_B64 = base64.b64encode(KEY).decode()
OTHER_KEY = bytes(range(100, 132))
CLIENT_SECRET = "client-secret-do-not-print"


def connection(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "demo",
        "issuer": "https://idp.example.com",
        "client_id": "demo-client",
        "client_secret": CLIENT_SECRET,
    }
    data.update(overrides)
    return data


def plain_oauth2(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "plain",
        "authorize_url": "https://provider.example.com/authorize",
        "token_url": "https://provider.example.com/token",
        "userinfo_url": "https://api.provider.example.com/user",
        "client_id": "plain-client",
        "client_secret": CLIENT_SECRET,
    }
    data.update(overrides)
    return data


def mapping(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "secret_key": SECRET,
        "encryption_keys": KEY_B64,
        "base_url": "https://app.example.com",
        "connections": [connection()],
    }
    data.update(overrides)
    return data


def config_error(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigurationError) as info:
        Settings.from_mapping(data)
    return str(info.value)


def assert_names(message: str, setting: str) -> None:
    assert "\n" not in message
    assert "\r" not in message
    assert message.partition(": ")[0] == setting, message
    assert message.partition(": ")[2], "the line also says what is wrong"


# -- a valid mapping ----------------------------------------------------------------------


def test_valid_mapping_parses() -> None:
    settings = Settings.from_mapping(
        mapping(
            encryption_keys=f"{KEY_B64}, {base64.urlsafe_b64encode(OTHER_KEY).decode()}",
            base_url="https://app.example.com/",
            storage_url="memory://",
            prefix="/oauth",
            session_max_age="3600",
            provider_timeout="2.5",
            connections=[
                connection(
                    scopes="openid email",
                    authorize_params={"hd": "example.com"},
                    min_validity=120,
                    default_expires_in=None,
                    token_endpoint_auth_method="client_secret_post",
                    issuer="https://idp.example.com/",
                ),
                plain_oauth2(),
            ],
        )
    )
    assert settings.encryption_keys == (KEY, OTHER_KEY)
    assert settings.base_url == "https://app.example.com"
    assert settings.storage_url == "memory://"
    assert settings.prefix == "/oauth"
    assert settings.session_max_age == 3600
    assert settings.provider_timeout == 2.5
    assert settings.secure_cookies is True
    assert settings.redirect_uri("demo") == "https://app.example.com/oauth/callback/demo"
    assert settings.login_url("demo") == "https://app.example.com/oauth/login/demo"

    demo = settings.connection("demo")
    assert demo is not None
    assert demo.is_oidc
    assert demo.issuer == "https://idp.example.com"
    assert demo.scopes == ("openid", "email")
    assert demo.authorize_params == (("hd", "example.com"),)
    assert demo.min_validity == 120
    assert demo.default_expires_in is None
    assert demo.token_endpoint_auth_method == "client_secret_post"

    plain = settings.connection("plain")
    assert plain is not None
    assert not plain.is_oidc
    assert plain.scopes == ()
    assert plain.default_expires_in == 3600
    assert plain.token_endpoint_auth_method == "client_secret_basic"
    assert settings.connection("missing") is None


def test_defaults() -> None:
    settings = Settings.from_mapping(mapping())
    assert settings.storage_url == "sqlite:///oauth_vault.db"
    assert settings.prefix == "/auth"
    assert settings.state_max_age == 600
    assert settings.provider_timeout == 5.0
    assert settings.refresh_attempts == 3
    assert settings.clock_skew == 120
    conn = settings.connections[0]
    assert conn.scopes == ("openid", "profile", "email")
    assert conn.min_validity == 60
    assert conn.default_expires_in == 3600
    assert conn.subject_claim == "sub"


def test_loopback_http_is_allowed_for_development() -> None:
    settings = Settings.from_mapping(
        mapping(
            base_url="http://127.0.0.1:8000",
            connections=[connection(issuer="http://localhost:9000")],
        )
    )
    assert settings.secure_cookies is False
    assert settings.connections[0].issuer == "http://localhost:9000"


@pytest.mark.parametrize("host", ["localhost", "LocalHost", "127.0.0.1", "127.8.9.1", "[::1]"])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback_host(host)


@pytest.mark.parametrize("host", [None, "", "example.com", "localhost.example.com", "10.0.0.1"])
def test_not_loopback_hosts(host: str | None) -> None:
    assert not is_loopback_host(host)


def test_connection_configs_are_accepted_as_they_are() -> None:
    conn = ConnectionConfig(id="ready", client_id="c", client_secret="s", issuer="https://x.test")
    settings = Settings.from_mapping(mapping(connections=[conn]))
    assert settings.connections == (conn,)


def test_keys_in_both_base64_alphabets_with_or_without_padding() -> None:
    key = b"\xfb\xff" * 16  # encodes to '+' and '/' (standard) or '-' and '_' (urlsafe)
    for text in (
        base64.b64encode(key).decode(),
        base64.urlsafe_b64encode(key).decode(),
        base64.urlsafe_b64encode(key).decode().rstrip("="),
    ):
        assert parse_settings(mapping(encryption_keys=text)).encryption_keys == (key,)


def test_keys_may_be_given_as_bytes() -> None:
    settings = parse_settings(mapping(encryption_keys=[KEY, OTHER_KEY]))
    assert settings.encryption_keys == (KEY, OTHER_KEY)


# -- each misconfiguration: one line, starting with the setting's name --------------------

Mutate = Callable[[dict[str, Any]], None]


def _set(key: str, value: Any) -> Mutate:
    def mutate(data: dict[str, Any]) -> None:
        data[key] = value

    return mutate


def _drop(key: str) -> Mutate:
    def mutate(data: dict[str, Any]) -> None:
        del data[key]

    return mutate


def _conn(conn: dict[str, Any]) -> Mutate:
    return _set("connections", [conn])


def _without(conn: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in conn.items() if k != key}


MISCONFIGURATIONS = [
    pytest.param(_drop("secret_key"), "OAUTH_VAULT_SECRET_KEY", id="missing-secret"),
    pytest.param(_set("secret_key", "x" * 31), "OAUTH_VAULT_SECRET_KEY", id="short-secret"),
    pytest.param(_drop("encryption_keys"), "OAUTH_VAULT_ENCRYPTION_KEYS", id="missing-keys"),
    pytest.param(_set("encryption_keys", " , "), "OAUTH_VAULT_ENCRYPTION_KEYS", id="empty-keys"),
    pytest.param(
        _set("encryption_keys", "*" * 44), "OAUTH_VAULT_ENCRYPTION_KEYS", id="key-not-base64"
    ),
    pytest.param(
        _set("encryption_keys", base64.b64encode(b"k" * 16).decode()),
        "OAUTH_VAULT_ENCRYPTION_KEYS",
        id="key-not-32-bytes",
    ),
    pytest.param(_drop("base_url"), "OAUTH_VAULT_BASE_URL", id="missing-base-url"),
    pytest.param(
        _set("base_url", "http://app.example.com"), "OAUTH_VAULT_BASE_URL", id="http-base-url"
    ),
    pytest.param(
        _set("base_url", "https://app.example.com/app"), "OAUTH_VAULT_BASE_URL", id="base-url-path"
    ),
    pytest.param(_set("base_url", "app.example.com"), "OAUTH_VAULT_BASE_URL", id="no-scheme"),
    # an origin has no query, fragment or credentials: they would end up inside redirect URIs
    pytest.param(
        _set("base_url", "https://app.example.com?x=1"), "OAUTH_VAULT_BASE_URL", id="base-query"
    ),
    pytest.param(
        _set("base_url", "https://app.example.com/?"), "OAUTH_VAULT_BASE_URL", id="base-empty-query"
    ),
    pytest.param(
        _set("base_url", "https://app.example.com#top"), "OAUTH_VAULT_BASE_URL", id="base-fragment"
    ),
    pytest.param(
        _set("base_url", "https://user:pw@app.example.com"),
        "OAUTH_VAULT_BASE_URL",
        id="base-userinfo",
    ),
    pytest.param(_set("prefix", "auth"), "OAUTH_VAULT_PREFIX", id="bad-prefix"),
    pytest.param(_set("storage_url", "oauth.db"), "OAUTH_VAULT_STORAGE_URL", id="bad-storage"),
    pytest.param(_set("connections", []), "OAUTH_VAULT_CONNECTIONS", id="no-connections"),
    pytest.param(_set("connections", "[]"), "OAUTH_VAULT_CONNECTIONS", id="connections-str"),
    pytest.param(
        _set("session_max_age", "soon"), "OAUTH_VAULT_SESSION_MAX_AGE", id="session-max-age"
    ),
    pytest.param(_set("state_max_age", 5), "OAUTH_VAULT_STATE_MAX_AGE", id="state-max-age"),
    pytest.param(
        _set("provider_timeout", "0"), "OAUTH_VAULT_PROVIDER_TIMEOUT", id="provider-timeout"
    ),
    pytest.param(_set("failure_backoff", "x"), "OAUTH_VAULT_FAILURE_BACKOFF", id="failure-backoff"),
    pytest.param(
        _conn(_without(connection(), "client_id")),
        "connections[demo].client_id",
        id="no-client-id",
    ),
    pytest.param(
        _conn(_without(connection(), "client_secret")),
        "connections[demo].client_secret",
        id="no-client-secret",
    ),
    pytest.param(
        _conn(connection(client_secret=42)), "connections[demo].client_secret", id="secret-type"
    ),
    pytest.param(
        _conn(connection(preset="no-such-provider")),
        "connections[demo].preset",
        id="unknown-preset",
    ),
    pytest.param(_conn(connection(colour="blue")), "connections[0].colour", id="unknown-field"),
    pytest.param(_conn(connection(id="no spaces")), "connections[0].id", id="bad-id"),
    pytest.param(_conn(_without(connection(), "id")), "connections[0].id", id="missing-id"),
    pytest.param(_conn(connection(id="x" * 65)), "connections[0].id", id="long-id"),
    pytest.param(_set("connections", ["demo"]), "connections[0]", id="connection-not-object"),
    pytest.param(
        _set("connections", [connection(), connection()]),
        "OAUTH_VAULT_CONNECTIONS",
        id="duplicate-id",
    ),
    pytest.param(
        _conn(_without(plain_oauth2(), "userinfo_url")),
        "connections[plain].userinfo_url",
        id="oauth2-without-userinfo",
    ),
    pytest.param(
        _conn(_without(plain_oauth2(), "token_url")),
        "connections[plain].issuer",
        id="oauth2-without-token-url",
    ),
    pytest.param(
        _conn(connection(issuer="http://idp.example.com")),
        "connections[demo].issuer",
        id="http-issuer",
    ),
    pytest.param(
        _conn(plain_oauth2(token_url="http://provider.example.com/token")),
        "connections[plain].token_url",
        id="http-token-url",
    ),
    pytest.param(
        _conn(connection(issuer="ftp://idp.example.com")),
        "connections[demo].issuer",
        id="ftp-issuer",
    ),
    pytest.param(
        _conn(connection(issuer=["https://idp.example.com"])),
        "connections[demo].issuer",
        id="issuer-type",
    ),
    pytest.param(
        _conn(connection(authorize_params={"state": "fixed"})),
        "connections[demo].authorize_params",
        id="reserved-state",
    ),
    pytest.param(
        _conn(connection(authorize_params={"redirect_uri": "https://evil.example"})),
        "connections[demo].authorize_params",
        id="reserved-redirect-uri",
    ),
    pytest.param(
        _conn(connection(authorize_params={"prompt": 1})),
        "connections[demo].authorize_params",
        id="params-not-strings",
    ),
    pytest.param(_conn(connection(scopes=[1])), "connections[demo].scopes", id="bad-scopes"),
    pytest.param(
        _conn(connection(token_endpoint_auth_method="client_secret_jwt")),
        "connections[demo].token_endpoint_auth_method",
        id="auth-method",
    ),
    pytest.param(
        _conn(connection(token_endpoint_auth_method="private_key_jwt")),
        "connections[demo].client_private_key",
        id="private-key-jwt-without-key",
    ),
    pytest.param(
        _conn(connection(min_validity=-1)), "connections[demo].min_validity", id="min-validity"
    ),
    pytest.param(
        _conn(connection(default_expires_in=0)),
        "connections[demo].default_expires_in",
        id="default-expires-in",
    ),
    pytest.param(
        _conn(connection(subject_claim="")), "connections[demo].subject_claim", id="subject-claim"
    ),
    pytest.param(
        _conn(connection(preset="microsoft", tenant="../evil")),
        "connections[demo].tenant",
        id="bad-tenant",
    ),
    pytest.param(
        _conn(_without(connection(preset="microsoft", params={"tenant": "a/b"}), "issuer")),
        "connections[demo].params.tenant",
        id="bad-params-tenant",
    ),
    pytest.param(
        _conn(_without(connection(preset="shopify"), "issuer")),
        "connections[demo].params.shop",
        id="missing-template-value",
    ),
    pytest.param(
        _conn(connection(params={"shop": "acme"})),
        "connections[demo].params.shop",
        id="params-without-preset",
    ),
    pytest.param(
        _conn(plain_oauth2(refresh_url="http://provider.example.com/refresh")),
        "connections[plain].refresh_url",
        id="http-refresh-url",
    ),
    pytest.param(
        _conn(connection(user_agent="two\nlines")),
        "connections[demo].user_agent",
        id="bad-user-agent",
    ),
    pytest.param(
        _conn(plain_oauth2(preset="google", userinfo_url=None)),
        "connections[plain].userinfo_url",
        id="moved-preset-without-userinfo",
    ),
]


@pytest.mark.parametrize(("mutate", "setting"), MISCONFIGURATIONS)
def test_misconfiguration_names_the_setting(mutate: Mutate, setting: str) -> None:
    data = mapping()
    mutate(data)
    assert_names(config_error(data), setting)


def test_key_with_characters_outside_base64_is_refused_as_such() -> None:
    message = config_error(mapping(encryption_keys="*" * 44))
    assert "base64" in message
    # a stray character in an otherwise valid key is not silently dropped
    message = config_error(mapping(encryption_keys=KEY_B64[:10] + "!" + KEY_B64[10:]))
    assert_names(message, "OAUTH_VAULT_ENCRYPTION_KEYS")
    assert "base64" in message


def test_key_error_names_which_key() -> None:
    message = config_error(
        mapping(encryption_keys=f"{KEY_B64},{base64.b64encode(b'short').decode()}")
    )
    assert_names(message, "OAUTH_VAULT_ENCRYPTION_KEYS")
    assert "key 2" in message


def test_errors_never_echo_secrets() -> None:
    message = config_error(mapping(secret_key="short-but-secret"))
    assert "short-but-secret" not in message
    message = config_error(mapping(connections=[connection(client_id="")]))
    assert CLIENT_SECRET not in message


def test_auth_method_none_needs_no_secret() -> None:
    conn = _without(connection(token_endpoint_auth_method="none"), "client_secret")
    settings = Settings.from_mapping(mapping(connections=[conn]))
    assert settings.connections[0].client_secret == ""


# -- presets ------------------------------------------------------------------------------


def _preset(name: str, **extra: Any) -> ConnectionConfig:
    raw = {"id": name, "preset": name, "client_id": "cid", "client_secret": "csecret", **extra}
    return Settings.from_mapping(mapping(connections=[raw])).connections[0]


def test_google_preset_asks_for_offline_access() -> None:
    conn = _preset("google")
    assert conn.issuer == "https://accounts.google.com"
    params = dict(conn.authorize_params)
    assert params["access_type"] == "offline"
    assert params["prompt"] == "consent"
    assert "openid" in conn.scopes
    assert conn.revocation_url == "https://oauth2.googleapis.com/revoke"


def test_github_preset_tokens_never_expire_and_are_not_refreshed() -> None:
    conn = _preset("github")
    assert conn.default_expires_in is None
    assert not conn.is_oidc
    assert conn.userinfo_url == "https://api.github.com/user"
    assert conn.subject_claim == "id"
    assert "offline_access" not in conn.scopes
    assert conn.revocation_url is None


def test_microsoft_preset_tenant_and_offline_access() -> None:
    conn = _preset("microsoft", tenant="contoso.onmicrosoft.com")
    assert conn.issuer == "https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0"
    assert "offline_access" in conn.scopes
    assert _preset("microsoft").issuer == "https://login.microsoftonline.com/common/v2.0"


def test_new_connection_fields_parse() -> None:
    settings = Settings.from_mapping(
        mapping(
            connections=[
                plain_oauth2(
                    refresh_url="https://provider.example.com/refresh", user_agent="app/1.0"
                ),
                {"id": "shop", "preset": "shopify", "client_id": "c", "client_secret": "s",
                 "params": {"shop": "acme"}},
            ]
        )
    )  # fmt: skip
    plain = settings.connection("plain")
    assert plain is not None
    assert plain.refresh_url == "https://provider.example.com/refresh"
    assert plain.user_agent == "app/1.0"
    shop = settings.connection("shop")
    assert shop is not None
    assert shop.token_url == "https://acme.myshopify.com/admin/oauth/access_token"
    assert shop.params == (("shop", "acme"),)


def test_connection_settings_win_over_the_preset() -> None:
    conn = _preset("github", scopes=["repo"], default_expires_in=28800)
    assert conn.scopes == ("repo",)
    assert conn.default_expires_in == 28800
    assert conn.preset == "github"


# -- from the environment -----------------------------------------------------------------


def _environ(connections: str) -> dict[str, str]:
    return {
        "OAUTH_VAULT_SECRET_KEY": SECRET,
        "OAUTH_VAULT_ENCRYPTION_KEYS": KEY_B64,
        "OAUTH_VAULT_BASE_URL": "https://app.example.com",
        "OAUTH_VAULT_STORAGE_URL": "memory://",
        "OAUTH_VAULT_CONNECTIONS": connections,
        "OAUTH_VAULT_CLOCK_SKEW": "30",
        "OAUTH_VAULT_PREFIX": "",  # empty means unset
    }


def _check_env_settings(settings: Settings) -> None:
    assert settings.secret_key == SECRET
    assert settings.encryption_keys == (KEY,)
    assert settings.storage_url == "memory://"
    assert settings.prefix == "/auth"
    assert settings.clock_skew == 30
    demo = settings.connection("demo")
    assert demo is not None
    assert demo.client_secret == CLIENT_SECRET
    assert dict(demo.authorize_params) == {"prompt": "login"}


def test_from_env_with_json_connections() -> None:
    conns = json.dumps([connection(authorize_params={"prompt": "login"})])
    _check_env_settings(Settings.from_env(_environ(conns)))


def test_from_env_with_json_file(tmp_path: Path) -> None:
    path = tmp_path / "connections.json"
    path.write_text(json.dumps([connection(authorize_params={"prompt": "login"})]))
    _check_env_settings(Settings.from_env(_environ(str(path))))


def test_from_env_with_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "connections.toml"
    path.write_text(
        "[[connections]]\n"
        'id = "demo"\n'
        'issuer = "https://idp.example.com"\n'
        'client_id = "demo-client"\n'
        f'client_secret = "{CLIENT_SECRET}"\n'
        "[connections.authorize_params]\n"
        'prompt = "login"\n'
    )
    _check_env_settings(Settings.from_env(_environ(str(path))))


@pytest.mark.parametrize(
    "value", ["[not json", "/nonexistent/connections.json", "demo"], ids=["json", "path", "word"]
)
def test_from_env_bad_connections(value: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env(_environ(value))
    assert_names(str(info.value), "OAUTH_VAULT_CONNECTIONS")


def test_from_env_unreadable_toml(tmp_path: Path) -> None:
    path = tmp_path / "connections.toml"
    path.write_text("[[connections]\nid = ")
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env(_environ(str(path)))
    assert_names(str(info.value), "OAUTH_VAULT_CONNECTIONS")


# -- no secret in a repr ------------------------------------------------------------------


def test_repr_shows_no_secret() -> None:
    settings = Settings.from_mapping(mapping())
    for text in (repr(settings), str(settings), repr(settings.connections[0])):
        assert SECRET not in text
        assert KEY_B64 not in text
        assert repr(KEY) not in text
        assert CLIENT_SECRET not in text
    assert "demo-client" in repr(settings.connections[0])


def test_preset_authorize_params_are_merged_not_replaced() -> None:
    from oauth_vault_mw.core.config import parse_settings as parse

    base = {
        "secret_key": "s" * 40,
        "encryption_keys": ["A" * 43 + "="],
        "base_url": "https://app.example.com",
    }
    extra = {"hd": "example.com", "prompt": "select_account consent"}
    conn = {"id": "g", "preset": "google", "client_id": "c", "client_secret": "s",
            "authorize_params": extra}  # fmt: skip
    params = dict(parse({**base, "connections": [conn]}).connections[0].authorize_params)
    assert params == {"access_type": "offline", "hd": "example.com",
                      "prompt": "select_account consent"}  # fmt: skip


@pytest.mark.parametrize(
    "host", ["evil.localhost", "app.localhost", "localhost.example", "10.0.0.1", "::2", ""]
)
def test_is_loopback_host_evil_localhost_is_not_loopback(host: str) -> None:
    """Plain http is for localhost, 127.0.0.0/8 and ::1 only: a ``*.localhost`` name may
    resolve anywhere."""
    assert not is_loopback_host(host)
