"""Token endpoint requests and responses, and the refresh decision (pure, clock injected)."""

from __future__ import annotations

import base64
import dataclasses
import json
from dataclasses import replace
from typing import Any
from urllib.parse import unquote

import pytest

from oauth_vault_mw import CredentialKey, Credentials
from oauth_vault_mw.core.config import ConnectionConfig
from oauth_vault_mw.core.http import HttpRequest
from oauth_vault_mw.core.model import TokenSet
from oauth_vault_mw.core.token_requests import (
    code_exchange_request,
    refresh_request,
    revocation_request,
)
from oauth_vault_mw.core.tokens import (
    MAX_TOKEN_RESPONSE,
    TokenGranted,
    TokenOutcome,
    TokenRejected,
    TokenRetryable,
)
from tests.core.tokensets import ACCESS, NOW, REFRESH, granted, tokens
from tests.core.tokensets import parse as parse_reply

JSON = "application/json; charset=utf-8"
FORM = "application/x-www-form-urlencoded"


def conn(**overrides: Any) -> ConnectionConfig:
    data: dict[str, Any] = {
        "id": "demo",
        "client_id": "demo-client",
        "client_secret": "demo-secret",
        "issuer": "https://idp.example.com",
    }
    data.update(overrides)
    return ConnectionConfig(**data)


def parse(body: dict[str, Any] | bytes, **options: Any) -> TokenOutcome:
    """The shared parser helper with this module's JSON content type by default."""
    options.setdefault("content_type", JSON)
    return parse_reply(body, **options)


# -- parse_token_response: success --------------------------------------------------------


def test_full_json_response() -> None:
    outcome = parse(
        {
            "access_token": ACCESS,
            "refresh_token": REFRESH,
            "token_type": "Bearer",
            "expires_in": 1800,
            "scope": "openid email",
            "id_token": "header.payload.sig",
        }
    )
    assert isinstance(outcome, TokenGranted)
    assert outcome.id_token == "header.payload.sig"
    tokens = outcome.tokens
    assert tokens.access_token == ACCESS
    assert tokens.refresh_token == REFRESH
    assert tokens.token_type == "Bearer"
    assert tokens.expires_at == NOW + 1800
    assert tokens.obtained_at == NOW
    assert tokens.lifetime == 1800
    assert tokens.scope == "openid email"
    assert tokens.status == "active"


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ("read write", "read write"),
        ("  read   write ", "read write"),
        ("read,write", "read write"),
        ("read, write", "read write"),
        (["read", "write"], "read write"),
        ("", None),
        ([], None),
        (42, None),
        (["read", 1], None),
    ],
)
def test_scope_forms(scope: object, expected: str | None) -> None:
    assert granted(parse({"access_token": ACCESS, "scope": scope})).scope == expected


@pytest.mark.parametrize(
    ("expires_in", "lifetime"),
    [
        (600, 600.0),
        (600.5, 600.5),
        ("600", 600.0),
        (" 600 ", 600.0),
        (0, 0.0),
        ("soon", 3600.0),  # unreadable: the default lifetime applies
        (-5, 3600.0),
        (True, 3600.0),
        ("nan", 3600.0),
        ("1e400", 3600.0),
        (None, 3600.0),
    ],
)
def test_expires_in_forms(expires_in: object, lifetime: float) -> None:
    body: dict[str, Any] = {"access_token": ACCESS}
    if expires_in is not None:
        body["expires_in"] = expires_in
    assert granted(parse(body)).expires_at == NOW + lifetime


def test_missing_expires_in_with_no_default_never_expires() -> None:
    tokens = granted(parse({"access_token": ACCESS}, default_expires_in=None))
    assert tokens.expires_at is None
    assert tokens.lifetime is None


def test_explicit_expires_in_wins_over_no_default() -> None:
    tokens = granted(parse({"access_token": ACCESS, "expires_in": 60}, default_expires_in=None))
    assert tokens.expires_at == NOW + 60


def _previous() -> TokenSet:
    return TokenSet(
        access_token="old-access",
        refresh_token=REFRESH,
        expires_at=NOW - 10,
        scope="read write",
        obtained_at=NOW - 3610,
    )


def test_refresh_without_new_refresh_token_keeps_the_old_one() -> None:
    tokens = granted(parse({"access_token": ACCESS, "expires_in": 60}, previous=_previous()))
    assert tokens.access_token == ACCESS
    assert tokens.refresh_token == REFRESH


def test_refresh_with_new_refresh_token_stores_it() -> None:
    body = {"access_token": ACCESS, "refresh_token": "rt-rotated"}
    tokens = granted(parse(body, previous=_previous()))
    assert tokens.refresh_token == "rt-rotated"


def test_empty_refresh_token_is_not_a_rotation() -> None:
    tokens = granted(parse({"access_token": ACCESS, "refresh_token": ""}, previous=_previous()))
    assert tokens.refresh_token == REFRESH


def test_missing_scope_keeps_the_previous_scope() -> None:
    assert granted(parse({"access_token": ACCESS}, previous=_previous())).scope == "read write"
    narrowed = granted(parse({"access_token": ACCESS, "scope": "read"}, previous=_previous()))
    assert narrowed.scope == "read"


def test_first_grant_without_refresh_token() -> None:
    tokens = granted(parse({"access_token": ACCESS}))
    assert tokens.refresh_token is None
    assert tokens.scope is None
    assert tokens.token_type == "Bearer"


def test_form_encoded_body_github_style() -> None:
    body = b"access_token=gho_secret&scope=repo%2Cgist&token_type=bearer"
    tokens = granted(parse(body, content_type=FORM, default_expires_in=None))
    assert tokens.access_token == "gho_secret"
    assert tokens.scope == "repo gist"
    assert tokens.token_type == "bearer"
    assert tokens.expires_at is None
    assert tokens.refresh_token is None


def test_form_body_without_content_type() -> None:
    tokens = granted(parse(b"access_token=abc&expires_in=60", content_type=""))
    assert tokens.access_token == "abc"
    assert tokens.expires_at == NOW + 60


def test_json_body_with_wrong_content_type() -> None:
    tokens = granted(parse(b'{"access_token": "abc"}', content_type="text/plain"))
    assert tokens.access_token == "abc"


# -- parse_token_response: errors ---------------------------------------------------------


def test_200_with_error_field_is_rejected() -> None:
    outcome = parse({"error": "bad_verification_code", "error_description": "expired code"})
    assert outcome == TokenRejected("bad_verification_code", "expired code")
    assert not outcome.needs_reauthentication


def test_form_encoded_error_github_style() -> None:
    body = b"error=bad_refresh_token&error_description=The+refresh+token+is+invalid"
    outcome = parse(body, content_type=FORM)
    assert outcome == TokenRejected("bad_refresh_token", "The refresh token is invalid")


def test_invalid_grant_needs_reauthentication() -> None:
    outcome = parse({"error": "invalid_grant"}, status=400)
    assert isinstance(outcome, TokenRejected)
    assert outcome.error == "invalid_grant"
    assert outcome.needs_reauthentication


def test_other_400_error_does_not_need_reauthentication() -> None:
    outcome = parse({"error": "invalid_client"}, status=401)
    assert isinstance(outcome, TokenRejected)
    assert not outcome.needs_reauthentication


def test_error_description_is_bounded_and_printable() -> None:
    outcome = parse({"error": "invalid_grant", "error_description": "x" * 500}, status=400)
    assert isinstance(outcome, TokenRejected)
    assert len(outcome.description) == 200
    # Changed with issue 10: escaped, not dropped (Microsoft's descriptions span lines).
    outcome = parse({"error": "invalid_grant", "error_description": "a\r\n b"}, status=400)
    assert outcome == TokenRejected("invalid_grant", "a b")
    outcome = parse({"error": "invalid_grant", "error_description": "a\x00\u202eb"}, status=400)
    assert outcome == TokenRejected("invalid_grant", "a??b")


@pytest.mark.parametrize("error", [None, 42, "é" * 3, "x" * 64], ids=str)
def test_error_without_usable_code_is_retryable(error: object) -> None:
    assert isinstance(parse({"error": error}, status=400), TokenRetryable)


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
def test_server_errors_and_throttling_are_retryable(status: int) -> None:
    outcome = parse({"access_token": ACCESS}, status=status)
    assert isinstance(outcome, TokenRetryable)
    assert str(status) in outcome.reason
    assert outcome.retry_after is None


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("30", 30.0), ("0", 0.0), ("-5", 0.0), ("99999", 3600.0), ("Wed, 21 Oct 2015", None)],
)
def test_retry_after(header: str, seconds: float | None) -> None:
    outcome = parse(b"", status=429, content_type="text/plain", retry_after=header)
    assert outcome == TokenRetryable("http 429", seconds)


def test_503_with_retry_after() -> None:
    outcome = parse(b"busy", status=503, content_type="text/html", retry_after="7")
    assert isinstance(outcome, TokenRetryable)
    assert outcome.retry_after == 7.0


@pytest.mark.parametrize(
    "body",
    [
        b"<html><body>Service temporarily down</body></html>",
        b'<html lang="en"><body>Login</body></html>',
        b"",
        b"\xff\xfe\x00garbage",
    ],
)
def test_garbage_200_is_retryable(body: bytes) -> None:
    assert isinstance(parse(body, content_type="text/html"), TokenRetryable)


@pytest.mark.parametrize(
    "body",
    [b"[1, 2]", b"{not json", b'"token"', b'{"access_token": ""}', b'{"access_token": 5}'],
)
def test_json_that_is_not_a_token_response_is_retryable(body: bytes) -> None:
    assert isinstance(parse(body), TokenRetryable)


def test_success_status_other_than_200_is_not_a_grant() -> None:
    assert isinstance(parse({"access_token": ACCESS}, status=302), TokenRetryable)


def test_oversized_body_is_refused() -> None:
    padding = "x" * MAX_TOKEN_RESPONSE
    outcome = parse({"access_token": ACCESS, "padding": padding})
    assert isinstance(outcome, TokenRetryable)
    # just under the bound still parses
    small = json.dumps({"access_token": ACCESS}).encode()
    assert isinstance(parse(small.ljust(MAX_TOKEN_RESPONSE)), TokenGranted)


# -- request builders ---------------------------------------------------------------------


def _basic(request: HttpRequest) -> tuple[str, str]:
    scheme, _, value = request.headers["Authorization"].partition(" ")
    assert scheme == "Basic"
    user, _, password = base64.b64decode(value).decode().partition(":")
    return user, password


def test_code_exchange_client_secret_basic() -> None:
    request = code_exchange_request(
        conn(), "https://idp.example.com/token", "the-code", "https://app/cb", "verifier"
    )
    assert request.method == "POST"
    assert request.url == "https://idp.example.com/token"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert request.headers["Accept"] == "application/json"
    assert _basic(request) == ("demo-client", "demo-secret")
    assert request.form == {
        "grant_type": "authorization_code",
        "code": "the-code",
        "redirect_uri": "https://app/cb",
        "code_verifier": "verifier",
    }


def test_client_secret_basic_url_encodes_both_parts() -> None:
    client_id, secret = "my client:1", "p@ss:w/rd+%é"
    request = refresh_request(conn(client_id=client_id, client_secret=secret), "https://t", "rt")
    user, password = _basic(request)
    assert ":" not in user + password
    assert " " not in user + password
    assert (unquote(user), unquote(password)) == (client_id, secret)
    assert "client_secret" not in request.form
    assert "client_id" not in request.form


def test_client_secret_post() -> None:
    c = conn(token_endpoint_auth_method="client_secret_post")
    request = refresh_request(c, "https://t", "rt")
    assert "Authorization" not in request.headers
    assert request.form == {
        "grant_type": "refresh_token",
        "refresh_token": "rt",
        "client_id": "demo-client",
        "client_secret": "demo-secret",
    }


def test_public_client() -> None:
    c = conn(token_endpoint_auth_method="none", client_secret="")
    request = code_exchange_request(c, "https://t", "code", "https://app/cb", "v")
    assert "Authorization" not in request.headers
    assert request.form["client_id"] == "demo-client"
    assert "client_secret" not in request.form


def test_refresh_request_form() -> None:
    request = refresh_request(conn(), "https://idp.example.com/token", REFRESH)
    assert request.form == {"grant_type": "refresh_token", "refresh_token": REFRESH}


def test_revocation_prefers_the_refresh_token() -> None:
    request = revocation_request(conn(), "https://idp.example.com/revoke", tokens())
    assert request.url == "https://idp.example.com/revoke"
    assert request.form == {"token": REFRESH, "token_type_hint": "refresh_token"}
    request = revocation_request(conn(), "https://r", tokens(refresh=False))
    assert request.form == {"token": ACCESS, "token_type_hint": "access_token"}


# -- no token in a repr -------------------------------------------------------------------


def test_reprs_hold_no_token() -> None:
    c = conn(client_secret="very-secret-client")
    stored = tokens()
    outcome = parse({"access_token": ACCESS, "refresh_token": REFRESH, "id_token": "idtok-secret"})
    creds = Credentials.from_tokens(CredentialKey("demo", "u1"), stored)
    texts = [
        repr(refresh_request(c, "https://t", REFRESH)),
        repr(revocation_request(c, "https://t", stored)),
        repr(code_exchange_request(c, "https://t", "code-secret", "https://cb", "verifier")),
        repr(stored),
        repr(outcome),
        repr(creds),
        str(creds),
    ]
    for text in texts:
        for secret in (ACCESS, REFRESH, "very-secret-client", "idtok-secret", "code-secret"):
            assert secret not in text, text
    assert "expires_at" in repr(stored)


def test_credentials_view() -> None:
    creds = Credentials.from_tokens(
        CredentialKey("demo", "u1"), replace(tokens(), token_type="bearer", scope="read")
    )
    assert creds.authorization_header == f"Bearer {ACCESS}"
    assert creds.to_dict() == {
        "connection_id": "demo",
        "user_id": "u1",
        "access_token": ACCESS,
        "token_type": "bearer",
        "expires_at": int(NOW + 3600),
        "scope": "read",
        "extra": {},
    }
    kept = Credentials.from_tokens(
        CredentialKey("demo", "u1"), replace(tokens(), extra=(("instance_url", "https://x"),))
    )
    assert kept.extra == {"instance_url": "https://x"}
    assert kept.to_dict()["extra"] == {"instance_url": "https://x"}
    with pytest.raises(TypeError):
        kept.extra["instance_url"] = "elsewhere"  # type: ignore[index]
    mac = replace(creds, token_type="MAC")
    assert mac.authorization_header == f"MAC {ACCESS}"


def test_token_set_bytes_roundtrip() -> None:
    original = replace(tokens(), scope="a b", token_type="DPoP")
    assert TokenSet.from_bytes(original.to_bytes()) == original


def test_github_bad_refresh_token_demands_reauthentication() -> None:
    from oauth_vault_mw.core.tokens import TokenRejected as Rejected
    from oauth_vault_mw.core.tokens import parse_token_response as parse

    outcome = parse(200, "application/json", b'{"error": "bad_refresh_token"}', now=0.0,
                    default_expires_in=None)  # fmt: skip
    assert isinstance(outcome, Rejected)
    assert outcome.needs_reauthentication


def test_credentials_from_tokens_is_the_dataclass_itself() -> None:
    """``from_tokens`` skips the frozen ``__init__``: the result is indistinguishable from it."""
    stored = replace(tokens(), token_type="bearer", scope="read")
    made = Credentials.from_tokens(CredentialKey("demo", "u1"), stored)
    built = Credentials(
        connection_id="demo", user_id="u1", access_token=ACCESS, token_type="bearer",
        expires_at=stored.expires_at, scope="read",
    )  # fmt: skip
    assert made == built
    assert hash(made) == hash(built)
    assert repr(made) == repr(built)
    assert dataclasses.asdict(made) == dataclasses.asdict(built)
    assert set(vars(made)) == {f.name for f in dataclasses.fields(Credentials)}
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.access_token = "other"  # type: ignore[misc]
