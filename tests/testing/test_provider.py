"""The testing provider (``oauth_vault_mw.testing.OpenIDProvider``) behaves as a strict
OpenID provider: driven here with plain httpx through its in-process transport, no socket."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt
import pytest

from oauth_vault_mw.testing import LoginFailed, OpenIDProvider

ISSUER = "http://127.0.0.1:9"
REDIRECT = "http://localhost/auth/callback/app"


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Authorization:
    code: str
    verifier: str
    nonce: str
    state: str


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def provider(clock: Clock) -> OpenIDProvider:
    op = OpenIDProvider(access_token_ttl=60, clock=clock)
    op.add_client("app", "app-secret", redirect_uris=[REDIRECT])
    return op


@pytest.fixture
def http(provider: OpenIDProvider) -> Iterator[httpx.Client]:
    with httpx.Client(transport=provider.transport(), base_url=ISSUER) as client:
        yield client


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorize_url(**overrides: str | None) -> tuple[str, str]:
    verifier = secrets.token_urlsafe(40)
    params: dict[str, str | None] = {
        "client_id": "app",
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": "openid profile email offline_access",
        "state": "st-1",
        "nonce": "n-1",
        "code_challenge": s256(verifier),
        "code_challenge_method": "S256",
    }
    params.update(overrides)
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return f"{ISSUER}/authorize?{query}", verifier


def callback_params(location: str) -> dict[str, str]:
    assert location.startswith(REDIRECT + "?"), location
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def authorize(provider: OpenIDProvider, login: str | None = None) -> Authorization:
    url, verifier = authorize_url()
    params = callback_params(provider.approve(url, login=login))
    return Authorization(params["code"], verifier, "n-1", params["state"])


def exchange(http: httpx.Client, auth: Authorization, **extra: str) -> httpx.Response:
    form = {
        "grant_type": "authorization_code",
        "code": auth.code,
        "redirect_uri": REDIRECT,
        "code_verifier": auth.verifier,
        **extra,
    }
    return http.post("/token", data=form, auth=("app", "app-secret"))


def refresh(http: httpx.Client, token: str) -> httpx.Response:
    form = {"grant_type": "refresh_token", "refresh_token": token}
    return http.post("/token", data={**form, "client_id": "app", "client_secret": "app-secret"})


def tokens(http: httpx.Client, provider: OpenIDProvider, login: str = "alice") -> dict[str, Any]:
    reply = exchange(http, authorize(provider, login))
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


# -- discovery and keys ----------------------------------------------------------------------


def test_discovery_names_its_endpoints_under_the_issuer(http: httpx.Client) -> None:
    doc = http.get("/.well-known/openid-configuration").json()
    assert doc["issuer"] == ISSUER
    for name in ("authorization", "token", "userinfo", "revocation"):
        assert doc[f"{name}_endpoint"].startswith(ISSUER + "/")
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["authorization_response_iss_parameter_supported"] is True
    keys = http.get(doc["jwks_uri"]).json()["keys"]
    assert [(k["kty"], k["alg"], k["use"]) for k in keys] == [("RSA", "RS256", "sig")]


def test_served_provider_takes_its_url_as_issuer() -> None:
    provider = OpenIDProvider()
    with provider.serve() as issuer:
        assert issuer.startswith("http://127.0.0.1:")
        doc = httpx.get(f"{issuer}/.well-known/openid-configuration").json()
        assert doc["issuer"] == issuer == provider.issuer
    assert provider.issuer != issuer


def test_the_asgi_app_answers_as_the_transport(provider: OpenIDProvider) -> None:
    transport = httpx.ASGITransport(app=provider.app)

    async def discover() -> dict[str, Any]:
        async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as client:
            reply = await client.get("/.well-known/openid-configuration")
            doc: dict[str, Any] = reply.json()
            return doc

    assert asyncio.run(discover()) == provider.discovery()


# -- authorization -----------------------------------------------------------------------------


def test_authorize_approves_the_current_user_and_echoes_state_and_iss(
    provider: OpenIDProvider,
) -> None:
    url, _ = authorize_url()
    params = callback_params(provider.approve(url))
    assert params["state"] == "st-1"
    assert params["iss"] == ISSUER
    assert params["code"]
    assert provider.counts.authorizations == 1


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"code_challenge": None}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge_method": None}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
    ],
)
def test_authorize_requires_code_flow_with_pkce_s256(
    provider: OpenIDProvider, overrides: dict[str, str | None], error: str
) -> None:
    url, _ = authorize_url(**overrides)
    params = callback_params(provider.approve(url))
    assert params["error"] == error
    assert params["state"] == "st-1"
    assert "code" not in params
    assert provider.counts.refusals == {error: 1}


@pytest.mark.parametrize(
    "overrides", [{"client_id": "other"}, {"redirect_uri": "http://localhost/elsewhere"}]
)
def test_authorize_never_redirects_to_an_unknown_client_or_uri(
    provider: OpenIDProvider, http: httpx.Client, overrides: dict[str, str]
) -> None:
    url, _ = authorize_url(**overrides)
    reply = http.get(url)
    assert reply.status_code == 400
    assert "location" not in reply.headers
    with pytest.raises(LoginFailed, match="answered 400"):
        provider.approve(url)


def test_refuse_next_login(provider: OpenIDProvider) -> None:
    provider.refuse_next_login()
    first = callback_params(provider.approve(authorize_url()[0]))
    assert first["error"] == "access_denied"
    second = callback_params(provider.approve(authorize_url()[0]))
    assert "code" in second


# -- code exchange -----------------------------------------------------------------------------


def test_code_exchange_issues_a_signed_id_token(
    provider: OpenIDProvider, http: httpx.Client, clock: Clock
) -> None:
    provider.login_as("bob", name="Bob Example", email="bob@corp.test")
    body = exchange(http, authorize(provider))
    assert body.status_code == 200
    assert body.headers["cache-control"] == "no-store"
    data = body.json()
    assert data["token_type"] == "Bearer"
    assert data["expires_in"] == 60
    assert data["refresh_token"]
    key = jwt.PyJWK(provider.jwks()["keys"][0])
    claims = jwt.decode(
        data["id_token"],
        key.key,
        algorithms=["RS256"],
        audience="app",
        issuer=ISSUER,
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims["sub"] == "bob"
    assert claims["nonce"] == "n-1"
    assert claims["iat"] == int(clock.now)
    assert claims["exp"] > claims["iat"]
    assert claims["name"] == "Bob Example"
    assert claims["email"] == "bob@corp.test"
    assert claims["email_verified"] is True
    assert claims["preferred_username"] == "bob"
    assert claims["picture"].startswith("https://")
    assert provider.counts.code_exchanges == 1


def test_login_hint_picks_the_user(provider: OpenIDProvider, http: httpx.Client) -> None:
    url, verifier = authorize_url(login_hint="carol")
    params = callback_params(provider.approve(url))
    auth = Authorization(params["code"], verifier, "n-1", "st-1")
    token = exchange(http, auth).json()["access_token"]
    me = http.get("/userinfo", headers={"Authorization": f"Bearer {token}"}).json()
    assert me["sub"] == "carol"
    assert me["name"] == "Carol"


def test_a_wrong_pkce_verifier_is_refused(provider: OpenIDProvider, http: httpx.Client) -> None:
    auth = authorize(provider)
    wrong = Authorization(auth.code, secrets.token_urlsafe(40), auth.nonce, auth.state)
    reply = exchange(http, wrong)
    assert reply.status_code == 400
    assert reply.json()["error"] == "invalid_grant"
    missing = exchange(http, auth, code_verifier="")
    assert missing.json()["error"] == "invalid_grant"
    assert provider.counts.refusals == {"invalid_grant": 2}
    assert provider.counts.grants == {}


def test_a_code_is_single_use_and_its_reuse_revokes_the_tokens(
    provider: OpenIDProvider, http: httpx.Client
) -> None:
    auth = authorize(provider)
    first = exchange(http, auth).json()
    again = exchange(http, auth)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    assert refresh(http, first["refresh_token"]).json()["error"] == "invalid_grant"
    bearer = {"Authorization": f"Bearer {first['access_token']}"}
    assert http.get("/userinfo", headers=bearer).status_code == 401


def test_an_expired_code_is_refused(
    provider: OpenIDProvider, http: httpx.Client, clock: Clock
) -> None:
    auth = authorize(provider)
    clock.now += provider.code_ttl
    assert exchange(http, auth).json()["error"] == "invalid_grant"


def test_the_redirect_uri_must_match(provider: OpenIDProvider, http: httpx.Client) -> None:
    reply = exchange(http, authorize(provider), redirect_uri="http://localhost/other")
    assert reply.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    ("auth", "form"),
    [
        (("app", "wrong"), {}),
        (("nobody", "app-secret"), {}),
        (None, {"client_id": "app", "client_secret": "wrong"}),
        (None, {"client_id": "app"}),
    ],
)
def test_client_authentication(
    provider: OpenIDProvider,
    http: httpx.Client,
    auth: tuple[str, str] | None,
    form: dict[str, str],
) -> None:
    data = {"grant_type": "refresh_token", "refresh_token": "x", **form}
    reply = http.post("/token", data=data, auth=auth) if auth else http.post("/token", data=data)
    assert reply.status_code == 401
    assert reply.json()["error"] == "invalid_client"


def test_client_secret_basic_is_form_encoded() -> None:
    """RFC 6749 2.3.1: id and secret are form-urlencoded before base64."""
    provider = OpenIDProvider()
    provider.add_client("a:b", "s p&c", redirect_uris=[REDIRECT])
    raw = base64.b64encode(b"a%3Ab:s+p%26c").decode()
    with httpx.Client(transport=provider.transport(), base_url=ISSUER) as client:
        reply = client.post(
            "/token",
            data={"grant_type": "refresh_token", "refresh_token": "x"},
            headers={"Authorization": f"Basic {raw}"},
        )
    assert reply.json()["error"] == "invalid_grant"  # authenticated; the token is unknown


# -- refresh -----------------------------------------------------------------------------------


def test_refresh_rotates_and_the_old_token_is_refused(
    provider: OpenIDProvider, http: httpx.Client
) -> None:
    first = tokens(http, provider)
    second = refresh(http, first["refresh_token"])
    assert second.status_code == 200
    new = second.json()
    assert new["refresh_token"] != first["refresh_token"]
    assert new["access_token"] != first["access_token"]
    old = refresh(http, first["refresh_token"])
    assert old.status_code == 400
    assert old.json()["error"] == "invalid_grant"
    assert refresh(http, new["refresh_token"]).status_code == 200
    counts = provider.counts
    assert counts.grants == {"authorization_code": 1, "refresh_token": 2}
    assert counts.refreshes == 2
    assert counts.refusals == {"invalid_grant": 1}


def test_refuse_next_refresh(provider: OpenIDProvider, http: httpx.Client) -> None:
    first = tokens(http, provider)
    provider.refuse_next_refresh()
    refused = refresh(http, first["refresh_token"])
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"
    assert refresh(http, first["refresh_token"]).status_code == 200
    assert provider.counts.refusals == {"invalid_grant": 1}
    assert provider.counts.refreshes == 1


def test_revoke_user_ends_every_grant(provider: OpenIDProvider, http: httpx.Client) -> None:
    alice = tokens(http, provider, "alice")
    bob = tokens(http, provider, "bob")
    assert provider.revoke_user("alice") == 1
    assert provider.grants_of("alice") == 0
    assert refresh(http, alice["refresh_token"]).json()["error"] == "invalid_grant"
    assert refresh(http, bob["refresh_token"]).status_code == 200


# -- userinfo, expiry, revocation --------------------------------------------------------------


def test_userinfo_needs_a_live_access_token(
    provider: OpenIDProvider, http: httpx.Client, clock: Clock
) -> None:
    provider.login_as("dave", name="Dave Example")
    token = tokens(http, provider, "dave")["access_token"]
    bearer = {"Authorization": f"Bearer {token}"}
    me = http.get("/userinfo", headers=bearer)
    assert me.status_code == 200
    assert me.json()["name"] == "Dave Example"
    assert http.get("/userinfo", headers={"Authorization": "Bearer nope"}).status_code == 401
    clock.now += 60
    expired = http.get("/userinfo", headers=bearer)
    assert expired.status_code == 401
    assert 'error="invalid_token"' in expired.headers["www-authenticate"]
    assert provider.counts.userinfo == 3
    assert provider.counts.refusals == {"invalid_token": 2}


def test_access_token_ttl_is_read_at_each_grant(
    provider: OpenIDProvider, http: httpx.Client
) -> None:
    provider.access_token_ttl = 2
    assert tokens(http, provider)["expires_in"] == 2
    provider.access_token_ttl = None
    assert "expires_in" not in tokens(http, provider)


def test_expire_access_tokens(provider: OpenIDProvider, http: httpx.Client) -> None:
    token = tokens(http, provider)["access_token"]
    assert provider.expire_access_tokens() == 1
    reply = http.get("/userinfo", headers={"Authorization": f"Bearer {token}"})
    assert reply.status_code == 401


def test_revocation_of_a_refresh_token_ends_the_grant(
    provider: OpenIDProvider, http: httpx.Client
) -> None:
    issued = tokens(http, provider)
    form = {"token": issued["refresh_token"], "token_type_hint": "refresh_token"}
    assert http.post("/revoke", data=form, auth=("app", "app-secret")).status_code == 200
    assert refresh(http, issued["refresh_token"]).json()["error"] == "invalid_grant"
    bearer = {"Authorization": f"Bearer {issued['access_token']}"}
    assert http.get("/userinfo", headers=bearer).status_code == 401
    unknown = http.post("/revoke", data={"token": "unknown"}, auth=("app", "app-secret"))
    assert unknown.status_code == 200
    assert provider.counts.revocations == 2
    anonymous = http.post("/revoke", data={"token": issued["access_token"]})
    assert anonymous.status_code == 401


# -- down ------------------------------------------------------------------------------------


def test_down_answers_503_everywhere(provider: OpenIDProvider, http: httpx.Client) -> None:
    issued = tokens(http, provider)
    provider.down = True
    for reply in (
        http.get("/.well-known/openid-configuration"),
        http.get("/jwks"),
        http.get(authorize_url()[0]),
        refresh(http, issued["refresh_token"]),
        http.get("/userinfo", headers={"Authorization": f"Bearer {issued['access_token']}"}),
        http.post("/revoke", data={"token": "x"}, auth=("app", "app-secret")),
    ):
        assert reply.status_code == 503
        assert reply.headers["retry-after"] == "1"
    with pytest.raises(LoginFailed, match="down"):
        provider.approve(authorize_url()[0])
    provider.down = False
    assert refresh(http, issued["refresh_token"]).status_code == 200
    assert provider.counts.refusals == {"temporarily_unavailable": 6}


def test_a_repeated_parameter_is_an_invalid_request(http: httpx.Client) -> None:
    reply = http.post(
        "/token",
        content=b"grant_type=refresh_token&grant_type=authorization_code",
        headers={"content-type": "application/x-www-form-urlencoded"},
        auth=("app", "app-secret"),
    )
    assert reply.status_code == 400
    assert reply.json()["error"] == "invalid_request"


def test_login_as_updates_the_claims_it_is_given_only(provider: OpenIDProvider) -> None:
    first = provider.login_as("erin", picture=None, sub="id-7")
    assert "picture" not in first.claims
    again = provider.login_as("erin", name="Erin Example")
    assert again is first
    assert again.sub == "id-7"
    assert again.claims["name"] == "Erin Example"
    assert "picture" not in again.claims
    assert again.claims["email"] == "erin@example.test"
