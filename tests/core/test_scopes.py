"""Granted scopes (``core/scopes.py``): the ``scope`` parameter, what a login granted, what a
connect asks for, what a caller lacks, what the user declined, the 403 and its login URL."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oauth_vault_mw import BadRequest, InsufficientScope, PermissionDenied
from oauth_vault_mw.core.config import ConnectionConfig
from oauth_vault_mw.core.connections import parse_connection
from oauth_vault_mw.core.flow import LoginTransaction, authorization_url, new_transaction
from oauth_vault_mw.core.identity import me_payload
from oauth_vault_mw.core.model import CredentialKey, StoredCredential, TokenSet
from oauth_vault_mw.core.scopes import (
    MAX_ASKED_SCOPE,
    MAX_SCOPE_PARAM,
    MAX_SCOPES,
    add_return_to,
    connect_scopes,
    declined_scopes,
    insufficient_scope,
    login_scope,
    merge_scopes,
    missing_scopes,
    parse_scope_param,
)
from oauth_vault_mw.core.tokens import TokenGranted, parse_token_response

BASE = "https://app.example.com/auth"
GOOGLE_EMAIL = "https://www.googleapis.com/auth/userinfo.email"


def conn(**overrides: Any) -> ConnectionConfig:
    data: dict[str, Any] = {
        "id": "demo",
        "client_id": "c",
        "client_secret": "s",
        "issuer": "https://idp.example.com",
        "scopes": ("openid", "email"),
    }
    data.update(overrides)
    return ConnectionConfig(**data)


def google() -> ConnectionConfig:
    return parse_connection(0, {"id": "google", "preset": "google", "client_id": "c",
                                "client_secret": "s"})  # fmt: skip


def granted(scope: str | None, asked: str | None = None, *, refresh: bool = True) -> TokenSet:
    return TokenSet("at", "rt" if refresh else None, scope=scope, asked_scope=asked)


# ---------------------------------------------------------------- the scope parameter


def test_the_scope_parameter_is_space_separated_scope_tokens() -> None:
    assert parse_scope_param("calendar.readonly drive.file") == ("calendar.readonly", "drive.file")
    assert parse_scope_param("  a   b ") == ("a", "b")
    assert parse_scope_param("https://www.googleapis.com/auth/drive.file") == (
        "https://www.googleapis.com/auth/drive.file",
    )
    assert parse_scope_param("repo,gist") == ("repo,gist",)  # a comma is a scope-token char


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        'a"b',
        "a\\b",
        "a\tb",
        "caf\u00e9",
        "a\x00",
        "a\x7f",
        "a a",
        "drive.file calendar drive.file",
        "x" * (MAX_SCOPE_PARAM + 1),
        " ".join(f"s{i}" for i in range(MAX_SCOPES + 1)),
    ],
)
def test_a_bad_scope_parameter_is_a_400(value: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_scope_param(value)
    assert caught.value.status_code == 400
    assert value[:20] not in caught.value.description or not value.strip()


def test_a_comma_separated_provider_takes_no_comma_inside_a_scope() -> None:
    assert parse_scope_param("read activity:read", separator=",") == ("read", "activity:read")
    with pytest.raises(BadRequest, match="spaces"):
        parse_scope_param("read,activity:read", separator=",")


@given(st.text(max_size=200))
def test_the_scope_parameter_never_fails_otherwise(value: str) -> None:
    try:
        names = parse_scope_param(value)
    except BadRequest:
        return
    assert names
    assert len(set(names)) == len(names)
    assert all(name.isascii() and name.isprintable() and " " not in name for name in names)


# ---------------------------------------------------------------- what a login granted


def test_the_granted_scope_is_the_reply_s_then_the_callback_s_then_the_asked_one() -> None:
    asked = "openid email drive.file"
    assert login_scope("openid email", "openid drive.file", asked) == "openid email"
    assert login_scope(None, "read,activity:read", asked) == "read activity:read"  # Strava
    assert login_scope(None, None, asked) == asked  # RFC 6749 5.1
    assert login_scope(None, "", asked) == asked
    assert login_scope(None, None, "") is None


def test_a_refresh_reply_without_scope_keeps_the_granted_and_the_asked_scope() -> None:
    before = granted("openid drive.file", "openid email drive.file")
    body = json.dumps({"access_token": "new", "expires_in": 60}).encode()
    out = parse_token_response(
        200, "application/json", body, now=1.0, default_expires_in=3600, previous=before
    )
    assert isinstance(out, TokenGranted)
    assert out.tokens.scope == "openid drive.file"
    assert out.tokens.asked_scope == "openid email drive.file"
    narrowed = json.dumps({"access_token": "n", "scope": "openid"}).encode()
    out = parse_token_response(
        200, "application/json", narrowed, now=1.0, default_expires_in=3600, previous=before
    )
    assert isinstance(out, TokenGranted)
    assert out.tokens.scope == "openid"  # the provider's word


def test_the_asked_scope_survives_sealing() -> None:
    tokens = granted("openid", "openid drive.file")
    assert TokenSet.from_bytes(tokens.to_bytes()).asked_scope == "openid drive.file"
    assert b'"as"' not in granted("openid").to_bytes()  # not written when unknown
    assert TokenSet.from_bytes(granted("openid").to_bytes()).asked_scope is None


# ---------------------------------------------------------------- what a connect asks for


def test_merge_keeps_the_first_order_and_each_scope_once() -> None:
    assert merge_scopes(["a", "b"], ["b", "c"], ["a", "d"]) == ("a", "b", "c", "d")


def test_a_connect_asks_for_the_configured_the_granted_and_the_new_scopes() -> None:
    c = conn()
    assert connect_scopes(c, "openid email calendar", ["drive"]) == (
        "openid",
        "email",
        "calendar",
        "drive",
    )
    assert connect_scopes(c, None, []) == ("openid", "email")
    with pytest.raises(BadRequest):
        connect_scopes(c, " ".join(f"scope-{i:04}" for i in range(MAX_ASKED_SCOPE // 10)), [])


def test_a_connect_asks_for_renamed_scopes_by_the_names_they_are_asked_by() -> None:
    g = google()
    granted_scope = f"openid {GOOGLE_EMAIL} https://www.googleapis.com/auth/drive.file"
    asked = connect_scopes(g, granted_scope, ["calendar"])
    assert asked == (
        "openid",
        "email",
        "profile",
        "https://www.googleapis.com/auth/drive.file",
        "calendar",
    )


def test_the_transaction_carries_the_asked_scope_to_the_authorization_url() -> None:
    c = conn(scope_separator=",")
    tx = new_transaction(
        c, mode="connect", return_to="/", user_id="u1", now=1.0, scope=("openid", "drive")
    )
    assert LoginTransaction.from_bytes(tx.to_bytes()) == tx
    query = parse_qs(urlsplit(authorization_url(c, "https://idp/authorize", "r", tx)).query)
    assert query["scope"] == ["openid,drive"]
    plain_tx = new_transaction(c, mode="login", return_to="/", user_id=None, now=1.0)
    assert '"sc"' not in plain_tx.to_bytes().decode()
    query = parse_qs(urlsplit(authorization_url(c, "https://idp/authorize", "r", plain_tx)).query)
    assert query["scope"] == ["openid,email"]


def test_google_asks_to_keep_the_earlier_grants_unless_the_connection_says_otherwise() -> None:
    tx = new_transaction(google(), mode="login", return_to="/", user_id=None, now=1.0)
    query = parse_qs(urlsplit(authorization_url(google(), "https://g/auth", "r", tx)).query)
    assert query["include_granted_scopes"] == ["true"]
    own = parse_connection(
        0,
        {
            "id": "google",
            "preset": "google",
            "client_id": "c",
            "client_secret": "s",
            "authorize_params": {"include_granted_scopes": "false"},
        },
    )
    query = parse_qs(urlsplit(authorization_url(own, "https://g/auth", "r", tx)).query)
    assert query["include_granted_scopes"] == ["false"]
    tx = new_transaction(conn(), mode="login", return_to="/", user_id=None, now=1.0)
    assert "include_granted_scopes" not in authorization_url(conn(), "https://i/a", "r", tx)


# ---------------------------------------------------------------- what a caller lacks


def test_missing_scopes_in_the_order_asked() -> None:
    tokens = granted("openid email calendar")
    assert missing_scopes(conn(), tokens, ["calendar", "email"]) == ()
    assert missing_scopes(conn(), tokens, ["drive", "calendar", "contacts"]) == (
        "drive",
        "contacts",
    )
    assert missing_scopes(conn(), tokens, "drive calendar") == ("drive",)
    assert missing_scopes(conn(), granted(None), ["openid"]) == ("openid",)
    assert missing_scopes(conn(), tokens, []) == ()


def test_offline_access_is_granted_by_a_refresh_token() -> None:
    assert missing_scopes(conn(), granted("openid"), ["offline_access"]) == ()
    lacking = granted("openid", refresh=False)
    assert missing_scopes(conn(), lacking, ["offline_access"]) == ("offline_access",)


def test_a_scope_reported_under_another_name_is_granted() -> None:
    tokens = granted(f"openid {GOOGLE_EMAIL}")
    assert missing_scopes(google(), tokens, ["email", GOOGLE_EMAIL, "openid"]) == ()
    assert missing_scopes(google(), tokens, ["profile"]) == ("profile",)
    assert missing_scopes(conn(), tokens, ["email"]) == ("email",)  # no alias without the preset


# ---------------------------------------------------------------- what the user declined


def test_declined_scopes_are_asked_and_not_granted() -> None:
    tokens = granted("openid email", "openid email calendar drive")
    assert declined_scopes(conn(), tokens) == ["calendar", "drive"]
    assert declined_scopes(conn(), granted("openid email", "openid email")) == []
    assert declined_scopes(conn(), granted("openid email")) == []  # asked: not known
    google_tokens = granted(f"openid {GOOGLE_EMAIL}", "openid email profile offline_access")
    assert declined_scopes(google(), google_tokens) == ["profile"]


def test_me_shows_granted_and_declined_scopes() -> None:
    key = CredentialKey("demo", "u1")
    record = StoredCredential(key, 1, "sealed", scope="openid email")
    tokens = granted("openid email", "openid email calendar.readonly")
    payload = me_payload("u1", [record], {"demo": conn()}, {key: tokens})
    entry = payload["connections"][0]
    assert entry["scope"] == "openid email"
    assert entry["granted_scopes"] == ["openid", "email"]
    assert entry["declined_scopes"] == ["calendar.readonly"]
    unopened = me_payload("u1", [record], ["demo"])["connections"][0]
    assert (unopened["granted_scopes"], unopened["declined_scopes"]) == (["openid", "email"], [])


# ---------------------------------------------------------------- the 403


def test_insufficient_scope_is_a_403_with_missing_scopes_and_a_connect_url() -> None:
    tokens = granted("openid email calendar.readonly")
    exc = insufficient_scope(BASE, conn(), tokens, ("drive.file",))
    assert isinstance(exc, PermissionDenied)
    assert exc.status_code == 403
    body = exc.to_dict()
    assert body["error"] == "insufficient_scope"
    assert body["missing_scopes"] == ["drive.file"]
    assert "drive.file" in body["error_description"]
    url = urlsplit(body["login_url"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{BASE}/connect/demo"
    # what was granted beyond the connection's own scopes, and the missing ones
    assert parse_qs(url.query) == {"scope": ["calendar.readonly drive.file"]}
    assert exc.connection_id == "demo"


def test_a_long_grant_leaves_the_login_url_asking_for_the_missing_scopes_only() -> None:
    many = " ".join(f"https://api.example.com/scope/{i}" for i in range(40))
    exc = insufficient_scope(BASE, conn(), granted(many), ("drive.file",))
    assert parse_qs(urlsplit(exc.login_url).query) == {"scope": ["drive.file"]}
    parse_scope_param(parse_qs(urlsplit(exc.login_url).query)["scope"][0])  # the route takes it


def test_the_login_url_comes_back_to_a_same_origin_path_only() -> None:
    exc = insufficient_scope(BASE, conn(), granted("openid"), ("drive",))
    add_return_to(exc, "/drive?folder=a b&x=1")
    query = parse_qs(urlsplit(exc.login_url).query)
    assert query["return_to"] == ["/drive?folder=a b&x=1"]
    assert query["scope"] == ["drive"]
    add_return_to(exc, "/other")  # once only
    assert parse_qs(urlsplit(exc.login_url).query)["return_to"] == ["/drive?folder=a b&x=1"]
    for bad in ("//evil.example", "https://evil.example/", "/a\\b", "x" * 600):
        other = insufficient_scope(BASE, conn(), granted("openid"), ("drive",))
        add_return_to(other, bad)
        assert "return_to" not in other.login_url


def test_insufficient_scope_is_exported() -> None:
    import oauth_vault_mw

    assert oauth_vault_mw.InsufficientScope is InsufficientScope
