"""Client authentication at the token endpoint, and the token request builders' headers."""

from __future__ import annotations

from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    NoEncryption,
    PrivateFormat,
)

from oauth_vault_mw.core.client_auth import (
    ASSERTION_TYPE,
    AUTH_METHODS,
    MAX_SECRET_LIFETIME,
    ClientSigner,
    check_client_auth,
    client_authentication,
)
from oauth_vault_mw.core.connections import ConnectionConfig
from oauth_vault_mw.core.errors import ConfigurationError
from oauth_vault_mw.core.http import HttpRequest
from oauth_vault_mw.core.token_requests import (
    code_exchange_request,
    refresh_request,
    revocation_request,
)
from tests.core.tokensets import NOW, REFRESH, tokens

TOKEN_URL = "https://idp.example.com/oauth2/v1/token"
APPLE = "https://appleid.apple.com"
APPLE_TOKEN = "https://appleid.apple.com/auth/token"


def _pem(key: Any) -> str:
    pem: bytes = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    return pem.decode()


EC_KEY = ec.generate_private_key(ec.SECP256R1())
EC384_KEY = ec.generate_private_key(ec.SECP384R1())
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ED_KEY = ed25519.Ed25519PrivateKey.generate()
EC_PEM = _pem(EC_KEY)
RSA_PEM = _pem(RSA_KEY)


def okta(**overrides: Any) -> ConnectionConfig:
    data: dict[str, Any] = {
        "id": "okta",
        "client_id": "0oa1b2c3d4",
        "issuer": "https://idp.example.com",
        "token_endpoint_auth_method": "private_key_jwt",
        "client_private_key": RSA_PEM,
        "client_key_id": "key-2026",
    }
    data.update(overrides)
    return ConnectionConfig(**data)


def apple(**overrides: Any) -> ConnectionConfig:
    data: dict[str, Any] = {
        "id": "apple",
        "client_id": "com.example.web",
        "issuer": APPLE,
        "token_endpoint_auth_method": "signed_client_secret",
        "client_private_key": EC_PEM,
        "client_key_id": "ABC123DEFG",
        "team_id": "DEF123GHIJ",
    }
    data.update(overrides)
    return ConnectionConfig(**data)


def claims(token: str, key: Any, audience: str, algorithm: str) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(
        token,
        key.public_key(),
        algorithms=[algorithm],
        audience=audience,
        options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
    )
    return decoded


# -- private_key_jwt (RFC 7523) -------------------------------------------------------------


def test_private_key_jwt_sends_a_signed_assertion() -> None:
    request = refresh_request(okta(), TOKEN_URL, REFRESH, now=NOW)
    assert "Authorization" not in request.headers
    assert request.headers["Accept"] == "application/json"
    form = request.form
    assert form["grant_type"] == "refresh_token"
    assert form["client_id"] == "0oa1b2c3d4"
    assert form["client_assertion_type"] == ASSERTION_TYPE
    assert "client_secret" not in form
    assertion = form["client_assertion"]
    header = jwt.get_unverified_header(assertion)
    assert header["alg"] == "RS256"
    assert header["kid"] == "key-2026"
    body = claims(assertion, RSA_KEY, TOKEN_URL, "RS256")
    assert body["iss"] == body["sub"] == "0oa1b2c3d4"
    assert body["aud"] == TOKEN_URL
    assert body["iat"] == int(NOW)
    assert body["exp"] == int(NOW) + 60
    assert len(body["jti"]) >= 16


def test_every_assertion_is_new() -> None:
    signer = ClientSigner()
    first = refresh_request(okta(), TOKEN_URL, REFRESH, now=NOW, signer=signer)
    second = refresh_request(okta(), TOKEN_URL, REFRESH, now=NOW, signer=signer)
    one = claims(first.form["client_assertion"], RSA_KEY, TOKEN_URL, "RS256")
    two = claims(second.form["client_assertion"], RSA_KEY, TOKEN_URL, "RS256")
    assert one["jti"] != two["jti"]


def test_the_assertion_is_addressed_to_the_url_called() -> None:
    exchange = code_exchange_request(okta(), TOKEN_URL, "code", "https://app/cb", "v", now=NOW)
    assert claims(exchange.form["client_assertion"], RSA_KEY, TOKEN_URL, "RS256")["aud"] == (
        TOKEN_URL
    )
    revoke = "https://idp.example.com/oauth2/v1/revoke"
    request = revocation_request(okta(), revoke, tokens(), now=NOW)
    assert request.form["token"] == REFRESH
    assert claims(request.form["client_assertion"], RSA_KEY, revoke, "RS256")["aud"] == revoke


@pytest.mark.parametrize(
    ("key", "algorithm"), [(EC_KEY, "ES256"), (EC384_KEY, "ES384"), (ED_KEY, "EdDSA")]
)
def test_the_key_type_picks_the_algorithm(key: Any, algorithm: str) -> None:
    conn = okta(client_private_key=_pem(key), client_key_id=None)
    assertion = refresh_request(conn, TOKEN_URL, REFRESH, now=NOW).form["client_assertion"]
    assert jwt.get_unverified_header(assertion) == {"alg": algorithm, "typ": "JWT"}
    assert claims(assertion, key, TOKEN_URL, algorithm)["sub"] == "0oa1b2c3d4"


# -- signed client secret (Sign in with Apple) ----------------------------------------------


def test_signed_client_secret_for_apple() -> None:
    request = code_exchange_request(apple(), APPLE_TOKEN, "c0de", "https://app/cb", "v", now=NOW)
    assert "Authorization" not in request.headers
    assert request.form["client_id"] == "com.example.web"
    secret = request.form["client_secret"]
    assert jwt.get_unverified_header(secret) == {"alg": "ES256", "kid": "ABC123DEFG", "typ": "JWT"}
    body = claims(secret, EC_KEY, APPLE, "ES256")
    assert body["iss"] == "DEF123GHIJ"
    assert body["sub"] == "com.example.web"
    assert body["aud"] == APPLE
    assert body["iat"] == int(NOW)
    assert 0 < body["exp"] - body["iat"] <= MAX_SECRET_LIFETIME  # at most six months


def test_signed_client_secret_is_kept_until_shortly_before_it_expires() -> None:
    signer = ClientSigner(secret_lifetime=86_400, renew_before=600)
    first = signer.client_secret(apple(), now=NOW)
    assert signer.client_secret(apple(), now=NOW + 1) == first
    assert signer.client_secret(apple(), now=NOW + 86_400 - 601) == first
    renewed = signer.client_secret(apple(), now=NOW + 86_400 - 600)
    assert renewed != first
    assert claims(renewed, EC_KEY, APPLE, "ES256")["exp"] == int(NOW) + 2 * 86_400 - 600
    assert repr(signer) == "ClientSigner(cached_secrets=1)"


def test_signed_client_secret_is_shared_by_the_request_builders() -> None:
    signer = ClientSigner()
    conn = apple()
    made = [
        code_exchange_request(
            conn, APPLE_TOKEN, "c", "https://app/cb", "v", now=NOW, signer=signer
        ),
        refresh_request(conn, APPLE_TOKEN, REFRESH, now=NOW + 30, signer=signer),
        revocation_request(conn, f"{APPLE}/auth/revoke", tokens(), now=NOW + 60, signer=signer),
    ]
    assert len({request.form["client_secret"] for request in made}) == 1


def test_a_new_key_or_a_clock_set_back_signs_a_new_secret() -> None:
    signer = ClientSigner()
    first = signer.client_secret(apple(), now=NOW)
    other_key = ec.generate_private_key(ec.SECP256R1())
    rotated = signer.client_secret(apple(client_private_key=_pem(other_key)), now=NOW)
    assert rotated != first
    assert claims(rotated, other_key, APPLE, "ES256")["iss"] == "DEF123GHIJ"
    assert signer.client_secret(apple(client_key_id="NEWKEY0001"), now=NOW) != first
    earlier = signer.client_secret(apple(), now=NOW - 10)
    assert earlier != first  # a secret issued "in the future" is not served
    assert claims(earlier, EC_KEY, APPLE, "ES256")["iat"] == int(NOW) - 10


def test_signed_secret_audience_without_an_issuer_is_the_token_origin() -> None:
    conn = apple(issuer=None, token_url="https://auth.example.com/oauth/token")
    secret = ClientSigner().client_secret(conn, now=NOW)
    assert claims(secret, EC_KEY, "https://auth.example.com", "ES256")["aud"] == (
        "https://auth.example.com"
    )
    with pytest.raises(ValueError, match="no issuer"):
        ClientSigner().client_secret(apple(issuer=None), now=NOW)


@pytest.mark.parametrize("method", ["private_key_jwt", "signed_client_secret"])
def test_jwt_methods_need_the_time(method: str) -> None:
    conn = apple(token_endpoint_auth_method=method)
    with pytest.raises(ValueError, match="pass now"):
        refresh_request(conn, APPLE_TOKEN, REFRESH)


def test_an_unknown_method_is_refused() -> None:
    conn = okta(token_endpoint_auth_method="tls_client_auth")
    with pytest.raises(ValueError, match="unknown token_endpoint_auth_method"):
        refresh_request(conn, TOKEN_URL, REFRESH, now=NOW)


def test_no_key_no_signature() -> None:
    with pytest.raises(ValueError, match="no client_private_key"):
        refresh_request(okta(client_private_key=None), TOKEN_URL, REFRESH, now=NOW)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"secret_lifetime": MAX_SECRET_LIFETIME + 1},
        {"secret_lifetime": 0},
        {"secret_lifetime": 100, "renew_before": 100},
        {"renew_before": -1},
        {"assertion_lifetime": 0},
    ],
)
def test_signer_settings_are_checked(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - several messages
        ClientSigner(**kwargs)


def test_client_authentication_for_the_secret_methods() -> None:
    conn = okta(token_endpoint_auth_method="client_secret_post", client_secret="s3cret")
    assert client_authentication(conn, TOKEN_URL, now=None, signer=None) == (
        {},
        {"client_id": "0oa1b2c3d4", "client_secret": "s3cret"},
    )
    conn = okta(token_endpoint_auth_method="none")
    assert client_authentication(conn, TOKEN_URL, now=None, signer=None) == (
        {},
        {"client_id": "0oa1b2c3d4"},
    )


# -- start-up checks ------------------------------------------------------------------------


def test_check_client_auth_accepts_good_settings() -> None:
    check_client_auth(okta())
    check_client_auth(okta(client_private_key=EC_PEM))
    check_client_auth(apple())
    for method in ("client_secret_basic", "client_secret_post", "none"):
        check_client_auth(okta(token_endpoint_auth_method=method, client_private_key=None))
    assert set(AUTH_METHODS) >= {"private_key_jwt", "signed_client_secret"}


SMALL_RSA = _pem(rsa.generate_private_key(public_exponent=65537, key_size=1024))
ENCRYPTED = EC_KEY.private_bytes(
    Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(b"pw")
).decode()
K1 = _pem(ec.generate_private_key(ec.SECP256K1()))


@pytest.mark.parametrize(
    ("conn", "field", "message"),
    [
        (
            okta(token_endpoint_auth_method="tls_client_auth"),
            "token_endpoint_auth_method",
            "one of",
        ),
        (okta(client_private_key=None), "client_private_key", "required for private_key_jwt"),
        (okta(client_private_key="not a key"), "client_private_key", "PEM"),
        (okta(client_private_key=ENCRYPTED), "client_private_key", "unencrypted"),
        (okta(client_private_key=SMALL_RSA), "client_private_key", "2048"),
        (okta(client_private_key=K1), "client_private_key", "curve"),
        (apple(client_private_key=RSA_PEM), "client_private_key", "ES256"),
        (apple(team_id=None), "team_id", "required"),
        (apple(client_key_id=None), "client_key_id", "required"),
        (apple(issuer=None), "issuer", "required"),
    ],
)
def test_check_client_auth_names_the_field_at_fault(
    conn: ConnectionConfig, field: str, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        check_client_auth(conn)
    assert str(caught.value).startswith(f"connections[{conn.id}].{field}: ")


# -- what every token request carries -------------------------------------------------------


def _all_requests(conn: ConnectionConfig) -> list[HttpRequest]:
    return [
        code_exchange_request(conn, TOKEN_URL, "code", "https://app/cb", "v", now=NOW),
        refresh_request(conn, TOKEN_URL, REFRESH, now=NOW),
        revocation_request(conn, TOKEN_URL, tokens(), now=NOW),
    ]


@pytest.mark.parametrize("conn", [okta(), apple(), okta(token_endpoint_auth_method="none")])
def test_accept_json_on_every_token_request(conn: ConnectionConfig) -> None:
    for request in _all_requests(conn):
        assert request.method == "POST"
        assert request.headers["Accept"] == "application/json"
        assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
        assert "User-Agent" not in request.headers


def test_user_agent_from_the_connection() -> None:
    ua = "web:com.example.vault:v1.0 (by /u/example)"
    conn = okta(token_endpoint_auth_method="client_secret_basic", client_secret="s", user_agent=ua)
    for request in _all_requests(conn):
        assert request.headers["User-Agent"] == ua
        assert request.headers["Authorization"].startswith("Basic ")


def test_refresh_sends_the_redirect_uri_when_given() -> None:
    conn = okta(token_endpoint_auth_method="client_secret_basic", client_secret="s")
    request = refresh_request(conn, TOKEN_URL, REFRESH, redirect_uri="https://app/callback/yahoo")
    assert request.form == {
        "grant_type": "refresh_token",
        "refresh_token": REFRESH,
        "redirect_uri": "https://app/callback/yahoo",
    }
    assert "redirect_uri" not in refresh_request(conn, TOKEN_URL, REFRESH).form


def test_no_key_or_signed_value_in_a_repr() -> None:
    conn = apple()
    request = refresh_request(conn, APPLE_TOKEN, REFRESH, now=NOW)
    assertion = refresh_request(okta(), TOKEN_URL, REFRESH, now=NOW)
    signer = ClientSigner()
    signer.client_secret(conn, now=NOW)
    texts = [repr(conn), repr(okta()), repr(request), repr(assertion), repr(signer)]
    for text in texts:
        assert "PRIVATE KEY" not in text
        assert request.form["client_secret"] not in text
        assert assertion.form["client_assertion"] not in text
