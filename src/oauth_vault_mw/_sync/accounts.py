# Generated from _async/accounts.py by scripts/unasync.py: do not edit.
"""Several accounts of one connection per user (sync): where a login stores its tokens, the
list of a user's accounts, the change of default, and the migration of records stored before
accounts existed. The rules are ``core/accounts.py``'s; this is the I/O around them.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from dataclasses import dataclass, replace

from ..core.accounts import (
    DEFAULT_SLOT,
    AccountRecord,
    list_accounts,
    login_slot,
    qualifier_of,
)
from ..core.errors import (
    AccountBusy,
    CredentialNotFound,
    CredentialUnreadable,
    StorageUnavailable,
)
from ..core.model import CredentialKey, StoredCredential, TokenSet
from ..core.records import seal_record
from .refresh import UNREAD, Refresher, _Lease

__all__ = ["AccountMigration", "Accounts"]

logger = logging.getLogger("oauth_vault_mw")

DORMANT_AFTER = 600.0
"""Seconds after its expiry when a token nobody refreshed counts as not being read."""
DUE_MARGIN = 60.0
"""Seconds before its expiry when a reader may be refreshing a token."""


@dataclass
class AccountMigration:
    """What :meth:`Accounts.migrate_accounts` did."""

    scanned: int = 0
    migrated: int = 0
    """Default records that now carry their account's subject."""
    already: int = 0
    """Records written by a release that knows accounts (nothing to do)."""
    ambiguous: int = 0
    """Default records whose user has several subjects of the connection linked (left as
    they are: the next login of one of them names it)."""
    unlinked: int = 0
    """Default records whose user has no subject of the connection linked (left as they are)."""
    unreadable: int = 0
    """Records no configured key opens (left as they are)."""
    busy: int = 0
    """Records whose lease stayed held by a refresh (run the migration again)."""
    due: int = 0
    """Records due for a refresh that a reader may be waiting for: left for a later run
    (a previous release would take the migration's write for that refresh)."""
    gone: int = 0
    """Records deleted while the migration looked at them."""


class Accounts(Refresher):
    """The accounts of a user's connection."""

    def store_login_tokens(
        self, connection_id: str, user_id: str, subject: str, tokens: TokenSet, *, new_link: bool
    ) -> CredentialKey:
        """Store what a login or connect of the account ``subject`` was granted: in the
        default slot when it is the user's first account of the connection or the default
        one, else in its own (``core.accounts.login_slot``). ``new_link``: the login linked
        ``subject`` to the user just now."""
        default = self.storage.get_credential(CredentialKey(connection_id, user_id))
        opened: TokenSet | None = None
        if default is not None:
            # a record no configured key opens is replaced by the login
            with contextlib.suppress(CredentialUnreadable):
                opened = self.opened.open(default)
        linked = self.legacy_linked(connection_id, user_id, opened)
        if linked is not None and new_link:
            linked = [s for s in linked if s != subject]
        extra = self.connection(connection_id).account_extra
        qualifiers = (
            qualifier_of(extra, tokens),
            qualifier_of(extra, opened) if opened is not None else None,
        )
        slot = login_slot(connection_id, subject, opened, linked, qualifiers)
        key = CredentialKey(connection_id, user_id, slot)
        self.put_tokens(key, replace(tokens, subject=subject))
        return key

    def accounts(self, connection_id: str, user_id: str) -> list[AccountRecord]:
        """The user's accounts of ``connection_id``: the default first."""
        self.connection(connection_id)
        records = [
            r
            for r in self.storage.list_credentials(user_id)
            if r.key.connection_id == connection_id
        ]
        return self._accounts_of(connection_id, user_id, records)

    def _accounts_of(
        self, connection_id: str, user_id: str, records: list[StoredCredential]
    ) -> list[AccountRecord]:
        opened = self._opened_all(records)
        default = opened.get(CredentialKey(connection_id, user_id))
        linked = self.legacy_linked(connection_id, user_id, default)
        extra = self.connection(connection_id).account_extra
        return list_accounts(connection_id, user_id, records, opened, linked, extra)

    def set_default_account(self, connection_id: str, user_id: str, account: str) -> None:
        """Make ``account`` the user's default account of ``connection_id`` (reads without
        an account then get it). Under the leases of both slots: no refresh of either runs
        while their token sets change places, each sealed again for its new slot."""
        self.connection(connection_id)
        target = self.locate_account(connection_id, user_id, account)
        if target.key.account == DEFAULT_SLOT:
            return  # already the default
        base = CredentialKey(connection_id, user_id)
        owner = secrets.token_hex(12)
        held: list[CredentialKey] = []
        try:
            # the account's slot, then the default slot when there is one (a lease is only
            # taken on a stored credential)
            for key in (target.key, base):
                if key is base and self.storage.get_credential(base) is None:
                    break
                taken, _ = self._wait_for_lease(key, owner, None)
                if not taken:
                    raise AccountBusy()
                held.append(key)
            default = self.storage.get_credential(base)
            moving = self.storage.get_credential(target.key)
            if moving is None:
                raise CredentialNotFound("no such account")
            if default is None:  # no default left (a removal was interrupted): just move
                self._move(moving, base, 0)
            else:
                # the previous default to its own slot (over a copy an interrupted change
                # may have left there), then the account into the default slot
                parked = CredentialKey(connection_id, user_id, self.default_account_id(default))
                stale = self.storage.get_credential(parked)
                self._move(default, parked, stale.version if stale else 0)
                self._move(moving, base, default.version)
            self.storage.delete_credential(target.key)
        finally:
            for key in held:
                self.storage.release_lease(key, owner)
        logger.info("default account changed connection=%s user=%s", connection_id, user_id)
        self._audit(
            f"user:{user_id}", "accounts.default", "ok", connection_id, user_id, urgent=True
        )

    def _move(self, record: StoredCredential, to: CredentialKey, version: int) -> None:
        """Write ``record``'s token set, sealed again, to slot ``to`` (stored there now at
        ``version``; 0: empty)."""
        tokens = self.opened.open(record)
        moved = seal_record(self.sealer, to, tokens, now=self.clock())
        if not self.storage.save_credential(moved, version):
            raise StorageUnavailable("the account could not be moved: changed meanwhile")

    def promote_next_account(self, connection_id: str, user_id: str) -> str | None:
        """After the default account was removed: make the account linked first of the
        others the default (its id), or ``None`` when none is left."""
        remaining = self.accounts(connection_id, user_id)
        others = [a for a in remaining if not a.default and a.tokens is not None]
        if not others or any(a.default for a in remaining):
            return None
        chosen = others[0]
        self.set_default_account(connection_id, user_id, chosen.account_id)
        return chosen.account_id

    def migrate_accounts(
        self,
        *,
        batch: int = 500,
    ) -> AccountMigration:
        """Give every default record stored before accounts existed its account's subject
        (sealed in its token set), so that its account id no longer depends on the user's
        linked subjects. Resumable and idempotent; runs while the previous release keeps
        reading and refreshing: each record is rewritten under its refresh lease, compare
        and set, and a release that does not know the subject reads the record as before
        (the field is ignored; its refreshes drop it, and a later run sets it again).
        The async vault takes ``concurrency``: records of a page migrated at once (each
        is its own steps on its own lease; on a network store the round trips overlap)."""
        report = AccountMigration()
        after: CredentialKey | None = None
        while True:
            page = self.storage.scan_credentials(after=after, limit=batch)
            if not page:
                return report
            after = page[-1].key
            todo = [r for r in page if r.key.account == DEFAULT_SLOT]
            report.scanned += len(page)
            report.already += len(page) - len(todo)
            outcomes = [self._migrate_one(record) for record in todo]
            for outcome in outcomes:
                setattr(report, outcome, getattr(report, outcome) + 1)

    def _migrate_one(self, record: StoredCredential) -> str:
        key = record.key
        try:
            legacy = self.opened.open(record)
        except CredentialUnreadable:
            return "unreadable"
        if legacy.subject is not None:
            return "already"
        linked = self.legacy_linked(key.connection_id, key.user_id, legacy)
        if not linked:
            return "unlinked"
        if len(linked) > 1:
            return "ambiguous"
        lease = _Lease(secrets.token_hex(12), 0.0, False)
        taken, _, read = self._take_lease(key, lease, None)
        if not taken:
            return "busy"
        try:
            current = read if read is not UNREAD else self.storage.get_credential(key)
            for _ in range(3):
                if not isinstance(current, StoredCredential):
                    return "gone"  # deleted meanwhile
                tokens = self.opened.open(current)
                if tokens.subject is not None:
                    return "already"  # a login of this release named it meanwhile
                if self._refresh_due(tokens):
                    return "due"
                named = replace(tokens, subject=linked[0])
                sealed = seal_record(self.sealer, key, named, now=self.clock())
                # Under the lease no refresh writes; a login (which takes none) can, and
                # then this write misses: look again at what it stored.
                if self.storage.save_credential(sealed, current.version):
                    return "migrated"
                current = self.storage.get_credential(key)
            return "busy"
        finally:
            if lease.held:
                self.storage.release_lease(key, lease.owner)

    def _refresh_due(self, tokens: TokenSet) -> bool:
        """Whether a reader may be waiting to refresh this token right now: it expires
        within :data:`DUE_MARGIN` or expired less than :data:`DORMANT_AFTER` ago. The
        previous release takes any write under the lease for a refresh (this one compares
        the tokens: ``core.refresh.same_grant``) and would then serve the expired token's
        503, so the migration leaves these for a later run."""
        if tokens.expires_at is None:
            return False
        now = self.clock()
        return now - DORMANT_AFTER < tokens.expires_at <= now + DUE_MARGIN
