"""Several accounts of one connection per user: their ids, slots and which one is the default.

A user may link more than one account of a provider (a work and a personal Google account,
two Slack workspaces). Each account is one credential, stored under the key
``(connection, user, slot)``:

- the user's **default** account lives in the slot ``"default"``: a read without an account
  (``connection_credentials("google")``) is the one read it always was, and records written
  before accounts existed are already the default account of their user;
- every other account lives in the slot named by its **account id**.

An account id is derived from the connection and the provider's subject (the id the provider
gives the account), qualified where a preset says so by a kept field of the login (Slack: the
workspace's ``team_id``, so one user of two workspaces of an Enterprise Grid is two accounts),
so it is stable for as long as the account is linked and the same in every process, and it
shows neither the subject nor an e-mail address in a URL or a log line. The subject itself
travels sealed in the credential's token set (``TokenSet.subject``), the qualifier in its
kept fields.

Changing the default moves two token sets between slots (the slot is part of the sealing's
associated data, so each is sealed again). Should that be interrupted, an account can be
found both in the default slot and in its own; the default slot always wins, and the copy in
the other slot is never read nor refreshed (:func:`resolve`) and is overwritten or removed by
the next change.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .errors import BadRequest
from .model import CredentialKey, StoredCredential, TokenSet

__all__ = [
    "DEFAULT_SLOT",
    "NEW_ACCOUNT",
    "AccountRecord",
    "account_id",
    "account_param",
    "default_account_id",
    "legacy_account_id",
    "list_accounts",
    "login_slot",
    "qualifier_of",
]

DEFAULT_SLOT = "default"
NEW_ACCOUNT = "new"
"""``?account=new`` on a connect: link another account (the provider asks which)."""

_ACCOUNT_ID_RE = re.compile(r"a[0-9a-f]{24}")


def account_id(connection_id: str, subject: str, qualifier: str | None = None) -> str:
    """The stable id of the account ``subject`` of ``connection_id`` (within ``qualifier``,
    where the connection has one: :func:`qualifier_of`): ``a`` and 96 bits of a SHA-256 over
    them (domain-separated, length-prefixed)."""
    digest = hashlib.sha256()
    parts = [b"oauth_vault_mw/account/v1", connection_id.encode(), subject.encode()]
    if qualifier is not None:
        parts.append(qualifier.encode())
    for part in parts:
        digest.update(len(part).to_bytes(4, "big"))
        digest.update(part)
    return "a" + digest.hexdigest()[:24]


def qualifier_of(account_extra: str | None, tokens: TokenSet) -> str | None:
    """The kept field that tells accounts of one subject apart (the connection's
    ``account_extra``: Slack's ``team_id``), as the token set holds it; ``None`` without."""
    if account_extra is None:
        return None
    value = dict(tokens.extra).get(account_extra)
    return None if value is None else str(value)


def legacy_account_id(connection_id: str, user_id: str) -> str:
    """The id of a default account stored before accounts existed whose subject cannot be
    told (its user had several subjects of the connection linked): stable for that record
    until a login of one of them names it."""
    return account_id(connection_id, "\x00legacy\x00" + user_id)


def account_param(value: str | None) -> str | None:
    """The ``account`` query parameter: ``None`` (the default account) or an account id;
    anything else is a 400 that changes nothing."""
    if value is None or value == "":
        return None
    if not _ACCOUNT_ID_RE.fullmatch(value):  # no trailing newline, unlike "$"
        raise BadRequest("account must be an account id from /me (a and 24 hex digits)")
    return value


def default_account_id(
    connection_id: str,
    user_id: str,
    tokens: TokenSet,
    linked: Iterable[str] | None = None,
    account_extra: str | None = None,
) -> str:
    """The account id of the token set in the default slot. A record written before
    accounts existed has no subject: it is its user's one linked subject of the connection
    (``linked``: ``list_identities``), else :func:`legacy_account_id`."""
    qualifier = qualifier_of(account_extra, tokens)
    if tokens.subject is not None:
        return account_id(connection_id, tokens.subject, qualifier)
    subjects = list(linked or ())
    if len(subjects) == 1:
        return account_id(connection_id, subjects[0], qualifier)
    return legacy_account_id(connection_id, user_id)


def login_slot(
    connection_id: str,
    subject: str,
    default: TokenSet | None,
    linked: Iterable[str] | None = None,
    qualifiers: tuple[str | None, str | None] = (None, None),
) -> str:
    """Where a login or connect of ``subject`` stores its tokens, given what the default slot
    holds (``None``: empty). The first account of a connection becomes the default; a login
    of the default account writes there; any other account writes to its own slot.

    A default record without a subject (stored before accounts existed) is ``subject``'s when
    that is the one subject linked to the user, or when several are linked and which one it
    is cannot be told (the login takes it over, as before accounts existed).
    ``qualifiers``: the login's and the default record's (:func:`qualifier_of`)."""
    mine, theirs = qualifiers
    own = account_id(connection_id, subject, mine)
    if default is None:
        return DEFAULT_SLOT
    if default.subject is not None:
        return DEFAULT_SLOT if (default.subject, theirs) == (subject, mine) else own
    subjects = list(linked or ())
    if len(subjects) == 1 and (subjects[0], theirs) != (subject, mine):
        return own
    return DEFAULT_SLOT


@dataclass(frozen=True)
class AccountRecord:
    """One linked account as ``/me`` and the API list it."""

    account_id: str
    default: bool
    record: StoredCredential
    tokens: TokenSet | None  # None: no configured key opens it


def list_accounts(
    connection_id: str,
    user_id: str,
    records: Iterable[StoredCredential],
    opened: Mapping[CredentialKey, TokenSet],
    linked: Iterable[str] | None = None,
    account_extra: str | None = None,
) -> list[AccountRecord]:
    """The accounts of ``connection_id`` among a user's records: the default first, then the
    others by their first login; a slot copy of the default account (an interrupted change
    of default) is left out."""
    mine = [r for r in records if r.key.connection_id == connection_id and r.key.user_id == user_id]
    default = next((r for r in mine if r.key.account == DEFAULT_SLOT), None)
    found: list[AccountRecord] = []
    default_id: str | None = None
    if default is not None:
        tokens = opened.get(default.key)
        default_id = (
            default_account_id(connection_id, user_id, tokens, linked, account_extra)
            if tokens is not None
            else legacy_account_id(connection_id, user_id)
        )
        found.append(AccountRecord(default_id, True, default, tokens))
    others = [
        AccountRecord(r.key.account, False, r, opened.get(r.key))
        for r in mine
        if r.key.account != DEFAULT_SLOT and r.key.account != default_id
    ]
    others.sort(key=lambda a: ((a.tokens.login_at or 0.0) if a.tokens else 0.0, a.account_id))
    return found + others
