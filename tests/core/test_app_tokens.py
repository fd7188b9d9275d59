"""App tokens: issue, verify with an injected clock, rotation, JWKS, forgeries."""

from __future__ import annotations

import os

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from oauth_vault_mw import NotAuthenticated
from oauth_vault_mw.core.app_tokens import AppTokens, derive_seed

ISSUER = "http://127.0.0.1:8000/auth"
NOW = 1_800_000_000.0


def tokens(*seeds: bytes) -> AppTokens:
    return AppTokens(list(seeds) or [derive_seed("k" * 40)], issuer=ISSUER, lifetime=300)


def test_issue_verify_and_expiry() -> None:
    t = tokens()
    token, lifetime = t.issue("user-1", now=NOW)
    assert lifetime == 300
    assert t.verify(token, now=NOW + 10) == "user-1"
    assert t.verify(token, now=NOW + 300 + 29) == "user-1"  # leeway
    with pytest.raises(NotAuthenticated):
        t.verify(token, now=NOW + 300 + 31)
    with pytest.raises(NotAuthenticated):
        t.verify(token, now=NOW - 100)  # not yet valid


def test_rotation_and_jwks() -> None:
    old, new = os.urandom(32), os.urandom(32)
    token, _ = tokens(old).issue("u", now=NOW)
    both = tokens(new, old)
    assert both.verify(token, now=NOW) == "u"
    fresh, _ = both.issue("u", now=NOW)
    assert jwt.get_unverified_header(fresh)["kid"] == both.current_kid
    assert tokens(new).current_kid == both.current_kid
    with pytest.raises(NotAuthenticated):
        tokens(new).verify(token, now=NOW)  # old key dropped
    keys = both.jwks()["keys"]
    assert len(keys) == 2
    assert all("d" not in k for k in keys)  # public only
    published = {k["kid"]: jwt.PyJWK(k) for k in keys}
    header = jwt.get_unverified_header(fresh)
    claims = jwt.decode(
        fresh, published[header["kid"]].key, algorithms=["EdDSA"], audience=ISSUER,
        options={"verify_exp": False, "verify_nbf": False, "verify_iat": False},
    )  # fmt: skip
    assert claims["sub"] == "u"


def test_forgeries_refused() -> None:
    t = tokens()
    good, _ = t.issue("u", now=NOW)
    stranger = Ed25519PrivateKey.generate()
    claims = {"iss": ISSUER, "aud": ISSUER, "sub": "u", "iat": int(NOW), "nbf": int(NOW),
              "exp": int(NOW) + 300}  # fmt: skip
    forged = jwt.encode(claims, stranger, algorithm="EdDSA",
                        headers={"kid": t.current_kid, "typ": "at+jwt"})  # fmt: skip
    foreign = AppTokens([os.urandom(32)], issuer="https://other.example/auth").issue("u", now=NOW)
    hs = jwt.encode(claims, "k" * 40, algorithm="HS256", headers={"kid": t.current_kid})
    for bad in (forged, foreign[0], hs, good[:-4] + "AAAA", "x.y.z", "", "a" * 5000):
        with pytest.raises(NotAuthenticated):
            t.verify(bad, now=NOW)
