"""The Flask shell's per-request pieces, without a provider: the session cookie read from the
raw ``Cookie`` header, and the JSON responses built from prebuilt headers."""

from __future__ import annotations

import json
import random

import pytest
from werkzeug.datastructures import Headers

from oauth_vault_mw.core.errors import BadRequest, NotAuthenticated
from oauth_vault_mw.core.inputs import NO_STORE
from oauth_vault_mw.flask import error_response
from oauth_vault_mw.flask._context import MAX_COOKIE_HEADER, cookie_from
from oauth_vault_mw.flask.routes import json_response

NAME = "oauth_vault_session"


def split_read(header: str, name: str) -> str | None:
    """The reference: split the header into every pair, as the shell did before."""
    for part in header.split(";"):
        found, sep, content = part.strip().partition("=")
        if sep and found == name:
            return content.strip('"')
    return None


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (f"{NAME}=abc", "abc"),
        (f"theme=dark; {NAME}=abc; lang=en", "abc"),
        (f"theme=dark;{NAME}=abc", "abc"),
        (f'{NAME}="abc"', "abc"),
        (f"{NAME}=abc  ; x=1", "abc"),
        (f"{NAME}= abc", " abc"),
        (f"{NAME}=", ""),
        (f"x{NAME}=abc", None),
        (f"{NAME}x=abc", None),
        (f"{NAME} =abc", None),
        (f"other={NAME}=evil; {NAME}=good", "good"),
        (f"a b {NAME}=evil; {NAME}=good", "good"),
        (f"{NAME}=first; {NAME}=second", "first"),
        (f"{NAME}", None),
        ("theme=dark", None),
    ],
)
def test_the_session_cookie_from_the_raw_header(header: str, expected: str | None) -> None:
    assert cookie_from({"HTTP_COOKIE": header}, NAME) == expected
    assert split_read(header, NAME) == expected


def test_the_raw_read_agrees_with_splitting_every_pair() -> None:
    rng = random.Random(12)
    pieces = [NAME, "__Host-" + NAME, "x", "=", ";", " ", "\t", '"', "abc", "a=b", "\x1f"]
    for _ in range(20_000):
        header = "".join(rng.choice(pieces) for _ in range(rng.randrange(1, 12)))
        assert cookie_from({"HTTP_COOKIE": header}, NAME) == split_read(header, NAME), header


def test_no_header_and_an_oversized_one() -> None:
    assert cookie_from({}, NAME) is None
    assert cookie_from({"HTTP_COOKIE": ""}, NAME) is None
    with pytest.raises(BadRequest):
        cookie_from({"HTTP_COOKIE": "x=" + "a" * MAX_COOKIE_HEADER}, NAME)


def test_json_responses_carry_the_same_headers_either_way() -> None:
    body = {"access_token": "t", "ü": 1}
    fast = json_response(body, 200, NO_STORE)  # the prebuilt no-store list
    checked = json_response(body, 200, dict(NO_STORE))  # another mapping: checked as given
    for response in (fast, checked):
        assert response.status_code == 200
        assert (
            response.get_data()
            == json.dumps(body, ensure_ascii=False).replace(", ", ",").replace(": ", ":").encode()
        )
        assert response.headers["Content-Type"] == "application/json"
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["Pragma"] == "no-cache"
        assert response.headers["Content-Length"] == str(len(response.get_data()))
    assert sorted(fast.headers.items()) == sorted(checked.headers.items())
    fast.headers["X-Added"] = "1"  # each response has its own headers
    assert "X-Added" not in json_response(body, 200, NO_STORE).headers
    plain = json_response({"a": 1})
    assert list(plain.headers.items()) == [
        ("Content-Type", "application/json"),
        ("Content-Length", "7"),
    ]


def test_a_header_value_with_a_newline_is_still_refused() -> None:
    with pytest.raises(ValueError, match="newline"):
        json_response({}, 400, {"X-Bad": "a\r\nSet-Cookie: x=1"})


def test_error_responses_keep_their_headers() -> None:
    response = error_response(NotAuthenticated())
    assert response.status_code == 401
    assert response.headers["Content-Type"] == "application/json"
    assert json.loads(response.get_data())["error"] == "not_authenticated"
    assert isinstance(response.headers, Headers)
