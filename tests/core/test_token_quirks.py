"""Each quirk of real token endpoints, as one named behaviour of ``core.tokens`` (issue 10).

The reply bodies are synthetic but faithful to what providers send (/work/shared/providers.md
section 6); the dialects are preset-like (``tests/core/dialects.py``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from oauth_vault_mw.core.dialect import STANDARD, TokenDialect
from oauth_vault_mw.core.model import TokenSet
from oauth_vault_mw.core.tokens import (
    MAX_EXTRA_STRING,
    MAX_LIFETIME,
    TokenOutcome,
    TokenRejected,
    TokenRetryable,
    decode_body,
    dig,
    error_outcome,
    is_secret_key,
    kept_extra,
    pick_kept,
    read_expiry,
    read_refresh_expiry,
    read_scope,
    read_token_type,
    token_object,
)
from tests.core.dialects import (
    HUBSPOT,
    MAILCHIMP,
    MICROSOFT,
    REDDIT,
    SALESFORCE,
    SLACK,
    STRAVA,
    TWITCH,
)
from tests.core.tokensets import ACCESS, NOW, REFRESH, granted, parse

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


def rejected(outcome: TokenOutcome) -> TokenRejected:
    assert isinstance(outcome, TokenRejected), outcome
    return outcome


def previous(**changes: Any) -> TokenSet:
    base = TokenSet(
        access_token="old-access-token",
        refresh_token=REFRESH,
        expires_at=NOW - 10,
        scope="read write",
        obtained_at=NOW - 3610,
    )
    return replace(base, **changes)


# -- decode_body: the reply's format --------------------------------------------------------


@pytest.mark.parametrize("content_type", ["text/plain", FORM, "", "text/javascript", JSON])
def test_json_is_read_whatever_the_content_type(content_type: str) -> None:
    assert decode_body(content_type, b' \n{"access_token": "abc"}') == {"access_token": "abc"}


@pytest.mark.parametrize("content_type", [JSON, FORM, "text/plain", ""])
def test_form_encoded_reply_is_read_even_when_labelled_json(content_type: str) -> None:
    """GitHub without ``Accept: application/json``; its Content-Type is not to be trusted."""
    body = (
        b"access_token=gho_16C7e42F292c6912E7710c838347Ae178B4a&scope=repo%2Cgist&token_type=bearer"
    )
    tokens = granted(parse(body, content_type=content_type, default_expires_in=None))
    assert tokens.access_token == "gho_16C7e42F292c6912E7710c838347Ae178B4a"
    assert tokens.scope == "repo gist"


def test_a_utf8_bom_is_skipped() -> None:
    assert decode_body(JSON, b'\xef\xbb\xbf{"access_token": "abc"}') == {"access_token": "abc"}


@pytest.mark.parametrize("content_type", ["text/html; charset=utf-8", "application/xml", ""])
def test_a_page_is_not_read_as_a_form(content_type: str) -> None:
    page = b'<html><a href="/x?a=1&error=invalid_grant&b=2">log in</a></html>'
    assert decode_body(content_type, page) is None
    assert isinstance(parse(page, content_type=content_type, status=400), TokenRetryable)


def test_json_nested_beyond_the_parser_is_retryable() -> None:
    body = b'{"a":' * 40_000 + b"1" + b"}" * 40_000
    assert decode_body(JSON, body) is None
    assert isinstance(parse(body), TokenRetryable)


def test_numbers_python_will_not_read_are_retryable() -> None:
    body = b'{"access_token": "abc", "expires_in": ' + b"9" * 5000 + b"}"
    assert isinstance(parse(body), TokenRetryable)


# -- error_outcome: errors in a 200 body, non-RFC error bodies ------------------------------

ERRORS_WITH_200 = [
    pytest.param(SLACK, {"ok": False, "error": "invalid_code"}, id="slack"),
    pytest.param(
        STANDARD,
        {
            "error": "bad_verification_code",
            "error_description": "The code passed is incorrect or expired.",
            "error_uri": "https://docs.github.com/apps/troubleshooting",
        },
        id="github",
    ),
    pytest.param(STANDARD, {"error": "invalid_grant"}, id="reddit"),
    pytest.param(HUBSPOT, {"status": "BAD_REFRESH_TOKEN", "message": "unknown"}, id="hubspot"),
    pytest.param(TWITCH, {"status": 400, "message": "Invalid refresh token"}, id="twitch"),
]


@pytest.mark.parametrize(("dialect", "body"), ERRORS_WITH_200)
@pytest.mark.parametrize("status", [400, 401, 403])
def test_an_error_in_a_200_body_means_what_it_means_with_a_4xx(
    dialect: TokenDialect, body: dict[str, Any], status: int
) -> None:
    with_200 = rejected(parse(body, dialect=dialect, previous=previous()))
    with_4xx = rejected(parse(body, status=status, dialect=dialect, previous=previous()))
    assert with_200 == with_4xx


def test_slack_ok_false_is_an_error_without_an_error_field() -> None:
    outcome = parse({"ok": False}, dialect=SLACK)
    assert isinstance(outcome, TokenRetryable)
    assert "error without a code" in outcome.reason


@pytest.mark.parametrize(
    ("dialect", "status", "body", "code"),
    [
        pytest.param(STANDARD, 400, {"error": "invalid_grant"}, "invalid_grant", id="rfc"),
        pytest.param(STANDARD, 403, {"error": "invalid_grant"}, "invalid_grant", id="atlassian"),
        pytest.param(
            STANDARD,
            200,
            {
                "error": "bad_refresh_token",
                "error_description": "The refresh token passed is incorrect or expired.",
            },
            "bad_refresh_token",
            id="github-app",
        ),
        pytest.param(
            SLACK,
            200,
            {"ok": False, "error": "invalid_refresh_token"},
            "invalid_refresh_token",
            id="slack",
        ),
        pytest.param(
            HUBSPOT,
            400,
            {
                "status": "BAD_REFRESH_TOKEN",
                "message": "missing or unknown refresh token",
                "correlationId": "5b8b3a8e-0000-4000-8000-3c5e3d1e2f10",
            },
            "BAD_REFRESH_TOKEN",
            id="hubspot",
        ),
        pytest.param(
            TWITCH,
            400,
            {"status": 400, "message": "Invalid refresh token"},
            "Invalid refresh token",
            id="twitch",
        ),
        pytest.param(
            STRAVA,
            400,
            {
                "message": "Bad Request",
                "errors": [
                    {"resource": "RefreshToken", "field": "refresh_token", "code": "invalid"}
                ],
            },
            "refresh_token:invalid",
            id="strava",
        ),
        pytest.param(
            MICROSOFT,
            400,
            {"error": "interaction_required", "error_codes": [50076], "suberror": "basic_action"},
            "interaction_required",
            id="microsoft-mfa",
        ),
    ],
)
def test_a_dead_grant_demands_reauthentication_not_a_retry(
    dialect: TokenDialect, status: int, body: dict[str, Any], code: str
) -> None:
    outcome = rejected(parse(body, status=status, dialect=dialect, previous=previous()))
    assert outcome.error == code
    assert outcome.reauthenticate
    assert outcome.needs_reauthentication


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"ok": False, "error": "invalid_refresh_token"}, 200),  # Slack's word, not RFC 6749's
        ({"error": "invalid_client"}, 401),
        ({"error": "unauthorized_client"}, 400),
    ],
)
def test_other_errors_do_not_demand_reauthentication(body: dict[str, Any], status: int) -> None:
    assert not rejected(parse(body, status=status)).reauthenticate


def test_reauth_synonyms_are_compared_in_lower_case() -> None:
    dialect = TokenDialect(error_fields=("message",), reauth_errors=frozenset({"Token Revoked"}))
    assert dialect.reauth_errors == frozenset({"token revoked"})
    assert dialect.is_reauth_error("TOKEN REVOKED")
    assert dialect.is_reauth_error("Invalid_Grant")
    assert not dialect.is_reauth_error("token")


def test_token_rejected_reauthenticate_field() -> None:
    """Built by hand, the RFC codes still mean re-authentication (core/refresh.py relies on
    ``needs_reauthentication``)."""
    assert TokenRejected("invalid_grant").reauthenticate
    assert TokenRejected("BAD_REFRESH_TOKEN").needs_reauthentication
    assert not TokenRejected("invalid_client").needs_reauthentication
    assert TokenRejected("invalid_refresh_token", reauthenticate=True).needs_reauthentication


def test_hubspot_error_body() -> None:
    body = {
        "status": "BAD_REFRESH_TOKEN",
        "message": "missing or unknown refresh token",
        "correlationId": "5b8b3a8e-0000-4000-8000-3c5e3d1e2f10",
    }
    outcome = rejected(parse(body, status=400, dialect=HUBSPOT))
    assert outcome.error == "BAD_REFRESH_TOKEN"
    assert outcome.description == (
        "message=missing or unknown refresh token; "
        "correlationId=5b8b3a8e-0000-4000-8000-3c5e3d1e2f10"
    )


def test_an_error_field_that_just_says_error_is_passed_over() -> None:
    body = {"status": "error", "message": "Invalid input", "category": "VALIDATION_ERROR"}
    assert rejected(parse(body, status=400, dialect=HUBSPOT)).error == "VALIDATION_ERROR"


def test_twitch_error_body() -> None:
    outcome = rejected(
        parse({"status": 400, "message": "Invalid refresh token"}, status=400, dialect=TWITCH)
    )
    assert outcome == TokenRejected("Invalid refresh token", "", reauthenticate=True)


def test_strava_error_body() -> None:
    body = {
        "message": "Authorization Error",
        "errors": [{"resource": "Application", "field": "client_id", "code": "invalid"}],
    }
    outcome = rejected(parse(body, status=400, dialect=STRAVA))
    assert outcome.error == "client_id:invalid"
    assert not outcome.reauthenticate
    assert outcome.description == "message=Authorization Error; errors.0.resource=Application"
    # no errors[]: the message is the code
    assert rejected(parse({"message": "Bad Request"}, status=400, dialect=STRAVA)).error == (
        "Bad Request"
    )


def test_microsoft_error_codes_and_multiline_description() -> None:
    body = {
        "error": "invalid_grant",
        "error_description": "AADSTS70008: The provided authorization code or refresh token has"
        " expired due to inactivity.\r\nTrace ID: 0000aaaa-11bb-cccc-dd22-eeeeee333333\r\n"
        "Correlation ID: aaaa0000-bb11-2222-33cc-444444dddddd\r\nTimestamp: 2026-01-01 00:00:00Z",
        "error_codes": [70008],
        "timestamp": "2026-01-01 00:00:00Z",
        "trace_id": "0000aaaa-11bb-cccc-dd22-eeeeee333333",
        "correlation_id": "aaaa0000-bb11-2222-33cc-444444dddddd",
    }
    outcome = rejected(parse(body, status=400, dialect=MICROSOFT))
    assert outcome.reauthenticate
    assert outcome.description.startswith("AADSTS70008: The provided authorization code")
    assert "\r" not in outcome.description
    assert len(outcome.description) <= 200
    short = {**body, "error_description": "AADSTS70008: expired."}
    assert rejected(parse(short, status=400, dialect=MICROSOFT)).description == (
        "AADSTS70008: expired.; error_codes=70008"
    )


def test_reddit_numeric_error_names_itself_in_message() -> None:
    body = {"message": "Unauthorized", "error": 401}
    assert rejected(parse(body, status=401, dialect=REDDIT)).error == "Unauthorized"
    # without the dialect: an error without a usable code
    assert isinstance(parse(body, status=401), TokenRetryable)


def test_dialect_error_fields_never_turn_a_grant_into_an_error() -> None:
    body = {"access_token": ACCESS, "message": "welcome", "status": "ok"}
    assert granted(parse(body, dialect=TWITCH)).access_token == ACCESS
    assert granted(parse(body, dialect=HUBSPOT)).access_token == ACCESS


def test_a_200_without_a_token_is_an_error_when_the_dialect_names_one() -> None:
    body = {"status": 400, "message": "Invalid refresh token"}
    assert rejected(parse(body, dialect=TWITCH)).reauthenticate
    assert isinstance(parse(body), TokenRetryable)  # the standard dialect: not a token reply


@pytest.mark.parametrize(
    ("dialect", "body", "status"),
    [
        (STANDARD, {"error": "temporarily_unavailable"}, 400),
        (STANDARD, {"error": "server_error", "error_description": "try later"}, 400),
        (SLACK, {"ok": False, "error": "ratelimited"}, 200),
        (SLACK, {"ok": False, "error": "internal_error"}, 200),
    ],
)
def test_transient_error_codes_are_retryable(
    dialect: TokenDialect, body: dict[str, Any], status: int
) -> None:
    outcome = parse(body, status=status, dialect=dialect, retry_after="12")
    assert isinstance(outcome, TokenRetryable)
    assert str(body["error"]) in outcome.reason
    assert outcome.retry_after == 12.0


@pytest.mark.parametrize(
    "message", ["x" * 64, "multi\nline", "caf\u00e9", "", "error", "ERROR"], ids=repr
)
def test_an_unusable_dialect_code_is_no_code(message: str) -> None:
    outcome = parse({"message": message}, status=400, dialect=TWITCH)
    assert isinstance(outcome, TokenRetryable)


def test_a_description_never_echoes_the_tokens_being_refreshed() -> None:
    old = previous()
    body = {"error": "invalid_grant", "error_description": f"refresh token {REFRESH} unknown"}
    outcome = rejected(parse(body, status=400, previous=old))
    assert REFRESH not in outcome.description
    assert outcome.description == "refresh token [redacted] unknown"
    body = {"message": f"Invalid {REFRESH}"}
    assert rejected(parse(body, status=400, dialect=TWITCH, previous=old)).error == (
        "Invalid [redacted]"
    )


def test_a_long_echoed_token_is_masked_before_the_description_is_cut() -> None:
    long_refresh = "rt-" + "x" * 500
    old = previous(refresh_token=long_refresh)
    body = {"error": "invalid_grant", "error_description": f"{'y' * 100} {long_refresh} end"}
    outcome = rejected(parse(body, status=400, previous=old))
    assert "xxxxxxxx" not in outcome.description
    assert outcome.description == f"{'y' * 100} [redacted] end"


def test_error_outcome_is_none_for_a_token_reply() -> None:
    assert error_outcome(200, {"access_token": ACCESS}) is None
    assert error_outcome(200, {"ok": True, "access_token": ACCESS}, SLACK) is None
    assert isinstance(error_outcome(400, {"access_token": ACCESS}), TokenRetryable)


# -- token_object: the nested token of Slack v2 ---------------------------------------------

SLACK_INSTALL = {
    "ok": True,
    "access_token": "xoxe.xoxb-1-bot-token",
    "token_type": "bot",
    "scope": "commands,incoming-webhook",
    "bot_user_id": "U0KRQLJ9H",
    "app_id": "A0KRD7HC3",
    "team": {"name": "Slack Softball Team", "id": "T9TK3CUKW"},
    "enterprise": None,
    "is_enterprise_install": False,
    "refresh_token": "xoxe-1-bot-refresh",
    "expires_in": 43200,
    "authed_user": {
        "id": "U1234",
        "scope": "chat:write,users:read",
        "access_token": "xoxe.xoxp-1-user-token",
        "token_type": "user",
        "refresh_token": "xoxe-1-user-refresh",
        "expires_in": 43200,
    },
}


def test_slack_user_token_is_read_from_authed_user() -> None:
    tokens = granted(parse(SLACK_INSTALL, dialect=SLACK))
    assert tokens.access_token == "xoxe.xoxp-1-user-token"
    assert tokens.refresh_token == "xoxe-1-user-refresh"
    assert tokens.scope == "chat:write users:read"
    assert tokens.token_type == "Bearer"
    assert tokens.expires_at == NOW + 43200
    assert dict(tokens.extra) == {
        "team_id": "T9TK3CUKW",
        "team_name": "Slack Softball Team",
        "user_id": "U1234",
    }


def test_slack_install_without_a_user_token_holds_no_token() -> None:
    bot_only = {k: v for k, v in SLACK_INSTALL.items() if k != "authed_user"}
    outcome = parse(bot_only, dialect=SLACK)
    assert isinstance(outcome, TokenRetryable)
    assert "no access_token" in outcome.reason
    assert token_object(bot_only, SLACK, refreshing=False) == {}


def test_slack_user_token_refresh_reply_is_flat() -> None:
    """[S] @slack/oauth OAuthV2TokenRefreshResponse: the refreshed token at the top level."""
    reply = {
        "ok": True,
        "app_id": "A0KRD7HC3",
        "access_token": "xoxe.xoxp-1-user-token-2",
        "refresh_token": "xoxe-1-user-refresh-2",
        "token_type": "user",
        "expires_in": 43200,
        "team": {"id": "T9TK3CUKW", "name": "Slack Softball Team"},
        "enterprise": None,
        "is_enterprise_install": False,
    }
    old = granted(parse(SLACK_INSTALL, dialect=SLACK))
    tokens = granted(parse(reply, dialect=SLACK, previous=old))
    assert tokens.access_token == "xoxe.xoxp-1-user-token-2"
    assert tokens.refresh_token == "xoxe-1-user-refresh-2"
    assert tokens.scope == "chat:write users:read"  # not in the reply: kept
    assert dict(tokens.extra)["user_id"] == "U1234"  # kept from the install


def test_token_object_without_a_path_is_the_reply() -> None:
    data = {"access_token": ACCESS}
    assert token_object(data, STANDARD, refreshing=False) is data


def test_dig_paths() -> None:
    doc = {"a": {"b": [{"c": 1}, {"c": 2}]}, "n": None}
    assert dig(doc, "a.b.1.c") == 2
    assert dig(doc, "a.b.2.c") is None
    assert dig(doc, "a.b.x") is None
    assert dig(doc, "a.b.\u00b2") is None  # a digit, but not an index
    assert dig(doc, "n.x") is None
    assert dig(doc, "missing") is None


# -- read_scope -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param({"scope": "openid email"}, "openid email", id="space"),
        pytest.param({"scope": "repo,gist"}, "repo gist", id="comma-github"),
        pytest.param(
            {"scope": ["channel:read", "chat:edit"]}, "channel:read chat:edit", id="twitch"
        ),
        pytest.param({"scopes": "repository account"}, "repository account", id="bitbucket"),
        pytest.param(
            {"scopes": ["oauth", "crm.objects.contacts.read"]},
            "oauth crm.objects.contacts.read",
            id="hubspot",
        ),
        pytest.param({"scope": "a", "scopes": ["b"]}, "a", id="scope-wins"),
        pytest.param({"scope": None}, "read write", id="mailchimp-null-keeps"),
        pytest.param({}, "read write", id="absent-keeps"),
        pytest.param({"scope": ""}, "read write", id="empty-keeps"),
        pytest.param({"scope": 42, "scopes": "x"}, "x", id="unreadable-scope"),
        pytest.param({"scope": "a \x00b c"}, "a c", id="unprintable-token-dropped"),
    ],
)
def test_scope_forms(fields: dict[str, Any], expected: str) -> None:
    assert read_scope(fields, previous()) == expected


def test_scope_at_the_first_grant() -> None:
    assert read_scope({}, None) is None
    assert read_scope({"scope": None}, None) is None


def test_scope_through_the_parser() -> None:
    body = {"access_token": ACCESS, "scope": ["user:read:email"], "expires_in": 14124}
    assert granted(parse(body)).scope == "user:read:email"


# -- read_expiry / read_refresh_expiry ------------------------------------------------------


def test_missing_expires_in_takes_the_connection_default() -> None:
    assert read_expiry({}, STANDARD, now=NOW, default_expires_in=7200) == NOW + 7200
    assert read_expiry({}, STANDARD, now=NOW, default_expires_in=None) is None


def test_zero_expires_in_means_never_for_mailchimp() -> None:
    reply = {"access_token": "5c6ccc561059aa386da9d112215bae55", "expires_in": 0, "scope": None}
    tokens = granted(parse(reply, dialect=MAILCHIMP, default_expires_in=None))
    assert tokens.expires_at is None
    assert tokens.scope is None
    # the standard reading: expired at once
    assert read_expiry({"expires_in": 0}, STANDARD, now=NOW, default_expires_in=None) == NOW
    assert read_expiry({"expires_in": "0"}, MAILCHIMP, now=NOW, default_expires_in=60) is None


def test_absolute_expires_at_for_strava() -> None:
    reply = {
        "token_type": "Bearer",
        "expires_at": NOW + 21000,
        "expires_in": 21600,
        "refresh_token": "e5n567567",
        "access_token": "a4b945687g",
        "athlete": {"id": 134815, "username": "marianne_t"},
    }
    tokens = granted(parse(reply, dialect=STRAVA))
    assert tokens.expires_at == NOW + 21600  # expires_in wins: no clock skew
    assert dict(tokens.extra) == {"athlete_id": 134815}
    del reply["expires_in"]
    assert granted(parse(reply, dialect=STRAVA)).expires_at == NOW + 21000
    reply["expires_at"] = "soon"
    assert granted(parse(reply, dialect=STRAVA)).expires_at == NOW + 3600  # the default
    # the standard dialect does not read expires_at
    assert read_expiry({"expires_at": NOW + 5}, STANDARD, now=NOW, default_expires_in=60) == (
        NOW + 60
    )


@pytest.mark.parametrize(
    "value", [float("inf"), float("nan"), "Infinity", "1e999", -1, True, [60], {"s": 60}, "9" * 65]
)
def test_unreadable_expires_in_takes_the_default(value: object) -> None:
    assert read_expiry({"expires_in": value}, STANDARD, now=NOW, default_expires_in=60) == NOW + 60


def test_absurd_lifetimes_are_capped() -> None:
    assert read_expiry({"expires_in": 1e300}, STANDARD, now=NOW, default_expires_in=None) == (
        NOW + MAX_LIFETIME
    )
    assert read_expiry({"expires_in": 10**400}, STANDARD, now=NOW, default_expires_in=60) == (
        NOW + 60
    )  # too big for a float: unreadable
    huge = {"expires_at": 1e300}
    assert read_expiry(huge, STRAVA, now=NOW, default_expires_in=None) == NOW + MAX_LIFETIME


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        pytest.param("refresh_token_expires_in", 15897600, NOW + 15897600, id="github-app"),
        pytest.param("refresh_token_expires_in", "31536000", NOW + 31536000, id="linkedin"),
        pytest.param("x_refresh_token_expires_in", 8726400, NOW + 8726400, id="intuit"),
        pytest.param("refresh_expires_in", 1800, NOW + 1800, id="keycloak"),
        pytest.param("refresh_expires_in", 0, None, id="keycloak-offline"),
        pytest.param("refresh_token_expires_in", "never", None, id="unreadable"),
    ],
)
def test_refresh_token_lifetime(field: str, value: object, expected: float | None) -> None:
    reply = {"access_token": ACCESS, "refresh_token": "rt-new", field: value}
    assert granted(parse(reply)).refresh_expires_at == expected


def test_refresh_token_lifetime_is_kept_while_the_refresh_token_is() -> None:
    old = previous(refresh_expires_at=NOW + 1000)
    same = {"access_token": ACCESS}
    assert granted(parse(same, previous=old)).refresh_expires_at == NOW + 1000
    rotated = {"access_token": ACCESS, "refresh_token": "rt-rotated"}
    assert granted(parse(rotated, previous=old)).refresh_expires_at is None
    told = {"access_token": ACCESS, "refresh_token_expires_in": 500}
    assert granted(parse(told, previous=old)).refresh_expires_at == NOW + 500


def test_no_refresh_token_no_refresh_lifetime() -> None:
    fields = {"refresh_token_expires_in": 60}
    assert read_refresh_expiry(fields, STANDARD, now=NOW, refresh_token=None, previous=None) is None


def test_dialect_chooses_the_refresh_lifetime_fields() -> None:
    dialect = TokenDialect(refresh_expires_fields=("rt_ttl",))
    fields = {"rt_ttl": 60, "refresh_token_expires_in": 5}
    assert read_refresh_expiry(fields, dialect, now=NOW, refresh_token="r", previous=None) == (
        NOW + 60
    )


# -- refresh token rotation and token strings -----------------------------------------------


@pytest.mark.parametrize("value", [None, "", 5, "caf\u00e9", "a\nb", ["x"]], ids=repr)
def test_an_unusable_refresh_token_keeps_the_previous_one(value: object) -> None:
    reply = {"access_token": ACCESS, "refresh_token": value}
    assert granted(parse(reply, previous=previous())).refresh_token == REFRESH


@pytest.mark.parametrize("value", ["caf\u00e9", "a\tb", "\ud800", ""], ids=repr)
def test_an_access_token_outside_rfc_6749_characters_is_not_a_grant(value: str) -> None:
    assert isinstance(parse({"access_token": value}), TokenRetryable)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Bearer", "Bearer"),
        ("bearer", "bearer"),
        ("DPoP", "DPoP"),
        ("user", "Bearer"),
        ("bot", "Bearer"),
        (None, "Bearer"),
        (7, "Bearer"),
    ],
)
def test_token_type(value: object, expected: str) -> None:
    assert read_token_type(value) == expected


# -- kept_extra: non-secret fields ----------------------------------------------------------

SALESFORCE_REPLY = {
    "access_token": "00Dxx0000001gPL!AR8AQJXg5oj8jXSgxJfA0lBog",
    "refresh_token": "5Aep861TSESvWeug_xvFHRBTTbf_YrTWgEyjBJrn",
    "signature": "CMJ4l+CCaPQiKjoOEwEig9H4wqhpuLSk4J2urAe+fVg=",
    "scope": "refresh_token api",
    "instance_url": "https://yourinstance.my.salesforce.com",
    "id": "https://login.salesforce.com/id/00Dxx0000001gPLEAY/005xx000001SwiUAAS",
    "token_type": "Bearer",
    "issued_at": "1278448384422",
}


def test_salesforce_keeps_instance_url_and_has_no_expires_in() -> None:
    tokens = granted(parse(SALESFORCE_REPLY, dialect=SALESFORCE, default_expires_in=None))
    assert tokens.expires_at is None
    assert dict(tokens.extra) == {
        "instance_url": "https://yourinstance.my.salesforce.com",
        "id": "https://login.salesforce.com/id/00Dxx0000001gPLEAY/005xx000001SwiUAAS",
        "issued_at": "1278448384422",
        "signature": "CMJ4l+CCaPQiKjoOEwEig9H4wqhpuLSk4J2urAe+fVg=",
    }
    refreshed = {
        "access_token": "00Dxx0000001gPL!AR8AQP0jITN80ESEsj5EbaZTFG0R",
        "instance_url": "https://moved.my.salesforce.com",
        "issued_at": "1278448999999",
    }
    again = granted(parse(refreshed, dialect=SALESFORCE, previous=tokens))
    assert dict(again.extra) == {
        "instance_url": "https://moved.my.salesforce.com",  # returned again: the new value
        "id": "https://login.salesforce.com/id/00Dxx0000001gPLEAY/005xx000001SwiUAAS",
        "issued_at": "1278448999999",
        "signature": "CMJ4l+CCaPQiKjoOEwEig9H4wqhpuLSk4J2urAe+fVg=",  # not returned: kept
    }
    assert again.refresh_token == SALESFORCE_REPLY["refresh_token"]


def test_extra_of_the_previous_token_set_is_kept() -> None:
    """Values set at login by other means (the callback's ``realmId``) survive a refresh."""
    old = previous(extra=(("realmId", "9130350"),))
    assert dict(granted(parse({"access_token": ACCESS}, previous=old)).extra) == {
        "realmId": "9130350"
    }


@pytest.mark.parametrize(
    "path",
    [
        "access_token",
        "refresh_token",
        "id_token",
        "authed_user.access_token",
        "authed_user.refresh_token",
        "incoming_webhook.token",
        "client_secret",
        "bot.secret_value",
        "owner.Password",
        "client_assertion",
        "data.api_key",
    ],
)
def test_a_value_under_a_secret_looking_key_is_never_kept(path: str) -> None:
    data = {
        "access_token": ACCESS,
        "refresh_token": REFRESH,
        "id_token": "a.b.c",
        "authed_user": {"access_token": ACCESS, "refresh_token": REFRESH},
        "incoming_webhook": {"token": "hook"},
        "client_secret": "s",
        "bot": {"secret_value": "s"},
        "owner": {"Password": "p"},
        "client_assertion": "a",
        "data": {"api_key": "k"},
    }
    assert dig(data, path) is not None
    assert kept_extra(data, TokenDialect(keep=(("kept", path),))) == ()
    # nor under a secret-looking name
    assert kept_extra({"team": "T1"}, TokenDialect(keep=(("refresh_token", "team"),))) == ()


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("access_token", True),
        ("REFRESH_TOKEN", True),
        ("id_token", True),
        ("token", True),
        ("bot_token", True),
        ("client_secret", True),
        ("secretKey", True),
        ("password", True),
        ("user_passwd", True),
        ("private_key", True),
        ("token_type", False),
        ("issued_token_type", False),
        ("instance_url", False),
        ("stripe_publishable_key", False),
        ("team", False),
    ],
)
def test_is_secret_key(name: str, secret: bool) -> None:
    assert is_secret_key(name) is secret


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        ("x" * MAX_EXTRA_STRING, True),
        ("x" * (MAX_EXTRA_STRING + 1), False),
        (12345, True),
        (2**63, False),
        (-(2**63), True),
        (1.5, True),
        (float("nan"), False),
        (float("inf"), False),
        (True, True),
        (False, True),
        (None, False),
        ({"id": 1}, False),
        ([1, 2], False),
        ("\ud800", False),
    ],
    ids=lambda v: repr(v)[:20],
)
def test_only_bounded_json_scalars_are_kept(value: object, kept: bool) -> None:
    extra = kept_extra({"field": value}, TokenDialect(keep=(("field", "field"),)))
    assert extra == ((("field", value),) if kept else ())


def test_kept_fields_come_from_a_form_encoded_reply_too() -> None:
    body = b"access_token=abc&instance_url=https%3A%2F%2Fna1.salesforce.com"
    tokens = granted(parse(body, content_type=FORM, dialect=SALESFORCE))
    assert dict(tokens.extra) == {"instance_url": "https://na1.salesforce.com"}


def test_extra_survives_storage() -> None:
    tokens = granted(parse(SLACK_INSTALL, dialect=SLACK))
    assert TokenSet.from_bytes(tokens.to_bytes()) == tokens


def test_any_code_of_the_reply_may_say_the_grant_is_gone() -> None:
    # HubSpot's live refusals name a generic RFC code beside their own status.
    body = {"status": "BAD_REFRESH_TOKEN", "error": "invalid_request", "message": "expired"}
    outcome = rejected(parse(body, status=400, dialect=HUBSPOT, previous=previous()))
    assert outcome.error == "invalid_request"
    assert outcome.reauthenticate
    plain = rejected(parse({"error": "invalid_request"}, status=400, dialect=HUBSPOT))
    assert not plain.reauthenticate


def test_kept_values_come_from_any_document_a_preset_reads() -> None:
    tenants = [{"tenantId": "t-1", "tenantName": "Maple", "access_token": "leak"}, {"x": 1}]
    keep = (("tenant_id", "0.tenantId"), ("tenant_name", "0.tenantName"), ("t", "0.access_token"))
    assert pick_kept(tenants, keep) == (("tenant_id", "t-1"), ("tenant_name", "Maple"))
    assert pick_kept([], keep) == ()
    assert pick_kept({"0": {"tenantId": "t-2"}}, keep[:1]) == (("tenant_id", "t-2"),)
