"""Service-client permissions: grants of an action on a resource pattern.

A resource is a path like ``Connections/google/Users/u-42/Credentials``; a grant's pattern
is the same shape where ``*`` matches exactly one segment. Matching is by whole segments,
case-sensitive, after a strict check of every segment's characters: no ``..``, no encoded
or literal slashes, no percent signs, no empty segments, so no path trick widens a grant.

::

    grant = Grant.parse("Connections/*/Users/*/Credentials:connections:credentials:read")
    grant.allows("Connections/google/Users/u-42/Credentials", READ_CREDENTIALS)  # True
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

from .errors import BadRequest

__all__ = [
    "READ_CREDENTIALS",
    "ROLES",
    "Grant",
    "account_credentials_resource",
    "credentials_resource",
    "is_granted",
    "may_read_credentials",
    "pattern_matches",
]

READ_CREDENTIALS = "connections:credentials:read"
ROLES: dict[str, frozenset[str]] = {"UserCredentialsViewer": frozenset({READ_CREDENTIALS})}
ACTIONS = frozenset({READ_CREDENTIALS})

SEGMENT_RE = re.compile(r"^[A-Za-z0-9_@:+-][A-Za-z0-9_.@:+-]{0,127}\Z")
MAX_SEGMENTS = 16


def _segments(path: str, *, wildcards: bool) -> tuple[str, ...] | None:
    """The path's segments, or None when any segment is outside the strict character set."""
    if not path or len(path) > 1024:
        return None
    parts = tuple(path.split("/"))
    if len(parts) > MAX_SEGMENTS:
        return None
    for part in parts:
        if wildcards and part == "*":
            continue
        if not SEGMENT_RE.match(part) or part in (".", ".."):
            return None
    return parts


def pattern_matches(pattern: str, resource: str) -> bool:
    """True when ``resource`` matches ``pattern`` segment by segment (``*``: one segment)."""
    return _matches(_segments(pattern, wildcards=True), _segments(resource, wildcards=False))


def _matches(want: tuple[str, ...] | None, have: tuple[str, ...] | None) -> bool:
    if want is None or have is None or len(want) != len(have):
        return False
    return all(w == "*" or w == h for w, h in zip(want, have, strict=True))


@dataclass(frozen=True)
class Grant:
    """One permission: ``action`` (or a role's actions) on resources matching ``pattern``."""

    pattern: str
    action: str

    @cached_property
    def actions(self) -> frozenset[str]:
        return ROLES.get(self.action, frozenset({self.action}))

    @cached_property
    def _want(self) -> tuple[str, ...] | None:
        """The pattern's segments, split and checked once per grant."""
        return _segments(self.pattern, wildcards=True)

    def allows(self, resource: str, action: str) -> bool:
        return action in self.actions and _matches(self._want, _segments(resource, wildcards=False))

    def __str__(self) -> str:
        return f"{self.pattern}:{self.action}"

    @classmethod
    def parse(cls, text: str) -> Grant:
        """``PATTERN:ACTION``. Actions contain colons and so may user ids in the pattern
        (``auth0:123``): the action is the known action or role the text ends with."""
        pattern, action = text, ""
        for known in sorted(ACTIONS | set(ROLES), key=len, reverse=True):
            if text.endswith(":" + known):
                pattern, action = text[: -len(known) - 1], known
                break
        else:
            pattern, _, action = text.partition(":")
        if not action or _segments(pattern, wildcards=True) is None:
            raise BadRequest(
                "a grant is PATTERN:ACTION, e.g. "
                "Connections/*/Users/*/Credentials:connections:credentials:read"
            )
        if action not in ACTIONS and action not in ROLES:
            known = ", ".join(sorted(ACTIONS | set(ROLES)))
            raise BadRequest(f"unknown action {action[:64]!r} (known: {known})")
        return cls(pattern, action)


def credentials_resource(connection_id: str, user_id: str) -> str:
    """A user's credentials of a connection: every account of it."""
    return f"Connections/{connection_id}/Users/{user_id}/Credentials"


def account_credentials_resource(connection_id: str, user_id: str, account: str | None) -> str:
    """One account's credential: ``account`` is its id, or ``default`` (the user's default
    account, whichever it is; a read that names no account)."""
    return (
        f"Connections/{connection_id}/Users/{user_id}/Accounts/{account or 'default'}/Credentials"
    )


def may_read_credentials(
    grants: Iterable[Grant], connection_id: str, user_id: str, account: str | None
) -> bool:
    """Whether ``grants`` let a client read the credential of ``account`` (``None``: the
    default account): a grant on the user's credentials covers every account, a grant on
    ``.../Accounts/{account id}/Credentials`` that account alone, and one on
    ``.../Accounts/default/Credentials`` the reads that name no account."""
    if is_granted(grants, credentials_resource(connection_id, user_id), READ_CREDENTIALS):
        return True
    narrow = account_credentials_resource(connection_id, user_id, account)
    return is_granted(grants, narrow, READ_CREDENTIALS)


def is_granted(grants: Iterable[Grant], resource: str, action: str) -> bool:
    have = _segments(resource, wildcards=False)  # once, not per grant
    return have is not None and any(action in g.actions and _matches(g._want, have) for g in grants)
