"""The authorization code flow: return_to, the authorization URL, and callback checks."""

from __future__ import annotations

import base64
import hashlib
import itertools
import os
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oauth_vault_mw import BadRequest, CallbackError, InvalidState
from oauth_vault_mw.core.config import ConnectionConfig
from oauth_vault_mw.core.cookies import MAX_STATE_COOKIE, CookieJar
from oauth_vault_mw.core.crypto import Sealer
from oauth_vault_mw.core.flow import (
    MAX_RETURN_TO,
    LoginTransaction,
    authorization_url,
    callback_state,
    check_return_to,
    new_transaction,
    verify_callback,
)
from oauth_vault_mw.core.records import open_transaction, seal_transaction

NOW = 1_700_000_000.0
ISSUER = "https://idp.example.com"
REDIRECT = "https://app.example.com/auth/callback/demo"


def oidc(**overrides: Any) -> ConnectionConfig:
    data: dict[str, Any] = {
        "id": "demo",
        "client_id": "demo-client",
        "client_secret": "s",
        "issuer": ISSUER,
        "scopes": ("openid", "email"),
        "authorize_params": (("access_type", "offline"), ("prompt", "consent")),
    }
    data.update(overrides)
    return ConnectionConfig(**data)


def plain() -> ConnectionConfig:
    return ConnectionConfig(
        id="gh",
        client_id="gh-client",
        client_secret="s",
        authorize_url="https://github.com/login/oauth/authorize",
        token_url="https://github.com/login/oauth/access_token",
        userinfo_url="https://api.github.com/user",
        scopes=("read:user",),
    )


def fixed_tokens() -> Callable[[int], str]:
    counter = itertools.count()
    return lambda n: f"tok{next(counter)}-{'x' * n}"


def transaction(conn: ConnectionConfig | None = None) -> LoginTransaction:
    return new_transaction(
        conn or oidc(), mode="login", return_to="/", user_id=None, now=NOW, token=fixed_tokens()
    )


# -- return_to ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["/", "/a/b?x=1", "/dashboard", "/a/b/?q=%2F%2Fx#frag", "/caf%C3%A9", "/a:b"]
)
def test_return_to_accepts_local_paths(value: str) -> None:
    assert check_return_to(value) == value


@pytest.mark.parametrize("value", [None, ""])
def test_return_to_defaults_to_root(value: str | None) -> None:
    assert check_return_to(value) == "/"


@pytest.mark.parametrize(
    "value",
    [
        "//evil.example",
        "///evil.example",
        "/\\evil.example",
        "\\",
        "\\\\evil.example",
        "http://evil.example",
        "https://evil.example/",
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        "evil.example",
        "/a//b",
        "/a/b//",
        "/\tevil",
        "/\t/evil.example",
        "/\r\nSet-Cookie: x=1",
        "/a\x00b",
        "/a\x7fb",
        "/" + "a" * MAX_RETURN_TO,
    ],
)
def test_return_to_refuses_anything_else(value: str) -> None:
    with pytest.raises(BadRequest):
        check_return_to(value)


def test_return_to_length_bound() -> None:
    assert check_return_to("/" + "a" * (MAX_RETURN_TO - 1))


@settings(database=None, derandomize=True, max_examples=500, deadline=None)
@given(
    st.one_of(
        st.text(max_size=40),
        st.builds(
            "".join,
            st.lists(st.sampled_from(["/", "\\", ":", "//", "a", "@", ".", "?", "#", "%", " "])),
        ),
    )
)
def test_accepted_return_to_stays_on_this_site(value: str) -> None:
    try:
        accepted = check_return_to(value)
    except BadRequest:
        return
    assert accepted.startswith("/")
    parts = urlsplit(accepted)
    assert not parts.scheme
    assert not parts.netloc
    assert urlsplit(urljoin("https://app.example.com/base/", accepted)).netloc == (
        "app.example.com"
    )


# -- the authorization URL ----------------------------------------------------------------


def _query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query, keep_blank_values=True)


def test_authorization_url_oidc() -> None:
    tx = transaction()
    url = authorization_url(oidc(), f"{ISSUER}/authorize", REDIRECT, tx)
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "idp.example.com", "/authorize")
    assert not parts.fragment
    q = _query(url)
    assert q["response_type"] == ["code"]
    assert q["client_id"] == ["demo-client"]
    assert q["redirect_uri"] == [REDIRECT]
    assert q["state"] == [tx.state]
    assert q["nonce"] == [tx.nonce]
    assert q["scope"] == ["openid email"]
    assert q["access_type"] == ["offline"]
    assert q["prompt"] == ["consent"]
    assert q["code_challenge_method"] == ["S256"]
    expected = base64.urlsafe_b64encode(hashlib.sha256(tx.code_verifier.encode()).digest())
    assert q["code_challenge"] == [expected.rstrip(b"=").decode()]
    assert tx.code_verifier not in url


def test_authorization_url_plain_oauth2_has_no_nonce() -> None:
    tx = transaction(plain())
    assert tx.nonce is None
    q = _query(authorization_url(plain(), "https://github.com/login/oauth/authorize", "x", tx))
    assert "nonce" not in q
    assert q["scope"] == ["read:user"]
    assert q["code_challenge_method"] == ["S256"]


def test_authorization_url_keeps_the_endpoint_query() -> None:
    tx = transaction()
    url = authorization_url(oidc(), f"{ISSUER}/authorize?tenant=t1&p=a%20b#frag", REDIRECT, tx)
    q = _query(url)
    assert q["tenant"] == ["t1"]
    assert q["p"] == ["a b"]
    assert q["state"] == [tx.state]
    assert urlsplit(url).fragment == ""


def test_authorization_url_without_scopes_sends_no_scope() -> None:
    c = oidc(scopes=())
    assert "scope" not in _query(authorization_url(c, f"{ISSUER}/a", REDIRECT, transaction(c)))


def test_new_transaction_draws_fresh_secrets() -> None:
    a = new_transaction(oidc(), mode="connect", return_to="/x", user_id="u1", now=NOW)
    b = new_transaction(oidc(), mode="connect", return_to="/x", user_id="u1", now=NOW)
    assert a.state != b.state
    assert a.code_verifier != b.code_verifier
    assert a.nonce != b.nonce
    assert 43 <= len(a.code_verifier) <= 128  # RFC 7636 4.1
    assert (a.mode, a.user_id, a.return_to, a.created_at) == ("connect", "u1", "/x", NOW)
    assert LoginTransaction.from_bytes(a.to_bytes()) == a
    assert a.code_verifier not in repr(a)
    assert a.nonce is not None
    assert a.nonce not in repr(a)


# -- callback_state -----------------------------------------------------------------------


def test_callback_state_matches_the_cookie() -> None:
    assert callback_state({"state": "abc", "code": "c"}, "abc") == "abc"


@pytest.mark.parametrize(
    ("params", "cookie"),
    [
        ({"code": "c"}, "abc"),
        ({"state": "", "code": "c"}, "abc"),
        ({"state": "abc"}, None),
        ({"state": "abc"}, ""),
        ({"state": "abd"}, "abc"),
        ({"state": "abc"}, "abcd"),
        ({"state": "é"}, "e"),
    ],
)
def test_callback_state_refused(params: dict[str, str], cookie: str | None) -> None:
    with pytest.raises(InvalidState):
        callback_state(params, cookie)


@pytest.mark.parametrize(
    "params",
    [{"state": "a" * 4097}, {"code": "c" * 4097, "state": "abc"}, {"x" * 65: "1", "state": "abc"}],
    ids=["state", "code", "name"],
)
def test_callback_state_too_long(params: dict[str, str]) -> None:
    with pytest.raises(BadRequest) as info:
        callback_state(params, "abc")
    assert not isinstance(info.value, InvalidState)
    assert info.value.status_code == 400


# -- verify_callback ----------------------------------------------------------------------


def verify(
    params: dict[str, str],
    tx: LoginTransaction | None = None,
    *,
    connection_id: str = "demo",
    expected_issuer: str | None = ISSUER,
    iss_required: bool = False,
    now: float = NOW + 5,
    max_age: int = 600,
) -> str:
    return verify_callback(
        params,
        tx or transaction(),
        connection_id=connection_id,
        expected_issuer=expected_issuer,
        iss_required=iss_required,
        now=now,
        max_age=max_age,
    )


def test_verify_callback_returns_the_code() -> None:
    assert verify({"code": "the-code", "state": "s"}) == "the-code"


def test_verify_callback_wrong_connection() -> None:
    with pytest.raises(InvalidState):
        verify({"code": "c"}, connection_id="other")


def test_verify_callback_expired_transaction() -> None:
    assert verify({"code": "c"}, now=NOW + 600) == "c"
    with pytest.raises(InvalidState):
        verify({"code": "c"}, now=NOW + 601)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        ("access_denied", "access_denied"),
        ("temporarily_unavailable", "temporarily_unavailable"),
        ("<script>", "invalid"),
        ("access_denied\r\n2026-01-01 INFO forged log line", "invalid"),
        ("", "invalid"),
        ("e" * 100, "e" * 64),
    ],
)
def test_verify_callback_provider_error(error: str, code: str) -> None:
    with pytest.raises(CallbackError) as info:
        verify({"error": error, "error_description": "User said no", "code": "c"})
    assert info.value.error == code
    assert info.value.status_code == 400
    assert "<script>" not in info.value.description


def test_verify_callback_iss_mismatch() -> None:
    with pytest.raises(CallbackError):
        verify({"code": "c", "iss": "https://evil.example.com"})


def test_verify_callback_iss_ignored_on_plain_oauth2() -> None:
    # No configured issuer (plain OAuth 2.0): nothing to compare; its own redirect URI is
    # the mix-up defence, so an RFC 9207 provider can still log in.
    assert verify({"code": "c", "iss": ISSUER}, expected_issuer=None) == "c"


def test_verify_callback_checks_iss_on_error_responses() -> None:
    with pytest.raises(CallbackError) as info:
        verify({"error": "access_denied", "iss": "https://evil.example.com"})
    assert info.value.error == "invalid_callback"
    with pytest.raises(CallbackError) as info:
        verify({"error": "access_denied", "iss": ISSUER})
    assert info.value.error == "access_denied"


def test_verify_callback_iss_missing_when_required() -> None:
    with pytest.raises(CallbackError):
        verify({"code": "c"}, iss_required=True)
    assert verify({"code": "c"}, iss_required=False) == "c"


def test_verify_callback_iss_accepted_when_equal() -> None:
    assert verify({"code": "c", "iss": ISSUER}, iss_required=True) == "c"


@pytest.mark.parametrize("params", [{}, {"code": ""}, {"state": "s"}])
def test_verify_callback_without_code(params: dict[str, str]) -> None:
    with pytest.raises(CallbackError):
        verify(params)


# -- the transaction in its cookie ----------------------------------------------------------


def test_the_largest_transaction_fits_in_a_browser_cookie() -> None:
    """Every field at its bound (connection id 64, user id 128, return_to 512 code points of
    4 UTF-8 bytes each): sealed, signed and named, still under the browsers' 4096 bytes."""
    return_to = check_return_to("/" + "\U0001f600" * (MAX_RETURN_TO - 1))
    tx = new_transaction(
        oidc(id="c" * 64), mode="connect", return_to=return_to, user_id="u" * 128, now=NOW
    )
    sealer = Sealer([os.urandom(32)])
    jar = CookieJar("k" * 48, secure=True, prefix="/auth", session_max_age=60, state_max_age=600)
    spec = jar.state_cookie(tx.state, seal_transaction(sealer, tx))
    assert len(spec.value) <= MAX_STATE_COOKIE
    assert len(spec.name) + len(spec.value) < 4096
    assert len(spec.header()) < 4096 + 100
    sealed = jar.read_state(spec.value)
    assert sealed is not None
    assert open_transaction(sealer, sealed) == tx


def test_return_to_with_a_lone_surrogate_is_refused() -> None:
    with pytest.raises(BadRequest):
        check_return_to("/a\udcff")
