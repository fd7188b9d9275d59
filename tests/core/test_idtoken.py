"""ID token validation: signature against the JWKS, then the OpenID Connect claims."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey

from oauth_vault_mw import CallbackError
from oauth_vault_mw.core.idtoken import UnknownSigningKey, validate_id_token

NOW = 1_700_000_000
ISSUER = "https://idp.example.com"
CLIENT = "demo-client"
NONCE = "n-0123456789"
LEEWAY = 120
MS_TEMPLATE = "https://login.microsoftonline.com/{tenantid}/v2.0"
TENANT = "9188040d-6c67-4c5b-b112-36a304b66dad"


@pytest.fixture(scope="module")
def key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "k1"}, private=True)


@pytest.fixture(scope="module")
def other_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "k1"}, private=True)


@pytest.fixture(scope="module")
def jwks(key: RSAKey) -> dict[str, Any]:
    return {"keys": [key.as_dict(private=False)]}


def claims(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "iss": ISSUER,
        "aud": CLIENT,
        "sub": "user-1",
        "exp": NOW + 300,
        "iat": NOW,
        "nonce": NONCE,
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def sign(key: RSAKey | OctKey, payload: dict[str, Any], **header: Any) -> str:
    return jwt.encode({"alg": "RS256", "kid": "k1", **header}, payload, key)


def validate(token: str, jwks: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "jwks": jwks,
        "issuer": ISSUER,
        "client_id": CLIENT,
        "nonce": NONCE,
        "now": NOW,
        "leeway": LEEWAY,
    }
    options.update(overrides)
    return validate_id_token(token, **options)


def rejected(token: str, jwks: dict[str, Any], **overrides: Any) -> CallbackError:
    with pytest.raises(CallbackError) as info:
        validate(token, jwks, **overrides)
    assert info.value.error == "invalid_id_token"
    assert info.value.status_code == 400
    return info.value


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_good_token_is_accepted(key: RSAKey, jwks: dict[str, Any]) -> None:
    result = validate(sign(key, claims(email="a@example.com")), jwks)
    assert result["sub"] == "user-1"
    assert result["email"] == "a@example.com"


def test_other_key_same_kid_is_refused(other_key: RSAKey, jwks: dict[str, Any]) -> None:
    rejected(sign(other_key, claims()), jwks)


def test_alg_none_is_refused(jwks: dict[str, Any]) -> None:
    unsigned = f"{_b64({'alg': 'none', 'kid': 'k1'})}.{_b64(claims())}."
    rejected(unsigned, jwks)
    rejected(unsigned, jwks, algorithms=["none", "RS256"])


def test_hs256_is_refused(key: RSAKey, jwks: dict[str, Any]) -> None:
    # the classic confusion: HMAC keyed with the issuer's public key (joserfc refuses to
    # build such a key, so the token is made by hand)
    signing_input = f"{_b64({'alg': 'HS256', 'kid': 'k1'})}.{_b64(claims())}"
    mac = hmac.new(key.as_pem(private=False), signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    rejected(token, jwks)
    rejected(token, jwks, algorithms=["HS256"])
    token = sign(OctKey.import_key(b"a-shared-secret-of-32-bytes-long"), claims(), alg="HS256")
    rejected(token, jwks, algorithms=["HS256", "RS256"])


def test_advertised_algorithms_limit_what_is_accepted(key: RSAKey, jwks: dict[str, Any]) -> None:
    token = sign(key, claims())
    rejected(token, jwks, algorithms=["PS256"])
    assert validate(token, jwks, algorithms=["HS256"])  # only symmetric: RS256 default
    assert validate(token, jwks, algorithms=["ES256", "RS256"])


@pytest.mark.parametrize(
    "payload",
    [
        claims(iss="https://evil.example.com"),
        claims(iss=ISSUER + "/"),
        claims(aud="other-client"),
        claims(aud=["other-client"]),
        claims(exp=NOW - LEEWAY - 1),
        claims(exp=NOW - LEEWAY),
        claims(iat=NOW + LEEWAY + 1),
        claims(iat=NOW - 3601),
        claims(nonce="other-nonce"),
        claims(nonce=None),
        claims(sub=None),
        claims(sub=""),
        claims(exp=None),
        claims(iat=None),
        claims(iss=None),
        claims(aud=None),
        claims(azp="other-client"),
        claims(aud=[CLIENT, "other-client"]),  # several audiences need azp
        claims(nbf=NOW + LEEWAY + 10),
    ],
    ids=[
        "wrong-iss",
        "iss-trailing-slash",
        "wrong-aud",
        "wrong-aud-list",
        "expired",
        "expired-at-leeway",
        "iat-future",
        "iat-too-old",
        "bad-nonce",
        "missing-nonce",
        "missing-sub",
        "empty-sub",
        "missing-exp",
        "missing-iat",
        "missing-iss",
        "missing-aud",
        "azp-mismatch",
        "multi-aud-without-azp",
        "not-yet-valid",
    ],
)
def test_bad_claims_are_refused(key: RSAKey, jwks: dict[str, Any], payload: dict[str, Any]) -> None:
    rejected(sign(key, payload), jwks)


@pytest.mark.parametrize(
    "payload",
    [
        claims(exp=NOW - LEEWAY + 1),
        claims(iat=NOW + LEEWAY),
        claims(aud=[CLIENT]),
        claims(aud=[CLIENT, "api"], azp=CLIENT),
        claims(azp=CLIENT),
    ],
    ids=["exp-within-leeway", "iat-within-leeway", "aud-list", "multi-aud-azp", "azp-equal"],
)
def test_tolerated_claims(key: RSAKey, jwks: dict[str, Any], payload: dict[str, Any]) -> None:
    assert validate(sign(key, payload), jwks)["sub"] == "user-1"


def test_nonce_not_expected(key: RSAKey, jwks: dict[str, Any]) -> None:
    assert validate(sign(key, claims(nonce=None)), jwks, nonce=None)
    assert validate(sign(key, claims()), jwks, nonce=None)


def test_unknown_kid_asks_for_a_fresh_jwks(key: RSAKey, jwks: dict[str, Any]) -> None:
    with pytest.raises(UnknownSigningKey):
        validate(sign(key, claims(), kid="k2"), jwks)


def test_key_rotation_in_jwks(key: RSAKey, other_key: RSAKey) -> None:
    rotated = RSAKey.import_key(other_key.as_dict(private=True), parameters={"kid": "k2"})
    jwks = {"keys": [key.as_dict(private=False), rotated.as_dict(private=False)]}
    assert validate(sign(rotated, claims(), kid="k2"), jwks)
    assert validate(sign(key, claims()), jwks)
    rejected(sign(rotated, claims(), kid="k1"), jwks)


@pytest.mark.parametrize(
    "jwks",
    [{}, {"keys": []}, {"keys": "nope"}, {"keys": [None]}, {"keys": [{"kty": "RSA", "kid": "k1"}]}],
    ids=["empty", "no-keys", "not-a-list", "not-a-key", "incomplete-key"],
)
def test_unreadable_jwks(key: RSAKey, jwks: dict[str, Any]) -> None:
    error = rejected(sign(key, claims()), jwks)
    assert "JWKS" in error.description


@pytest.mark.parametrize("token", ["", "a.b", "a.b.c", "not a jwt at all", "é.é.é"])
def test_malformed_token(jwks: dict[str, Any], token: str) -> None:
    rejected(token, jwks)


def _at_hash(access_token: str) -> str:
    digest = hashlib.sha256(access_token.encode()).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


def test_at_hash(key: RSAKey, jwks: dict[str, Any]) -> None:
    token = sign(key, claims(at_hash=_at_hash("the-access-token")))
    assert validate(token, jwks, access_token="the-access-token")
    rejected(token, jwks, access_token="another-access-token")


# -- Microsoft multi-tenant issuer template -----------------------------------------------


def ms_claims(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "iss": f"https://login.microsoftonline.com/{TENANT}/v2.0",
        "tid": TENANT,
    }
    return claims(**{**data, **overrides})


def test_microsoft_templated_issuer(key: RSAKey, jwks: dict[str, Any]) -> None:
    result = validate(sign(key, ms_claims()), jwks, issuer=MS_TEMPLATE)
    assert result["tid"] == TENANT


@pytest.mark.parametrize(
    "payload",
    [
        ms_claims(tid="00000000-0000-0000-0000-000000000000"),  # iss names another tenant
        ms_claims(tid=None),
        ms_claims(tid=42),
        ms_claims(tid="x/../y"),
        claims(iss=MS_TEMPLATE, tid="{tenantid}"),
    ],
    ids=["tid-mismatch", "no-tid", "tid-type", "tid-chars", "literal-template"],
)
def test_microsoft_templated_issuer_refused(
    key: RSAKey, jwks: dict[str, Any], payload: dict[str, Any]
) -> None:
    rejected(sign(key, payload), jwks, issuer=MS_TEMPLATE)
