# Generated from _async/refresh.py by scripts/unasync.py: do not edit.
"""Credentials and their refresh (sync): the I/O around ``core/refresh.py``.

A read opens the stored record and asks :func:`~oauth_vault_mw.core.refresh.decide`. Only a
``refresh`` verdict leads here to the provider, in this order:

1. the in-process single flight: one refresh per credential in this process;
2. the backoff: a credential whose provider failed lately gets :func:`fallback` at once;
3. the cross-process lease in storage (``acquire_lease``), waited for as
   :func:`lease_pauses` says; then the record is read again, and :func:`under_lease` decides
   on what is stored now (another process may have refreshed meanwhile);
4. the token endpoint, the lease renewed before each attempt (:func:`lease_renewal_due`:
   the acquisition itself counts for an attempt that follows at once), pausing as
   :func:`retry_pause` says;
5. :func:`after_response`: store the new tokens with compare-and-set, mark the credential
   ``reauthentication_required``, or back off and answer with :func:`fallback`. Where the
   storage offers ``save_credential_releasing``, the new tokens' write lets go of the lease
   in the same step.

Where the storage offers :class:`~oauth_vault_mw.storage.LeaseBatches` (SQLite and memory,
through the adapter), the lease is taken with the record read in the same step, and the
lease steps of concurrent refreshes (a sweep's, a burst of requests') go to storage together
(:class:`~oauth_vault_mw._group_commit.AsyncGroupCommit`): one worker-thread hop and one
transaction for many refreshes instead of three steps each.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..core.accounts import DEFAULT_SLOT
from ..core.errors import (
    CredentialNotFound,
    CredentialUnreadable,
    ReauthenticationRequired,
    StorageUnavailable,
    VaultError,
)
from ..core.hooks import ReauthenticationEvent
from ..core.http import ProviderCallFailed
from ..core.model import (
    REAUTHENTICATION_REQUIRED,
    CredentialKey,
    Credentials,
    StoredCredential,
    TokenSet,
)
from ..core.records import open_record, seal_record
from ..core.refresh import (
    LEASE_MISSED_RETRY_AFTER,
    RefreshOutcome,
    after_response,
    decide,
    failure_reason,
    fallback,
    lease_pauses,
    lease_renewal_due,
    retry_budget,
    retry_pause,
    same_grant,
    still_forced,
    store_retry_pause,
    sweep_result,
    sweep_start,
    under_lease,
)
from ..core.scopes import insufficient_scope, missing_scopes
from ..core.token_requests import (
    refresh_request,
)
from ..core.tokens import (
    TokenGranted,
    TokenOutcome,
    TokenRejected,
    TokenRetryable,
)
from ..metrics import Step
from .base import VaultBase

__all__ = ["UNREAD", "Refresher"]

logger = logging.getLogger("oauth_vault_mw")

UNREAD = object()
"""``_credentials``' record argument when the record is still to be read."""


@dataclass
class _Lease:
    """The lease one refresh holds: its owner token, when it ends at the latest
    (``time.monotonic()``, counted from before the write that took or renewed it), and
    whether it is still to be released."""

    owner: str
    until: float
    held: bool


class _LeaseBatches:
    """A storage's :class:`~oauth_vault_mw.storage.LeaseBatches` steps, those of concurrent
    refreshes grouped into one call (async; in the sync shell each thread's step is a batch
    of one: the lease still comes with the record read under it)."""

    def __init__(self, storage: Any, vault: VaultBase) -> None:
        self.storage = storage
        self._vault = vault

    def _take_many(
        self, leases: Sequence[tuple[CredentialKey, str]]
    ) -> list[StoredCredential | None]:
        vault = self._vault
        found: list[StoredCredential | None] = self.storage.acquire_leases_reading(
            leases, vault.settings.lease_ttl, vault.clock()
        )
        return found

    def take(self, key: CredentialKey, owner: str) -> StoredCredential | None:
        """The lease (``settings.lease_ttl``): the record read under it, or None: not taken."""
        return self._take_many([(key, owner)])[0]

    def save(self, record: StoredCredential, version: int, owner: str) -> bool:
        """``save_credential_releasing``, grouped."""
        one = [(record, version, owner)]
        return bool(self.storage.save_credentials_releasing(one)[0])


class Refresher(VaultBase):
    """Reads credentials and refreshes them: one refresh per credential at a time, across
    the tasks of this process (single flight) and across processes (the storage lease)."""

    def get_connection_credentials(
        self,
        connection_id: str,
        user_id: str,
        *,
        min_validity: float | None = None,
        force_refresh: bool = False,
        actor: str = "app",
        scopes: Iterable[str] | None = None,
        account: str | None = None,
    ) -> Credentials:
        """A token valid for ``min_validity`` seconds, refreshed once however many ask.

        ``force_refresh=True`` asks for a token other than the stored one (after the
        provider answered 401 to it). ``actor`` names the reader in the audit trail
        (``user:<id>``, ``client:<name>/<key id>``; default ``app``: the host's own code).
        ``scopes``: the scopes the caller needs; where the stored grant lacks one,
        :class:`InsufficientScope` (403, with a ``login_url`` asking for more), checked
        before any refresh (a refresh cannot add scopes).
        Raises :class:`ReauthenticationRequired`, :class:`ProviderUnavailable`,
        :class:`CredentialNotFound`, :class:`UnknownConnection`, :class:`InsufficientScope`.
        ``account``: one of the user's accounts of the connection by its id (``/me`` lists
        them); ``None``: the user's default account.
        """
        if account is not None:
            return self.account_credentials(
                connection_id, user_id, account, min_validity, force_refresh, actor, scopes
            )
        return self._credentials(
            connection_id, user_id, min_validity, force_refresh, actor, UNREAD, scopes
        )

    def account_credentials(
        self,
        connection_id: str,
        user_id: str,
        account: str,
        min_validity: float | None,
        force_refresh: bool,
        actor: str,
        scopes: Iterable[str] | None,
    ) -> Credentials:
        """:meth:`get_connection_credentials` of one account by its id: two reads (the
        default slot's record says whether it is the default account). Located again once
        when the account's record went away meanwhile (the default changed under it)."""
        for attempt in (1, 2):
            try:
                self.connection(connection_id)
                record = self.locate_account(connection_id, user_id, account)
            except VaultError as exc:
                self._audit(actor, "credentials.read", exc.error, connection_id, user_id)
                raise
            try:
                return self._credentials(
                    connection_id,
                    user_id,
                    min_validity,
                    force_refresh,
                    actor,
                    record,
                    scopes,
                    slot=record.key.account,
                    account=account,
                )
            except CredentialNotFound:
                if attempt == 2 or record.key.account == DEFAULT_SLOT:
                    raise
        raise AssertionError("unreachable")

    def _credentials(
        self,
        connection_id: str,
        user_id: str,
        min_validity: float | None,
        force_refresh: bool,
        actor: str,
        fetched: object,
        scopes: Iterable[str] | None = None,
        *,
        slot: str = DEFAULT_SLOT,
        account: str | None = None,
    ) -> Credentials:
        """:meth:`get_connection_credentials`, with the record already read (``fetched``:
        the row or ``None``) or ``UNREAD``; ``slot``: where the account lives (``account``:
        its id, when asked for by id)."""
        try:
            conn = self.connection(connection_id)
            wanted = conn.min_validity if min_validity is None else min_validity
            if fetched is UNREAD:
                fetched = self.storage.get_credential(CredentialKey(connection_id, user_id, slot))
            if not isinstance(fetched, StoredCredential):
                raise CredentialNotFound()
            record = fetched
            key = record.key  # the one read: (connection_id, user_id, slot)
            tokens = self.opened.open(record)
            # Before any refresh (a refresh cannot add scopes); one C-level set check when
            # every scope is granted by name.
            if scopes is not None and not tokens.granted_scopes.issuperset(scopes):
                missing = missing_scopes(conn, tokens, scopes)
                if missing:
                    base = f"{self.settings.base_url}{self.settings.prefix}"
                    named = account if slot != DEFAULT_SLOT else None
                    raise insufficient_scope(base, conn, tokens, missing, named)
            verdict = decide(tokens, now=self.clock(), min_validity=wanted, force=force_refresh)
            if verdict == "refresh":
                tokens = self._flight.run(
                    key, lambda: self._refresh(key, record, wanted, force_refresh)
                )
            elif verdict != "use":
                raise ReauthenticationRequired(login_url=self.settings.login_url(connection_id))
        except VaultError as exc:
            self._audit(actor, "credentials.read", exc.error, connection_id, user_id)
            raise
        audit = self.audit  # the cheap path: count the read, write later
        if audit is not None and audit.count(
            self.clock(), actor, "credentials.read", "ok", connection_id, user_id
        ):
            audit.flush_soon()
        return Credentials.from_tokens(key, tokens)

    def refresh_if_expiring(
        self,
        connection_id: str,
        user_id: str,
        *,
        within: float,
        record: StoredCredential | None = None,
    ) -> RefreshOutcome:
        """Refresh a credential that expires within ``within`` seconds; say how it went.

        The proactive sweep (``oauth-vault credentials refresh``, :func:`oauth_vault_mw.jobs.sweep`)
        calls it for each credential that ``scan_credentials(expiring_before=...)`` finds,
        passing the scanned ``record`` (saves reading it again: what is stored once the lease
        is held decides, so a record changed since the scan is never overwritten).
        It uses the request path's machinery (single flight, the cross-process lease,
        rotation, ``invalid_grant`` marking, backoff) but refreshes whatever expires within
        ``within``, without the half-life rule, and never raises a :class:`VaultError`:

        - ``"refreshed"``: the credential now holds a new token (from here or a concurrent
          refresh);
        - ``"fresh"``: nothing to do (valid for longer, never expires, or deleted meanwhile);
        - ``"reauthentication_required"``: the provider refused the grant (now marked), it
          was marked already, or the token expires within ``within`` and has no refresh token;
        - ``"failed"``: provider or storage unavailable, or any other :class:`VaultError`
          (the credential is unchanged; the next request or sweep tries again).
        """
        try:
            self.connection(connection_id)
            key = CredentialKey(connection_id, user_id)
            if record is not None and record.key.parts()[:2] == key.parts()[:2]:
                key = record.key  # any of the user's accounts (the scan lists every slot)
            else:
                record = self.storage.get_credential(key)
            if record is None:
                return "fresh"
            if key.account != DEFAULT_SLOT and self.default_record_of(*key.parts()):
                # a copy of the default account (whose record in the default slot is the
                # one read and refreshed), left by an interrupted change of default
                return "fresh"
            seen = record
            tokens = self.opened.open(seen)
            start = sweep_start(tokens, now=self.clock(), within=within)
            if start != "refresh":
                return start
            fresh = self._flight.run(
                key,
                lambda: self._refresh(key, seen, within, False, half_life=False),
            )
        except ReauthenticationRequired:
            return "reauthentication_required"
        except CredentialNotFound:
            return "fresh"
        except VaultError as exc:
            logger.warning(
                "sweep: refresh failed connection=%s user=%s error=%s",
                connection_id,
                user_id,
                exc.error,
            )
            return "failed"
        return sweep_result(tokens, fresh)

    def _refresh(
        self,
        key: CredentialKey,
        seen: StoredCredential,
        min_validity: float,
        force: bool,
        *,
        half_life: bool = True,
    ) -> TokenSet:
        """Refresh under the credential's lease; one refresh across processes. A record
        opened before (``seen``, or the re-read when unchanged) is not decrypted again.
        One step of the metrics: timed, and noted with how it ended (``REFRESH_OUTCOMES``)."""
        with self.metrics.refresh(key.connection_id) as step:
            return self._refresh_leased(key, seen, min_validity, force, half_life, step)

    def _refresh_leased(
        self,
        key: CredentialKey,
        seen: StoredCredential,
        min_validity: float,
        force: bool,
        half_life: bool,
        step: Step,
    ) -> TokenSet:
        now = self.clock()
        blocked = self._backoff.blocked_for(key, now)
        if blocked > 0:
            step.note("backoff")
            return fallback(self.opened.open(seen), now=now, retry_after=blocked)
        lease = _Lease(secrets.token_hex(12), 0.0, False)
        leased, waited, read = self._take_lease(key, lease, seen)
        try:
            # Read under the lease (with it, where the storage can): another process may
            # have refreshed meanwhile.
            record = read if read is not UNREAD else self.storage.get_credential(key)
            if not isinstance(record, StoredCredential):
                raise CredentialNotFound()
            tokens = self.opened.open(record)
            now = self.clock()
            forced = still_forced(
                force,
                seen_version=seen.version,
                current_version=record.version,
                same_tokens=same_grant(tokens, self.opened.open(seen)),
            )
            verdict = under_lease(
                tokens,
                now=now,
                min_validity=min_validity,
                force=forced,
                half_life=half_life,
                leased=leased,
                holder_failed=waited and record.version == seen.version,
            )
            if verdict == "use":
                step.note("superseded")
                return tokens
            if verdict == "reauthenticate":
                step.note("reauthentication_required")
                raise ReauthenticationRequired(login_url=self.settings.login_url(key.connection_id))
            if verdict in ("lease_missed", "holder_failed"):
                step.note("lease_missed")
                return fallback(tokens, now=now, retry_after=LEASE_MISSED_RETRY_AFTER)
            return self._call_provider(key, record, tokens, lease, step)
        finally:
            if lease.held:
                self.storage.release_lease(key, lease.owner)

    def _wait_for_lease(
        self, key: CredentialKey, owner: str, seen: StoredCredential | None
    ) -> tuple[bool, bool]:
        """Take the lease, or give up once time is up or, when ``seen`` is given, once another
        holder has written a version other than ``seen``. Returns (taken, after waiting for
        another holder)."""
        taken, waited, _ = self._take_lease(key, _Lease(owner, 0.0, False), seen)
        return taken, waited

    def _lease_batches(self) -> _LeaseBatches | None:
        """The storage's grouped lease steps, when it offers them (``LeaseBatches``)."""
        storage = self.storage
        batches: _LeaseBatches | None = self.__dict__.get("_batches")
        if batches is None or batches.storage is not storage:
            if getattr(storage, "acquire_leases_reading", None) is None:
                return None
            batches = self.__dict__["_batches"] = _LeaseBatches(storage, self)
        return batches

    def _take_lease(
        self, key: CredentialKey, lease: _Lease, seen: StoredCredential | None
    ) -> tuple[bool, bool, object]:
        """:meth:`_wait_for_lease`, noting in ``lease`` when a lease taken ends; also the
        record as read with the lease where the storage reads it in the same step (else
        ``UNREAD``)."""
        ttl = self.settings.lease_ttl
        budget, pauses = lease_pauses(ttl)
        started = time.monotonic()
        deadline = started + budget
        waited = False
        batches = self._lease_batches()
        for pause in pauses:
            asked = time.monotonic()
            read: object
            if batches is not None:
                read = batches.take(key, lease.owner)
                taken = read is not None
            else:
                read = UNREAD
                taken = self.storage.acquire_lease(key, lease.owner, ttl, self.clock())
            if taken:
                lease.until, lease.held = asked + ttl, True
                if waited:
                    self._lease_waited(key, "acquired", started)
                return True, waited, read
            if time.monotonic() >= deadline:
                self._lease_waited(key, "timed_out", started)
                return False, True, UNREAD
            waited = True
            time.sleep(pause)
            if seen is None:
                continue
            current = self.storage.get_credential(key)
            if current is None or (
                current.version != seen.version and not self._same_tokens(current, seen)
            ):
                self._lease_waited(key, "superseded", started)
                return False, True, UNREAD
            # the same tokens sealed again or annotated (key rotation, the accounts
            # migration): not a refresh; the lease is let go at once, keep waiting
        return False, True, UNREAD  # pragma: no cover - lease_pauses never ends

    def _same_tokens(self, current: StoredCredential, seen: StoredCredential) -> bool:
        try:
            return same_grant(self.opened.open(current), self.opened.open(seen))
        except CredentialUnreadable:
            return False

    def _lease_waited(self, key: CredentialKey, outcome: str, started: float) -> None:
        self.metrics.lease_waited(key.connection_id, outcome, time.monotonic() - started)

    def _call_provider(
        self,
        key: CredentialKey,
        record: StoredCredential,
        tokens: TokenSet,
        lease: _Lease,
        step: Step,
    ) -> TokenSet:
        conn = self.connection(key.connection_id)
        assert tokens.refresh_token is not None
        outcome = self._ask_token_endpoint(key, tokens, tokens.refresh_token, lease)
        now = self.clock()
        verdict = after_response(outcome)
        if verdict == "store":
            assert isinstance(outcome, TokenGranted)
            self._backoff.succeeded(key)
            stored = self._store_refreshed(key, record, outcome.tokens, lease)
            step.note("refreshed")
            return stored
        if verdict == "reauthenticate":
            reason = outcome.error if isinstance(outcome, TokenRejected) else "invalid_grant"
            newer = self._mark_reauthentication(key, record, tokens, reason)
            if newer is not None:
                step.note("superseded")
                return newer
            step.note("reauthentication_required")
            raise ReauthenticationRequired(login_url=self.settings.login_url(conn.id))
        delay = self._backoff.failed(key, now)
        logger.warning(
            "refresh failed connection=%s user=%s reason=%s",
            conn.id,
            key.user_id,
            failure_reason(outcome),
        )
        self._audit("system", "credentials.refresh", "failed", *key.parts()[:2])
        step.note("failed")
        return fallback(tokens, now=now, retry_after=delay)

    def _ask_token_endpoint(
        self, key: CredentialKey, tokens: TokenSet, refresh_token: str, lease: _Lease
    ) -> TokenOutcome:
        """The refresh grant, retried on retryable outcomes within the retry budget; the
        lease renewed before each attempt (``lease.until``: when the last renewal ends)."""
        conn = self.connection(key.connection_id)
        endpoints = self.provider.endpoints(conn)
        url = conn.refresh_url or endpoints.token_url  # Figma refreshes at a URL of its own
        redirect_uri = self.settings.redirect_uri(conn.id) if conn.refresh_redirect_uri else None
        request = refresh_request(
            conn,
            url,
            refresh_token,
            redirect_uri=redirect_uri,
            now=self.clock(),
            signer=self.client_signer,
        )
        deadline = time.monotonic() + retry_budget(self.settings.provider_timeout)
        attempts = self.settings.refresh_attempts
        outcome: TokenOutcome = TokenRetryable("not attempted")
        ttl = self.settings.lease_ttl
        for attempt in range(attempts):
            # Renew the lease before each call: a refresh slowed past its lease must not
            # send the refresh token again once another process may hold the lease. One
            # taken a moment ago (before the first attempt) needs no second write.
            renewed = time.monotonic()
            if lease_renewal_due(attempt, lease.until, now=renewed, ttl=ttl):
                if not self.storage.acquire_lease(key, lease.owner, ttl, self.clock()):
                    return TokenRetryable("lease lost")
                lease.until = renewed + ttl
            try:
                resp = self.provider.send(request, connection_id=conn.id, operation="refresh")
            except ProviderCallFailed as exc:
                outcome = TokenRetryable(str(exc))
            else:
                outcome = self._token_outcome(conn, resp, tokens)
            if not isinstance(outcome, TokenRetryable):
                return outcome
            pause = retry_pause(attempt, attempts=attempts, remaining=deadline - time.monotonic())
            if pause is None:
                return outcome
            logger.info("refresh retry connection=%s reason=%s", conn.id, outcome.reason)
            time.sleep(pause)
        return outcome

    def _store_refreshed(
        self, key: CredentialKey, record: StoredCredential, fresh: TokenSet, lease: _Lease
    ) -> TokenSet:
        sealed = seal_record(self.sealer, key, fresh, now=self.clock())
        if self._save_while_leased(sealed, record.version, lease):
            logger.info(
                "credential refreshed connection=%s user=%s", key.connection_id, key.user_id
            )
            self._audit("system", "credentials.refresh", "ok", *key.parts()[:2])
            return fresh
        # Someone wrote in between (a new login): theirs is newer than ours.
        current = self.storage.get_credential(key)
        if current is None:
            raise CredentialNotFound()
        return open_record(self.sealer, current)

    def _save_while_leased(self, sealed: StoredCredential, version: int, lease: _Lease) -> bool:
        """Write refreshed tokens, releasing the lease in the same step where the storage
        can (``save_credential_releasing``); while the store is down, keep them (sealed, here)
        and try again as :func:`store_retry_pause` says, until the lease is about to end."""
        batches = self._lease_batches()
        releasing = getattr(self.storage, "save_credential_releasing", None)
        attempt = 0
        while True:
            try:
                saved: bool
                if batches is not None:
                    saved = batches.save(sealed, version, lease.owner)
                elif releasing is None:
                    return self.storage.save_credential(sealed, version)
                else:
                    saved = releasing(sealed, version, lease.owner)
                lease.held = lease.held and not saved
                return saved
            except StorageUnavailable as exc:
                pause = store_retry_pause(attempt, lease_left=lease.until - time.monotonic())
                key = sealed.key
                if pause is None:
                    logger.error(
                        "refreshed tokens could not be stored before the lease ended "
                        "connection=%s user=%s error=%s: if the provider rotates refresh "
                        "tokens, the user must log in again",
                        key.connection_id,
                        key.user_id,
                        exc.error,
                    )
                    raise
                if attempt == 0:
                    logger.warning(
                        "storage unavailable while storing refreshed tokens connection=%s "
                        "user=%s: retrying while the lease lasts",
                        key.connection_id,
                        key.user_id,
                    )
                attempt += 1
                time.sleep(pause)

    def _mark_reauthentication(
        self, key: CredentialKey, record: StoredCredential, tokens: TokenSet, reason: str
    ) -> TokenSet | None:
        """The provider refused the refresh token: mark the credential, unless another process
        stored a newer version meanwhile (a new login, whose grant made the old token invalid):
        that one is returned, to be served instead of asking the user to log in again."""
        marked = seal_record(
            self.sealer, key, tokens.with_status(REAUTHENTICATION_REQUIRED), now=self.clock()
        )
        if not self.storage.save_credential(marked, record.version):
            current = self.storage.get_credential(key)
            if current is None:
                raise CredentialNotFound()
            newer = open_record(self.sealer, current)
            if newer.status != REAUTHENTICATION_REQUIRED:
                logger.info(
                    "refresh token refused, a newer credential was stored meanwhile "
                    "connection=%s user=%s",
                    key.connection_id,
                    key.user_id,
                )
                return newer
            return None  # marked by another process already
        self.metrics.reauthentication_marked(key.connection_id)
        logger.warning(
            "refresh token refused (%s) connection=%s user=%s",
            reason,
            key.connection_id,
            key.user_id,
        )
        self._audit(
            "system",
            "credentials.refresh",
            REAUTHENTICATION_REQUIRED,
            *key.parts()[:2],
            urgent=True,
        )
        event = ReauthenticationEvent(key.user_id, key.connection_id, reason)
        hook = self.hooks.on_reauthentication_required
        self._after_hook("on_reauthentication_required", hook, event)
        return None
