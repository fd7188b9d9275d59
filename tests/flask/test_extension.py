"""The extension: configuration, app factories, several apps per process, request class."""

from __future__ import annotations

import gc
import inspect
import json
import logging
import subprocess
import sys
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, Request

import oauth_vault_mw.flask
from oauth_vault_mw import ConfigurationError, MiddlewareNotInstalled, NewIdentity, Settings, Vault
from oauth_vault_mw.flask import (
    OAuthVault,
    VaultRequest,
    connection_credentials,
    current_user_id,
    settings_from_config,
)
from tests.support.oidc_provider import DevProvider
from tests.support.suite import BASE, new_key

from .conftest import config_for, harness_for, make_app

pytestmark = pytest.mark.integration

KEY = new_key()
MINIMAL = {
    "OAUTH_VAULT_SECRET_KEY": "k" * 40,
    "OAUTH_VAULT_ENCRYPTION_KEYS": KEY,
    "OAUTH_VAULT_BASE_URL": "http://127.0.0.1:8000",
    "OAUTH_VAULT_STORAGE_URL": "memory://",
    "OAUTH_VAULT_CONNECTIONS": json.dumps([{
        "id": "plain", "authorize_url": "http://127.0.0.1:9/a", "token_url": "http://127.0.0.1:9/t",
        "userinfo_url": "http://127.0.0.1:9/u", "client_id": "c", "client_secret": "s",
    }]),
}  # fmt: skip


def _app(config: dict[str, Any], ext: OAuthVault | None = None, **options: Any) -> Flask:
    app = Flask(__name__)
    app.config.update(config)
    (ext or OAuthVault()).init_app(app, **options)
    return app


def _vault(app: Flask) -> Vault:
    vault = app.extensions["oauth_vault"]
    assert isinstance(vault, Vault)
    return vault


# -- configuration ------------------------------------------------------------------------


def test_settings_from_config_strings_as_in_the_environment(tmp_path: Path) -> None:
    second = new_key()
    conns = tmp_path / "connections.toml"
    conns.write_text(
        '[[connections]]\nid = "plain"\nauthorize_url = "http://127.0.0.1:9/a"\n'
        'token_url = "http://127.0.0.1:9/t"\nuserinfo_url = "http://127.0.0.1:9/u"\n'
        'client_id = "c"\nclient_secret = "s"\n'
    )
    config = {
        **MINIMAL,
        "OAUTH_VAULT_ENCRYPTION_KEYS": f"{KEY},{second}",
        "OAUTH_VAULT_CONNECTIONS": str(conns),
        "OAUTH_VAULT_PREFIX": "/vault",
        "OAUTH_VAULT_SESSION_MAX_AGE": "3600",
        "OAUTH_VAULT_PROVIDER_TIMEOUT": "1.5",
        "OAUTH_VAULT_CLOCK_SKEW": "",  # empty: unset, as an empty environment variable
        "SECRET_KEY": "flask's own, not ours",
    }
    settings = settings_from_config(config)
    assert len(settings.encryption_keys) == 2
    assert settings.prefix == "/vault"
    assert settings.session_max_age == 3600
    assert settings.provider_timeout == 1.5
    assert settings.clock_skew == 120
    assert settings.secret_key == "k" * 40
    assert [c.id for c in settings.connections] == ["plain"]
    assert settings == Settings.from_env({k: str(v) for k, v in config.items()})


def test_settings_from_config_python_values() -> None:
    config = {
        **MINIMAL,
        "OAUTH_VAULT_ENCRYPTION_KEYS": [KEY],
        "OAUTH_VAULT_CONNECTIONS": json.loads(MINIMAL["OAUTH_VAULT_CONNECTIONS"]),
        "OAUTH_VAULT_REFRESH_ATTEMPTS": 5,
    }
    assert settings_from_config(config).refresh_attempts == 5


@pytest.mark.parametrize(
    ("change", "message"),
    [({"OAUTH_VAULT_SECRET_KEY": "short"}, "OAUTH_VAULT_SECRET_KEY: required"),
     ({"OAUTH_VAULT_ENCRYPTION_KEYS": None}, "OAUTH_VAULT_ENCRYPTION_KEYS: required"),
     ({"OAUTH_VAULT_BASE_URL": "http://app.example.com"}, "OAUTH_VAULT_BASE_URL: plain http"),
     ({"OAUTH_VAULT_CONNECTIONS": "[{]"}, "OAUTH_VAULT_CONNECTIONS: invalid JSON"),
     ({"OAUTH_VAULT_PREFIX": "auth"}, "OAUTH_VAULT_PREFIX: must look like /auth"),
     ({"OAUTH_VAULT_STORAGE_URL": "redis2://x"}, "OAUTH_VAULT_STORAGE_URL: unsupported")],
)  # fmt: skip
def test_bad_configuration_fails_in_init_app(change: dict[str, Any], message: str) -> None:
    app = Flask(__name__)
    app.config.update({**MINIMAL, **change})
    with pytest.raises(ConfigurationError) as caught:
        OAuthVault(app)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)
    assert "oauth_vault" not in app.extensions
    assert "oauth_vault" not in app.blueprints


def test_settings_and_mapping_arguments_win_over_config() -> None:
    mapping = {k[len("OAUTH_VAULT_") :].lower(): v for k, v in MINIMAL.items()}
    mapping["connections"] = json.loads(mapping["connections"])
    by_mapping = _app({}, settings={**mapping, "prefix": "/m"})
    by_settings = _app({"OAUTH_VAULT_PREFIX": "/ignored"}, settings=Settings.from_mapping(
        {**mapping, "prefix": "/s"}))  # fmt: skip
    by_default = _app(MINIMAL, OAuthVault(settings={**mapping, "prefix": "/d"}))
    assert _vault(by_mapping).settings.prefix == "/m"
    assert _vault(by_settings).settings.prefix == "/s"
    assert _vault(by_default).settings.prefix == "/d"
    for app in (by_mapping, by_settings, by_default):
        _vault(app).close()


def test_init_app_twice_is_refused() -> None:
    app = _app(MINIMAL)
    with pytest.raises(RuntimeError, match="already initialised"):
        OAuthVault(app)
    _vault(app).close()


def test_tables_are_created_at_init_app(tmp_path: Path) -> None:
    db = tmp_path / "vault.db"
    app = _app({**MINIMAL, "OAUTH_VAULT_STORAGE_URL": f"sqlite:///{db}"})
    assert db.exists()
    assert "SQLStorage" in repr(_vault(app))
    _vault(app).close()


# -- apps, factories, references ----------------------------------------------------------


def test_app_factory_and_two_apps_with_different_settings(
    provider: DevProvider, server_port: int, unique_user: Callable[[], str]
) -> None:
    ext = OAuthVault()  # one module-level extension, as in an app factory project

    def create_app(**overrides: Any) -> Flask:
        return make_app(config_for(provider, **overrides), ext)

    other_base = f"http://127.0.0.1:{server_port}"
    first = harness_for(create_app(), provider)
    second = harness_for(
        create_app(base_url=other_base, secret_key="t" * 48, connections=[
            {"id": "second", "issuer": provider.issuer, "client_id": "second",
             "client_secret": "second-secret"}]),
        provider, base=other_base,
    )  # fmt: skip
    with first.client, first.browser, second.client, second.browser:
        assert first.vault is not second.vault
        assert first.vault.settings.base_url == BASE
        assert second.vault.settings.base_url == other_base
        with first.app.app_context():
            assert ext.get_vault() is first.vault
        assert ext.get_vault(second.app) is second.vault

        assert first.login(user=unique_user()).status_code == 303
        assert second.login("second", unique_user()).status_code == 303
        one, two = first.user_id(), second.user_id()
        assert one != two
        assert first.client.get("/fn/demo").json()["user_id"] == one
        assert second.client.get("/fn/second").json()["user_id"] == two
        # Each app knows only its connections, sessions and keys.
        assert second.client.get("/auth/login/demo").status_code == 404
        stolen = {"Cookie": f"oauth_vault_session={first.client.cookies['oauth_vault_session']}"}
        second.client.cookies.clear()
        assert second.client.get("/auth/me", headers=stolen).status_code == 401
    first.vault.close()
    second.vault.close()


def test_the_extension_keeps_no_reference_to_the_app() -> None:
    ext = OAuthVault()
    app = _app(MINIMAL, ext)
    vault = _vault(app)
    app_ref = weakref.ref(app)
    del app
    gc.collect()
    assert app_ref() is None  # nothing (the extension, the vault, a finalizer) holds it
    assert vault.provider.client.is_closed  # the app's vault is closed with it
    assert not any(isinstance(v, Flask) for v in vars(ext).values())


def test_a_given_vault_is_shared_and_left_open() -> None:
    settings = settings_from_config(MINIMAL)
    vault = Vault(settings)
    apps = [_app({}, vault=vault) for _ in range(2)]
    assert all(_vault(app) is vault for app in apps)
    del apps
    gc.collect()
    assert not vault.provider.client.is_closed  # the caller owns it
    vault.close()


# -- request class, per-request cache -------------------------------------------------------


def test_request_class_is_set_unless_the_app_has_its_own(
    caplog: pytest.LogCaptureFixture,
) -> None:
    plain = _app(MINIMAL)
    assert plain.request_class is VaultRequest
    assert Flask.request_class is Request  # set on the instance only

    class Mine(Request):
        pass

    class Theirs(VaultRequest):
        pass

    custom = Flask(__name__)
    custom.request_class = Mine
    custom.config.update(MINIMAL)
    with caplog.at_level(logging.INFO, logger="oauth_vault_mw"):
        OAuthVault(custom)
    assert custom.request_class is Mine
    assert any("connection_credentials()" in r.getMessage() and r.levelno == logging.INFO
               for r in caplog.records)  # fmt: skip

    derived = Flask(__name__)
    derived.request_class = Theirs
    derived.config.update(MINIMAL)
    OAuthVault(derived)
    assert derived.request_class is Theirs
    for app in (plain, custom, derived):
        _vault(app).close()


def test_custom_request_class_uses_the_function_form(
    provider: DevProvider, unique_user: Callable[[], str]
) -> None:
    class Mine(Request):
        pass

    app = Flask(__name__)
    app.request_class = Mine
    app.config.update(config_for(provider))
    OAuthVault(app)

    @app.get("/fn/<cid>")
    def by_function(cid: str) -> dict[str, Any]:
        return {"token": connection_credentials(cid).access_token, "user": current_user_id()}

    h = harness_for(app, provider)
    with h.client, h.browser:
        h.login(user=unique_user())
        answer = h.client.get("/fn/demo").json()
        assert answer["user"] == h.user_id()
        assert answer["token"]
    h.vault.close()


def test_user_lookup_once_per_request_and_never_across_requests(
    provider: DevProvider, unique_user: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(config_for(provider))

    @app.get("/twice")
    def twice() -> dict[str, Any]:
        return {"ids": [current_user_id(), current_user_id()],
                "token": bool(connection_credentials("demo").access_token)}  # fmt: skip

    h = harness_for(app, provider)
    lookups: list[str | None] = []
    original = h.vault.user_for_session

    def counting(cookie: str | None) -> str | None:
        lookups.append(cookie)
        return original(cookie)

    monkeypatch.setattr(h.vault, "user_for_session", counting)
    with h.client, h.browser:
        h.login(user=unique_user())
        user_id = h.user_id()
        lookups.clear()
        assert h.client.get("/twice").json() == {"ids": [user_id, user_id], "token": True}
        assert len(lookups) == 1
        # One app context around several requests shares flask.g: the cache must not.
        cookie = h.client.cookies["oauth_vault_session"]
        test_client = app.test_client()
        with app.app_context():
            test_client.set_cookie("oauth_vault_session", cookie)
            seen = test_client.get("/fn/demo").json
            assert seen is not None
            assert seen["user_id"] == user_id
            test_client.delete_cookie("oauth_vault_session")
            assert test_client.get("/fn/demo").status_code == 401
    h.vault.close()


def test_new_user_id_hook(provider: DevProvider, unique_user: Callable[[], str]) -> None:
    seen: list[str] = []

    def hook(identity: NewIdentity) -> str:
        seen.append(identity.subject)
        return "user-42"

    h = harness_for(make_app(config_for(provider), new_user_id=hook), provider)
    with h.client, h.browser:
        login = unique_user()
        h.login(user=login)
        assert h.user_id() == "user-42"
        assert seen == [login]
    h.vault.close()


def test_get_vault_without_the_extension() -> None:
    with pytest.raises(MiddlewareNotInstalled):
        OAuthVault().get_vault(Flask(__name__))


# -- public API ---------------------------------------------------------------------------


def test_exported_members() -> None:
    package = oauth_vault_mw.flask
    assert package.__all__ == sorted(set(package.__all__))
    assert [name for name in package.__all__ if not hasattr(package, name)] == []
    public = {
        name
        for name, value in vars(package).items()
        if not name.startswith("_") and not inspect.ismodule(value) and name != "annotations"
    }
    assert sorted(public - set(package.__all__)) == []


def test_missing_flask_gives_the_install_hint(tmp_path: Path) -> None:
    shim = tmp_path / "flask"
    shim.mkdir()
    (shim / "__init__.py").write_text('raise ImportError("no flask here")\n')
    done = subprocess.run(
        [sys.executable, "-c", "import oauth_vault_mw.flask"],
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "ImportError: oauth_vault_mw.flask needs Flask: pip install 'oauth-vault-mw[flask]'"
    )
