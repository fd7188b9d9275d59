"""``parse_token_response`` is total: whatever a provider sends, one of three outcomes.

Any JSON value (deeply nested, huge or non-finite numbers, NaN-like strings, lists at the
top), any bytes, any Content-Type, any status, with or without a previous token set, for the
standard dialect and preset-like ones: the parser returns a ``TokenGranted``,
``TokenRejected`` or ``TokenRetryable`` and never raises; and what it grants can be stored.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oauth_vault_mw.core.dialect import TokenDialect
from oauth_vault_mw.core.model import TokenSet
from oauth_vault_mw.core.tokens import (
    MAX_EXTRA_STRING,
    MAX_TOKEN_RESPONSE,
    TokenGranted,
    TokenOutcome,
    TokenRejected,
    TokenRetryable,
    is_secret_key,
    parse_token_response,
)
from tests.core.dialects import ALL
from tests.core.tokensets import NOW

FIELDS = [
    "access_token",
    "refresh_token",
    "id_token",
    "token_type",
    "expires_in",
    "expires_at",
    "scope",
    "scopes",
    "error",
    "error_description",
    "error_codes",
    "ok",
    "status",
    "message",
    "category",
    "errors",
    "authed_user",
    "team",
    "instance_url",
    "refresh_token_expires_in",
    "x_refresh_token_expires_in",
    "refresh_expires_in",
    "athlete",
    "hub_id",
]

NUMBERS = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -1, 1e308, -1e308, 5e-324, 2**63, 2**64]),
)
STRINGS = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        [
            "NaN",
            "nan",
            "Infinity",
            "-Infinity",
            "1e999",
            "-0",
            " 60 ",
            "0x10",
            "invalid_grant",
            "bad_refresh_token",
            "invalid_refresh_token",
            "Invalid refresh token",
            "BAD_REFRESH_TOKEN",
            "temporarily_unavailable",
            "ratelimited",
            "error",
            "\ud800",
            "\u202e",
            "a,b c",
            "x" * (MAX_EXTRA_STRING + 1),
        ]
    ),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, STRINGS)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.one_of(st.sampled_from(FIELDS), st.text(max_size=8)), children, max_size=6
        ),
    ),
    max_leaves=25,
)
SMALL_VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.sampled_from(FIELDS), children, max_size=3),
    ),
    max_leaves=6,
)
TOKEN_LIKE = st.fixed_dictionaries({}, optional={name: SMALL_VALUES for name in FIELDS})
GRANT_LIKE = st.fixed_dictionaries(
    {"access_token": st.one_of(st.just("at-0123456789"), STRINGS)},
    optional={
        **{name: SMALL_VALUES for name in FIELDS if name != "access_token"},
        "authed_user": st.fixed_dictionaries(
            {"access_token": st.just("user-at-0123456789")},
            optional={
                name: SMALL_VALUES
                for name in ("refresh_token", "expires_in", "scope", "token_type", "id")
            },
        ),
    },
)
ERROR_FIELDS = ["error", "error_description", "ok", "status", "message", "category"]
ERROR_LIKE = st.fixed_dictionaries(
    {},
    optional={
        **{name: SCALARS for name in ERROR_FIELDS},
        "error_codes": st.lists(st.integers(), max_size=3),
        "errors": st.lists(
            st.dictionaries(st.sampled_from(["field", "code"]), SCALARS), max_size=2
        ),
        "access_token": st.sampled_from(["at-1", "", None]),
        "authed_user": st.fixed_dictionaries({}, optional={"access_token": st.just("at-2")}),
    },
)
BODIES_AS_JSON = st.one_of(TOKEN_LIKE, JSON_VALUES)

CONTENT_TYPES = st.one_of(
    st.sampled_from(
        [
            "application/json",
            "application/json; charset=utf-8",
            "application/x-www-form-urlencoded",
            "text/plain",
            "text/html",
            "application/xml",
            "",
        ]
    ),
    st.text(max_size=40),
)
STATUSES = st.one_of(
    st.sampled_from([200, 201, 204, 301, 400, 401, 403, 404, 429, 500, 503]),
    st.integers(min_value=-1, max_value=1000),
)
PREVIOUS = st.one_of(
    st.none(),
    st.builds(
        TokenSet,
        access_token=st.just("old-access-token-123"),
        refresh_token=st.one_of(st.none(), st.just("old-refresh-token-123")),
        expires_at=st.one_of(st.none(), st.just(NOW - 5)),
        scope=st.one_of(st.none(), st.just("read")),
        obtained_at=st.just(NOW - 3600),
        extra=st.sampled_from([(), (("realmId", "123"),), (("team_id", "T0"),)]),
        refresh_expires_at=st.one_of(st.none(), st.just(NOW + 100)),
    ),
)
DIALECTS = st.sampled_from(sorted(ALL))


def _dumps(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode("utf-8", errors="surrogatepass")


def _check(outcome: TokenOutcome, dialect: TokenDialect, previous: TokenSet | None) -> None:
    assert isinstance(outcome, (TokenGranted, TokenRejected, TokenRetryable))
    if isinstance(outcome, TokenRejected):
        assert 0 < len(outcome.error) <= 63
        assert outcome.error.isascii()
        assert outcome.error.isprintable()
        assert len(outcome.description) <= 200
        assert outcome.description.isprintable()
    if isinstance(outcome, TokenRetryable):
        assert outcome.reason.isprintable()
        assert outcome.retry_after is None or 0.0 <= outcome.retry_after <= 3600.0
    if not isinstance(outcome, TokenGranted):
        return
    tokens = outcome.tokens
    assert tokens.access_token.isascii()
    assert tokens.access_token.isprintable()
    for moment in (tokens.expires_at, tokens.refresh_expires_at):
        assert moment is None or math.isfinite(moment)
    assert tokens.token_type.lower() in ("bearer", "dpop", "mac")
    assert tokens.scope is None or tokens.scope.isprintable()
    kept_names = {name for name, _ in dialect.keep} | {
        n for n, _ in (previous.extra if previous else ())
    }
    for name, value in tokens.extra:
        assert name in kept_names
        assert not is_secret_key(name)
        assert isinstance(value, (str, int, float, bool))
        assert not isinstance(value, str) or len(value) <= MAX_EXTRA_STRING
    # what is granted can be sealed and read back, and shown as JSON
    assert TokenSet.from_bytes(tokens.to_bytes()) == tokens
    json.dumps(dict(tokens.extra), allow_nan=False, ensure_ascii=False).encode()


def _parse(
    status: int,
    content_type: str,
    body: bytes,
    dialect_name: str,
    previous: TokenSet | None,
    retry_after: str | None = None,
    default_expires_in: int | None = 3600,
) -> TokenOutcome:
    dialect = ALL[dialect_name]
    outcome = parse_token_response(
        status,
        content_type,
        body,
        now=NOW,
        default_expires_in=default_expires_in,
        previous=previous,
        retry_after=retry_after,
        dialect=dialect,
    )
    _check(outcome, dialect, previous)
    return outcome


PROPERTY = settings(
    database=None,
    derandomize=True,
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@PROPERTY
@given(
    BODIES_AS_JSON,
    CONTENT_TYPES,
    STATUSES,
    DIALECTS,
    PREVIOUS,
    st.one_of(st.none(), st.text(max_size=10), st.sampled_from(["nan", "inf", "-5", "1e999"])),
    st.one_of(st.none(), st.integers(min_value=1, max_value=10**9)),
)
def test_any_json_gives_one_of_three_outcomes(
    body: Any,
    content_type: str,
    status: int,
    dialect: str,
    previous: TokenSet | None,
    retry_after: str | None,
    default_expires_in: int | None,
) -> None:
    _parse(status, content_type, _dumps(body), dialect, previous, retry_after, default_expires_in)


@PROPERTY
@given(GRANT_LIKE, DIALECTS, PREVIOUS, st.one_of(st.none(), st.integers(1, 10**9)))
def test_any_token_reply_gives_one_of_three_outcomes(
    body: dict[str, Any], dialect: str, previous: TokenSet | None, default_expires_in: int | None
) -> None:
    raw = _dumps(body)
    _parse(200, "application/json", raw, dialect, previous, None, default_expires_in)


@PROPERTY
@given(st.binary(max_size=512), CONTENT_TYPES, STATUSES, DIALECTS, PREVIOUS)
def test_any_bytes_give_one_of_three_outcomes(
    body: bytes, content_type: str, status: int, dialect: str, previous: TokenSet | None
) -> None:
    _parse(status, content_type, body, dialect, previous)


@PROPERTY
@given(
    st.dictionaries(st.sampled_from(FIELDS), st.text(max_size=20), max_size=8),
    CONTENT_TYPES,
    DIALECTS,
)
def test_any_form_body_gives_one_of_three_outcomes(
    fields: dict[str, str], content_type: str, dialect: str
) -> None:
    from urllib.parse import urlencode

    _parse(200, content_type, urlencode(fields).encode(), dialect, None)


@PROPERTY
@given(ERROR_LIKE, DIALECTS, PREVIOUS, st.sampled_from([400, 401, 403, 404, 418]))
def test_an_error_in_a_200_is_the_same_error_as_with_a_4xx(
    body: dict[str, Any], dialect: str, previous: TokenSet | None, status: int
) -> None:
    raw = _dumps(body)
    with_200 = _parse(200, "application/json", raw, dialect, previous)
    if isinstance(with_200, TokenRejected):
        assert _parse(status, "application/json", raw, dialect, previous) == with_200


@settings(PROPERTY, max_examples=100)
@given(ERROR_LIKE, DIALECTS, st.sampled_from([429, 500, 502, 503, 504, 599]))
def test_throttling_and_server_errors_are_always_retryable(
    body: dict[str, Any], dialect: str, status: int
) -> None:
    assert isinstance(
        _parse(status, "application/json", _dumps(body), dialect, None), TokenRetryable
    )


@PROPERTY
@given(
    st.one_of(NUMBERS, STRINGS, st.sampled_from([None, True, [], {}])),
    DIALECTS,
)
def test_any_expires_in_keeps_the_expiry_finite(value: Any, dialect: str) -> None:
    body = {"access_token": "at", "expires_in": value, "expires_at": value,
            "refresh_token": "rt", "refresh_token_expires_in": value}  # fmt: skip
    previous = TokenSet("old-access-token-123", "old-refresh-token-123")  # Slack: a refresh
    outcome = _parse(200, "application/json", _dumps(body), dialect, previous)
    assert isinstance(outcome, TokenGranted)


# -- the hostile bodies, by name ------------------------------------------------------------


@pytest.mark.parametrize("dialect", sorted(ALL))
@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"a":' * 40_000, id="40000-open-objects"),
        pytest.param(b'{"a":' * 40_000 + b"1" + b"}" * 40_000, id="40000-nested-objects"),
        pytest.param(b'{"access_token":' + b"[" * 50_000 + b"]" * 50_000 + b"}", id="lists"),
        pytest.param(b"[" * 100_000, id="list-at-the-top"),
        pytest.param(b'{"authed_user":' * 16_000 + b"{}" + b"}" * 16_000, id="slack-path"),
    ],
)
def test_recursion_becomes_retryable(body: bytes, dialect: str) -> None:
    assert len(body) <= MAX_TOKEN_RESPONSE
    assert isinstance(_parse(200, "application/json", body, dialect, None), TokenRetryable)


@pytest.mark.parametrize(
    "literal", [b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e999", b"1" + b"0" * 4000]
)
def test_non_finite_expires_in_takes_the_default(literal: bytes) -> None:
    body = b'{"access_token": "at", "expires_in": ' + literal + b"}"
    outcome = _parse(200, "application/json", body, "standard", None)
    assert isinstance(outcome, TokenGranted)
    assert outcome.tokens.expires_at == NOW + 3600
    mailchimp = _parse(200, "application/json", body, "mailchimp", None, default_expires_in=None)
    assert isinstance(mailchimp, TokenGranted)
    assert mailchimp.tokens.expires_at is None
