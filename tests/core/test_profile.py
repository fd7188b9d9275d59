"""The display profile kept from a login (pure core): which claims, which values, and how a
token set carries it through its serialisation and through refreshes."""

from __future__ import annotations

import json

from oauth_vault_mw.core.identity import MAX_PROFILE_VALUE, display_profile, me_payload
from oauth_vault_mw.core.model import CredentialKey, StoredCredential, TokenSet
from oauth_vault_mw.core.tokens import TokenGranted, parse_token_response


def test_openid_claims_are_kept_and_nothing_else() -> None:
    claims = {
        "sub": "248289761001",
        "name": "Jane Doe",
        "email": "jane@example.com",
        "email_verified": True,
        "picture": "https://example.com/jane.jpg",
        "preferred_username": "j.doe",
        "nonce": "n-0S6_WzA2Mj",
        "at_hash": "x",
        "phone_number": "+1 555",
    }
    assert dict(display_profile(claims)) == {
        "name": "Jane Doe",
        "email": "jane@example.com",
        "email_verified": True,
        "picture": "https://example.com/jane.jpg",
        "preferred_username": "j.doe",
    }


def test_plain_oauth_user_documents_fall_back_to_their_names() -> None:
    github = {"id": 1, "login": "octocat", "name": None, "avatar_url": "https://a/o.png"}
    assert dict(display_profile(github)) == {
        "picture": "https://a/o.png",
        "preferred_username": "octocat",
    }
    slack = {"ok": True, "user": {"name": "Ann", "email": "ann@example.com"}}
    assert dict(display_profile(slack)) == {
        "name": "Ann",
        "email": "ann@example.com",
        "preferred_username": "Ann",
    }


def test_values_that_are_not_display_text_are_dropped() -> None:
    doc = {
        "name": "x" * (MAX_PROFILE_VALUE + 1),  # too long: dropped, not cut
        "email": "a@b\r\nSet-Cookie: x",  # not printable
        "email_verified": "true",  # not a boolean
        "picture": {"url": "https://a"},  # not a string
        "preferred_username": "",
    }
    assert display_profile(doc) == ()
    assert display_profile({"name": "x" * MAX_PROFILE_VALUE}) == (("name", "x" * 512),)


def test_token_set_round_trips_the_profile_and_counts() -> None:
    tokens = TokenSet("at", "rt", profile=(("name", "Jane"),), login_at=1000.0, refresh_count=3)
    again = TokenSet.from_bytes(tokens.to_bytes())
    assert again == tokens
    assert "Jane" not in repr(tokens)  # personal data stays out of logs
    bare = json.loads(TokenSet("at").to_bytes())
    assert not {"pf", "li", "rc"} & set(bare)  # records without them are as they were
    assert TokenSet.from_bytes(TokenSet("at").to_bytes()).refresh_count == 0


def test_a_refresh_carries_the_profile_and_counts_itself() -> None:
    previous = TokenSet("at", "rt", profile=(("name", "Jane"),), login_at=1000.0)
    body = json.dumps({"access_token": "at2", "token_type": "Bearer", "expires_in": 60})
    outcome = parse_token_response(
        200, "application/json", body.encode(), now=2000.0, default_expires_in=None,
        previous=previous,
    )  # fmt: skip
    assert isinstance(outcome, TokenGranted)
    assert outcome.tokens.profile == previous.profile
    assert outcome.tokens.login_at == 1000.0
    assert outcome.tokens.refresh_count == 1
    exchanged = parse_token_response(
        200, "application/json", body.encode(), now=2000.0, default_expires_in=None
    )
    assert isinstance(exchanged, TokenGranted)
    assert (exchanged.tokens.profile, exchanged.tokens.refresh_count) == ((), 0)


def test_me_payload_shows_the_profiles() -> None:
    key = CredentialKey("demo", "u1")
    record = StoredCredential(key, 1, "sealed", expires_at=100.0)
    tokens = TokenSet("at", profile=(("name", "Jane"),), login_at=50.0)
    payload = me_payload("u1", [record], ["demo"], {key: tokens})
    assert payload["profile"] == {"name": "Jane"}
    assert payload["connections"][0]["profile"] == {"name": "Jane"}
    assert me_payload("u1", [], ["demo"])["profile"] == {}
