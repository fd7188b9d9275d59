"""Grant patterns: segment matching, strict characters, and a property test vs a reference."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oauth_vault_mw import BadRequest
from oauth_vault_mw.core.grants import (
    READ_CREDENTIALS,
    Grant,
    credentials_resource,
    is_granted,
    pattern_matches,
)

ALL = "Connections/*/Users/*/Credentials"


@pytest.mark.parametrize(
    ("pattern", "resource", "expected"),
    [
        (ALL, "Connections/google/Users/u-42/Credentials", True),
        ("Connections/google/Users/*/Credentials", "Connections/google/Users/u1/Credentials", True),
        ("Connections/google/Users/*/Credentials",
         "Connections/github/Users/u1/Credentials", False),
        ("Connections/*/Users/u1/Credentials", "Connections/github/Users/u1/Credentials", True),
        ("Connections/*/Users/u1/Credentials", "Connections/github/Users/u2/Credentials", False),
        (ALL, "Connections/google/Users/u1/Credentials/extra", False),
        (ALL, "Connections/google/Users/Credentials", False),
        (ALL, "Connections/google/Users/a/b/Credentials", False),
        (ALL, "connections/google/Users/u1/Credentials", False),  # case counts
        ("Connections/Google/Users/*/Credentials", "Connections/google/Users/u/Credentials", False),
        (ALL, "Connections/../Users/u1/Credentials", False),
        (ALL, "Connections/./Users/u1/Credentials", False),
        (ALL, "Connections/google%2FUsers/Users/u1/Credentials", False),
        (ALL, "Connections//Users/u1/Credentials", False),
        (ALL, "Connections/*/Users/u1/Credentials", False),  # a wildcard is not a resource
        ("*", "Connections", True),
        ("Connections/*", "Connections/a/b", False),
        (ALL, "", False),
    ],
)  # fmt: skip
def test_pattern_matches(pattern: str, resource: str, expected: bool) -> None:
    assert pattern_matches(pattern, resource) is expected


def test_grant_parse_and_roles() -> None:
    grant = Grant.parse(f"{ALL}:{READ_CREDENTIALS}")
    assert grant == Grant(ALL, READ_CREDENTIALS)
    assert str(grant) == f"{ALL}:{READ_CREDENTIALS}"
    viewer = Grant.parse("Connections/google/Users/*/Credentials:UserCredentialsViewer")
    resource = credentials_resource("google", "u1")
    assert viewer.allows(resource, READ_CREDENTIALS)
    assert not viewer.allows(resource, "connections:credentials:write")
    assert is_granted([grant], resource, READ_CREDENTIALS)
    assert not is_granted([], resource, READ_CREDENTIALS)


@pytest.mark.parametrize(
    "text",
    ["no-colon", f"{ALL}:unknown:action", f"Connections/../x:{READ_CREDENTIALS}",
     f"Connections//x:{READ_CREDENTIALS}", f":{READ_CREDENTIALS}", f"a%2Fb:{READ_CREDENTIALS}"],
)  # fmt: skip
def test_bad_grants_refused(text: str) -> None:
    with pytest.raises(BadRequest):
        Grant.parse(text)


# -- property: the matcher agrees with an independent regex reference -----------------------

_SEG = r"[A-Za-z0-9_@:+-][A-Za-z0-9_.@:+-]{0,127}"


def reference(pattern: str, resource: str) -> bool:
    """A regex built from the pattern; the resource must be all-valid segments."""
    if not resource or len(resource) > 1024 or len(pattern) > 1024:
        return False
    if not re.fullmatch(rf"{_SEG}(/{_SEG})*", resource) or len(resource.split("/")) > 16:
        return False
    if any(part in (".", "..") for part in resource.split("/")):
        return False
    if len(pattern.split("/")) > 16:
        return False
    pieces = []
    for part in pattern.split("/"):
        if part == "*":
            pieces.append(_SEG)
        elif re.fullmatch(_SEG, part) and part not in (".", ".."):
            pieces.append(re.escape(part))
        else:
            return False
    return re.fullmatch("/".join(pieces), resource) is not None


TRICKY = st.sampled_from(
    ["Connections", "connections", "CONNECTIONS", "Users", "users", "Credentials", "google",
     "u1", "U1", "*", "**", "..", ".", "", "%2F", "%2f", "a%2Fb", "\\", "a\\b", " ", "g oogle",
     "google ", "\u0130", "ǅ", "a.b", "x:y", "u@ex", "/", "\x00"]
)  # fmt: skip
SEGMENT = st.one_of(TRICKY, st.text(alphabet="aAzZ09_.-@:+*/%\\", min_size=0, max_size=6))


@settings(max_examples=3000, derandomize=True, database=None)
@given(st.lists(SEGMENT, min_size=1, max_size=6), st.lists(SEGMENT, min_size=1, max_size=6))
def test_matcher_agrees_with_reference(pattern: list[str], resource: list[str]) -> None:
    p, r = "/".join(pattern), "/".join(resource)
    assert pattern_matches(p, r) is reference(p, r)


@settings(max_examples=2000, derandomize=True, database=None)
@given(st.lists(SEGMENT, min_size=1, max_size=6))
def test_a_pattern_never_matches_outside_its_shape(resource: list[str]) -> None:
    """Whatever the path, ``Connections/*/Users/*/Credentials`` only matches that shape."""
    r = "/".join(resource)
    if pattern_matches(ALL, r):
        parts = r.split("/")
        assert len(parts) == 5
        assert (parts[0], parts[2], parts[4]) == ("Connections", "Users", "Credentials")
        assert all(re.fullmatch(_SEG, p) and p not in (".", "..") for p in parts)


def test_user_ids_with_colons_can_be_granted() -> None:
    grant = Grant.parse(f"Connections/*/Users/auth0:123/Credentials:{READ_CREDENTIALS}")
    assert grant.pattern == "Connections/*/Users/auth0:123/Credentials"
    assert grant.allows("Connections/g/Users/auth0:123/Credentials", READ_CREDENTIALS)
    viewer = Grant.parse("Connections/*/Users/a:b/Credentials:UserCredentialsViewer")
    assert viewer.action == "UserCredentialsViewer"


@settings(max_examples=1500, derandomize=True, database=None)
@given(
    st.lists(st.lists(SEGMENT, min_size=1, max_size=6), min_size=1, max_size=3),
    st.lists(SEGMENT, min_size=1, max_size=6),
)
def test_is_granted_agrees_with_the_reference_grant_by_grant(
    patterns: list[list[str]], resource: list[str]
) -> None:
    """``is_granted`` splits the resource once and each grant's pattern once (kept on the
    grant): the answer stays the reference matcher's, asked again or not."""
    r = "/".join(resource)
    grants = [Grant("/".join(p), READ_CREDENTIALS) for p in patterns]
    expected = any(reference("/".join(p), r) for p in patterns)
    for _ in range(2):
        assert is_granted(grants, r, READ_CREDENTIALS) is expected
        assert [g.allows(r, READ_CREDENTIALS) for g in grants] == [
            reference("/".join(p), r) for p in patterns
        ]
    assert is_granted(grants, r, "connections:credentials:write") is False
