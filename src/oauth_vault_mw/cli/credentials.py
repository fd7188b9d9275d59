"""``oauth-vault credentials list``, ``credentials refresh`` (the proactive sweep) and
``credentials show``.

The sweep itself is :func:`oauth_vault_mw.jobs.sweep`; here are its options, its audit trail
and its report. ``show`` prints what is known of one credential, never a token: when the
record cannot be opened (its key is gone), the copies stored in the clear and the id of the
key that sealed it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable

from .._async.audit import AsyncAuditTrail
from .._async.vault import AsyncVault
from ..core.accounts import DEFAULT_SLOT, account_param
from ..core.config import Settings
from ..core.crypto import Sealer, key_id
from ..core.errors import BadRequest, CredentialUnreadable, VaultError
from ..core.identity import check_user_id
from ..core.model import CredentialKey, StoredCredential, TokenSet
from ..core.records import open_record
from ..jobs import (
    DEFAULT_BATCH,
    DEFAULT_CONCURRENCY,
    CredentialState,
    SweepReport,
    count_expiring,
    credential_states,
    sweep,
)
from ..storage import storage_from_url
from ._args import parse_duration, whole_number
from ._words import counted, id_list, iso
from .progress import ProgressBar

__all__ = ["COMMANDS", "add_parsers", "unknown_connection"]


def add_parsers(groups: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    creds = groups.add_parser(
        "credentials",
        help="stored credentials: list them, the refresh sweep, one credential's status",
        description="Stored credentials: list them (who must log in again soon), refresh "
        "those that expire soon, or show one.",
    ).add_subparsers(dest="cmd", required=True, metavar="{list,refresh,show}")
    listing = creds.add_parser(
        "list",
        help="the stored credentials, and whose user must log in again soon (never a token)",
        description="One line per stored credential, in key order: connection, user, status, "
        "when the access token expires (the vault refreshes it before then) and "
        "login_needed_at, when the user must log in again: at once for a credential marked "
        "reauthentication_required, else when the refresh token ends where the provider "
        "said, or when the access token expires if there is no refresh token; 'unknown' "
        "when nothing known ends it. Filters combine. The last line counts them (on stderr "
        "with --json).",
    )
    listing.add_argument(
        "--status",
        choices=("active", "reauthentication_required"),
        help="only the credentials with this status",
    )
    _connection_option(listing)
    listing.add_argument(
        "--expiring-within",
        type=parse_duration,
        metavar="DURATION",
        help="only those whose user must log in again within this window (marked ones "
        "included): 30s, 10m, 2h, 7d or seconds",
    )
    listing.add_argument(
        "--json", action="store_true", help="one JSON object per line instead of columns"
    )
    refresh = creds.add_parser(
        "refresh",
        help="refresh every credential that expires soon (proactive sweep)",
        description="Refresh every active credential that expires within the window, with "
        "the vault's own refresh (leases, rotation, invalid_grant marking), N at a time. "
        "Each refresh is written to the audit trail (actor system), as the app's are. "
        "Exit status 1 when any credential failed.",
    )
    refresh.add_argument(
        "--expiring-within",
        required=True,
        type=parse_duration,
        metavar="DURATION",
        help="refresh what expires within this window: 30s, 10m, 2h, 1d or seconds",
    )
    refresh.add_argument(
        "--concurrency",
        type=whole_number(256),
        default=DEFAULT_CONCURRENCY,
        metavar="N",
        help=f"refreshes in flight at once, 1 to 256 (default {DEFAULT_CONCURRENCY})",
    )
    _connection_option(refresh)
    refresh.add_argument(
        "--batch",
        type=whole_number(10_000),
        default=DEFAULT_BATCH,
        metavar="N",
        help=f"records read per storage page, 1 to 10000 (default {DEFAULT_BATCH})",
    )
    refresh.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    show = creds.add_parser(
        "show",
        help="status, expiry and scopes of one credential (never a token)",
        description="Print one credential's status, expiry, scope, whether it can be "
        "refreshed, its version and sealed_with, the id of the key that sealed it; never a "
        "token. When that key is no longer in OAUTH_VAULT_ENCRYPTION_KEYS, it prints what "
        "is stored in the clear, with sealed_with, and exits with status 1.",
    )
    show.add_argument(
        "connection", metavar="CONNECTION", help="a connection id of OAUTH_VAULT_CONNECTIONS"
    )
    show.add_argument("user", metavar="USER", help="the user id (as the app's /auth/me shows it)")
    show.add_argument(
        "--account",
        metavar="ACCOUNT_ID",
        help="one of the user's other accounts of the connection (an account_id of /auth/me; "
        "default: the slot of the user's default account)",
    )


def _connection_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--connection",
        metavar="ID",
        help="only the credentials of this connection (an id of OAUTH_VAULT_CONNECTIONS)",
    )


def _check_connection_option(args: argparse.Namespace, settings: Settings) -> None:
    """``--connection`` names a configured connection, or is not given."""
    if args.connection is not None and settings.connection(args.connection) is None:
        raise VaultError(f"--connection: {unknown_connection(args.connection, settings)}")


def unknown_connection(connection_id: str, settings: Settings) -> str:
    """One line naming the connection asked for and the configured ones."""
    known = id_list(c.id for c in settings.connections)
    return f"no connection {connection_id[:64]!r} in OAUTH_VAULT_CONNECTIONS (known: {known})"


# -- credentials refresh --------------------------------------------------------------------


async def _sweep(settings: Settings, args: argparse.Namespace, bar: ProgressBar) -> SweepReport:
    vault = AsyncVault(settings)
    audit = AsyncAuditTrail(vault.storage)
    vault.audit = audit  # the sweep's refreshes go to the audit trail like any other
    try:
        horizon = vault.clock() + args.expiring_within
        total = 0
        if not args.quiet:
            total = await count_expiring(
                vault.storage, horizon, batch=args.batch, connection_id=args.connection
            )
        return await sweep(
            vault,
            within=args.expiring_within,
            concurrency=args.concurrency,
            batch=args.batch,
            connection_id=args.connection,
            horizon=horizon,
            total=total,
            progress=bar,
        )
    finally:
        await audit.flush()
        await vault.aclose()


def _refresh(args: argparse.Namespace, settings: Settings) -> int:
    _check_connection_option(args, settings)
    bar = ProgressBar("credentials refresh", enabled=not args.quiet)
    try:
        report = asyncio.run(_sweep(settings, args, bar))
    finally:
        bar.close()
    print(
        f"refreshed {report.refreshed}, "
        f"needs re-authentication {report.reauthentication_required}, "
        f"failed {report.failed}, skipped (already fresh) {report.fresh}"
    )
    if not report.failed:
        return 0
    causes = []
    others = report.failed - sum(report.unconfigured.values())
    if others:
        causes.append(
            f"{others} could not be refreshed (provider or storage unavailable); they keep "
            "their current tokens and the next request or sweep retries"
        )
    if report.unconfigured:
        names = ", ".join(f"{cid} ({n})" for cid, n in sorted(report.unconfigured.items()))
        unconfigured = sum(report.unconfigured.values())
        which = "a connection" if len(report.unconfigured) == 1 else "connections"
        causes.append(f"{unconfigured} of {which} not in OAUTH_VAULT_CONNECTIONS: {names}")
    raise VaultError(f"{counted(report.failed, 'credential')} failed: {'; '.join(causes)}")


# -- credentials list -----------------------------------------------------------------------


def _list(args: argparse.Namespace, settings: Settings) -> int:
    _check_connection_option(args, settings)
    storage = storage_from_url(settings.storage_url)
    shown = 0
    try:
        states = credential_states(
            storage,
            Sealer(settings.encryption_keys),
            connection_id=args.connection,
            status=args.status,
            login_needed_within=args.expiring_within,
        )
        for state in states:
            print(_list_json(state) if args.json else _list_line(state))
            shown += 1
    finally:
        storage.close()
    summary = counted(shown, "credential")
    if args.json:
        print(summary, file=sys.stderr)
    else:
        print(summary)
    return 0


def _login_needed(state: CredentialState) -> str:
    if not state.readable:
        return f"unknown (sealed with {state.sealed_with}, not openable)"
    if state.login_needed_at == 0.0:
        return "now"
    return iso(state.login_needed_at, "unknown")


def _list_line(state: CredentialState) -> str:
    return "  ".join(
        [
            state.key.connection_id,
            state.key.user_id,
            *([] if state.key.account == DEFAULT_SLOT else [f"account={state.key.account}"]),
            state.status,
            f"expires_at={iso(state.expires_at, 'never')}",
            f"login_needed_at={_login_needed(state)}",
        ]
    )


def _list_json(state: CredentialState) -> str:
    def epoch(at: float | None) -> int | None:
        return None if at is None else int(at)

    return json.dumps(
        {
            "connection_id": state.key.connection_id,
            "user_id": state.key.user_id,
            "slot": state.key.account,
            "status": state.status,
            "expires_at": epoch(state.expires_at),
            "login_needed_at": epoch(state.login_needed_at),
            "refreshable": state.refreshable,
            "readable": state.readable,
            "sealed_with": state.sealed_with,
        },
        separators=(",", ":"),
    )


# -- credentials show -----------------------------------------------------------------------


def _show(args: argparse.Namespace, settings: Settings) -> int:
    if settings.connection(args.connection) is None:
        raise VaultError(unknown_connection(args.connection, settings))
    try:
        slot = account_param(args.account) or DEFAULT_SLOT
    except BadRequest:
        raise VaultError("--account: an account id from /auth/me (a and 24 hex digits)") from None
    key = CredentialKey(args.connection, check_user_id(args.user, source="USER"), slot)
    storage = storage_from_url(settings.storage_url)
    try:
        record = storage.get_credential(key)
    finally:
        storage.close()
    if record is None:
        raise VaultError(
            f"no credential for user {key.user_id!r} of connection {key.connection_id!r}"
        )
    sealer = Sealer(settings.encryption_keys)
    sealed_with = sealer.kid_of(record.sealed) or "unknown"
    try:
        tokens: TokenSet | None = open_record(sealer, record)
    except CredentialUnreadable:
        tokens = None
    print("\n".join(_show_lines(record, tokens, sealed_with)))
    if tokens is not None:
        return 0
    configured = [key_id(k) for k in settings.encryption_keys]
    if sealed_with not in configured:
        raise VaultError(
            f"the credential cannot be opened: it is sealed with key id {sealed_with}, "
            f"not in OAUTH_VAULT_ENCRYPTION_KEYS (configured: {id_list(configured)}); "
            "add that key back after the current one"
        )
    raise VaultError(
        f"the credential cannot be opened although its key {sealed_with} is configured: it "
        "failed the integrity check (altered, or copied from another connection or user)"
    )


def _show_lines(record: StoredCredential, tokens: TokenSet | None, sealed_with: str) -> list[str]:
    """What ``show`` prints; without ``tokens`` (unreadable), the copies kept in the clear."""
    if tokens is None:
        status, expires_at, scope = record.status, record.expires_at, record.scope
        refreshable, reauthenticate_at = "unknown", "unknown"
    else:
        status, expires_at, scope = tokens.status, tokens.expires_at, tokens.scope
        refreshable = "yes" if tokens.refresh_token else "no"
        reauthenticate_at = iso(tokens.refresh_expires_at, "unknown")
    return [
        f"connection: {record.key.connection_id}",
        f"user: {record.key.user_id}",
        *([] if record.key.account == DEFAULT_SLOT else [f"account: {record.key.account}"]),
        f"status: {status}",
        f"expires_at: {iso(expires_at, 'never')}",
        f"scope: {scope or ''}",
        f"refreshable: {refreshable}",
        f"reauthenticate_at: {reauthenticate_at}",
        f"version: {record.version}",
        f"sealed_with: {sealed_with}",
    ]


COMMANDS: dict[tuple[str, str], Callable[[argparse.Namespace, Settings], int]] = {
    ("credentials", "list"): _list,
    ("credentials", "refresh"): _refresh,
    ("credentials", "show"): _show,
}
