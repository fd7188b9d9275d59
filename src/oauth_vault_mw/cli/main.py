"""``oauth-vault``: the operator's command line. Reads the same ``OAUTH_VAULT_*`` environment.

Exit status 0 on success; 1 with one line on stderr otherwise. Never prints a token, a
refresh token, a client secret or a key (key ids only). Progress goes to stderr, results to
stdout::

    oauth-vault db init | db upgrade
    oauth-vault db prune [--batch 1000]
    oauth-vault keys rotate [--batch 500]
    oauth-vault credentials refresh --expiring-within 10m [--concurrency 8] [--connection ID]
    oauth-vault credentials show CONNECTION USER
    oauth-vault clients create NAME --grant PATTERN:ACTION | list | revoke NAME
    oauth-vault clients add-key NAME | revoke-key NAME KEY_ID
    oauth-vault audit [--since 1h]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import NoReturn

from .._async.audit import AsyncAuditTrail
from .._async.vault import AsyncVault
from ..core.config import Settings
from ..core.crypto import Sealer
from ..core.errors import VaultError
from ..core.model import CredentialKey
from ..core.records import open_record
from ..jobs import (
    DEFAULT_BATCH,
    DEFAULT_CONCURRENCY,
    RotationReport,
    SweepReport,
    count_credentials,
    count_expiring,
    rotate_keys,
    sweep,
)
from ..storage import purge_expired, storage_from_url
from .clients import COMMANDS as SERVICE_COMMANDS
from .clients import add_parsers as add_service_parsers
from .progress import ProgressBar

__all__ = ["main", "parse_duration"]

PROG = "oauth-vault"
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_MAX_DURATION = 366 * 86400
DEFAULT_PRUNE_BATCH = 1000


def parse_duration(text: str) -> float:
    """Seconds in ``30s``, ``10m``, ``2h``, ``1d`` or plain seconds (``90``, ``1.5``)."""
    found = _DURATION.match(text.strip().lower())
    value = float(found.group(1)) * _UNITS[found.group(2)] if found else math.nan
    if not 0 <= value <= _MAX_DURATION:  # also NaN: no match
        raise argparse.ArgumentTypeError(
            f"invalid duration {text[:40]!r} (use 30s, 10m, 2h, 1d or seconds, up to 366d)"
        )
    return value


def _count(maximum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = 0
        if not 1 <= value <= maximum:
            raise argparse.ArgumentTypeError(
                f"{text[:40]!r} is not a whole number from 1 to {maximum}"
            )
        return value

    return parse


class _Parser(argparse.ArgumentParser):
    """Usage errors are one line on stderr and exit status 1, as every other failure."""

    def error(self, message: str) -> NoReturn:
        self.exit(1, f"{PROG}: {' '.join(message.split())}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log what the vault does (stderr)"
    )
    groups = parser.add_subparsers(
        dest="group", required=True, metavar="{db,keys,credentials,clients,audit}"
    )

    db = groups.add_parser("db", help="storage schema").add_subparsers(dest="cmd", required=True)
    db.add_parser("init", help="create the schema (idempotent)")
    db.add_parser("upgrade", help="upgrade the schema to this version (idempotent)")
    prune = db.add_parser(
        "prune",
        help="delete expired sessions and login states, in batches",
        description="Delete expired sessions and expired login states (rows of releases "
        "that kept logins in flight in storage), at most --batch rows per statement, "
        "until none is left; report the counts. The vault also does this in small batches "
        "after logins; run it from cron, or after a long pause. Redis expires these keys "
        "itself (TTL): nothing to do there.",
    )
    prune.add_argument(
        "--batch",
        type=_count(100_000),
        default=DEFAULT_PRUNE_BATCH,
        help=f"rows per delete statement (default {DEFAULT_PRUNE_BATCH})",
    )

    keys = groups.add_parser("keys", help="encryption keys").add_subparsers(
        dest="cmd", required=True
    )
    rotate = keys.add_parser(
        "rotate",
        help="re-seal every credential with the first key of OAUTH_VAULT_ENCRYPTION_KEYS",
        description="Re-seal every credential sealed with an older key with the first key of "
        "OAUTH_VAULT_ENCRYPTION_KEYS. Resumable: a rerun skips what is done. Afterwards the "
        "older keys can be removed from the settings.",
    )
    rotate.add_argument(
        "--batch",
        type=_count(10_000),
        default=DEFAULT_BATCH,
        help=f"records per storage page (default {DEFAULT_BATCH})",
    )
    rotate.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")

    creds = groups.add_parser("credentials", help="stored credentials").add_subparsers(
        dest="cmd", required=True
    )
    refresh = creds.add_parser(
        "refresh",
        help="refresh every credential that expires soon (proactive sweep)",
        description="Refresh every active credential that expires within the window, with the "
        "vault's own refresh (leases, rotation, invalid_grant marking), N at a time.",
    )
    refresh.add_argument(
        "--expiring-within",
        required=True,
        type=parse_duration,
        metavar="DURATION",
        help="window: 30s, 10m, 2h, 1d or seconds",
    )
    refresh.add_argument(
        "--concurrency",
        type=_count(256),
        default=DEFAULT_CONCURRENCY,
        help=f"refreshes in flight at once (default {DEFAULT_CONCURRENCY})",
    )
    refresh.add_argument("--connection", metavar="ID", help="only this connection")
    refresh.add_argument(
        "--batch",
        type=_count(10_000),
        default=DEFAULT_BATCH,
        help=f"records per storage page (default {DEFAULT_BATCH})",
    )
    refresh.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    show = creds.add_parser("show", help="status, expiry and scopes of one credential")
    show.add_argument("connection")
    show.add_argument("user")
    add_service_parsers(groups, parse_duration)
    return parser


def _fail(message: str) -> int:
    print(f"{PROG}: {' '.join(message.split())}", file=sys.stderr)
    return 1


# -- db -------------------------------------------------------------------------------------


def _db(args: argparse.Namespace, settings: Settings) -> int:
    storage = storage_from_url(settings.storage_url)
    try:
        storage.setup()
    finally:
        storage.close()
    print(f"schema ready ({settings.storage_url.split('://', 1)[0]})")
    return 0


def _db_prune(args: argparse.Namespace, settings: Settings) -> int:
    storage = storage_from_url(settings.storage_url)
    sessions = states = 0
    try:
        now = time.time()
        while True:
            batch = purge_expired(storage, now, args.batch)
            if batch is None:
                print("nothing to prune: this storage expires sessions and login states itself")
                return 0
            sessions += batch.sessions
            states += batch.login_states
            if batch.sessions < args.batch and batch.login_states < args.batch:
                break
    finally:
        storage.close()
    print(f"pruned {sessions} expired sessions, {states} expired login states")
    return 0


# -- keys rotate ----------------------------------------------------------------------------


def _keys_rotate(args: argparse.Namespace, settings: Settings) -> int:
    storage = storage_from_url(settings.storage_url)
    bar = ProgressBar("keys rotate", enabled=not args.quiet)
    try:
        total = 0 if args.quiet else count_credentials(storage, batch=args.batch)
        report = rotate_keys(
            storage,
            settings.encryption_keys,
            batch=args.batch,
            lease_ttl=settings.lease_ttl,
            total=total,
            progress=bar,
        )
    finally:
        bar.close()
        storage.close()
    print(
        f"resealed {report.resealed}, already current {report.current}, "
        f"unreadable {report.unreadable}"
    )
    return _fail(_unreadable_message(report)) if report.unreadable else 0


def _unreadable_message(report: RotationReport) -> str:
    causes = []
    if report.missing_kids:
        kids = ", ".join(f"{kid} ({n})" for kid, n in sorted(report.missing_kids.items()))
        causes.append(f"sealed with key ids not in OAUTH_VAULT_ENCRYPTION_KEYS: {kids}")
    if report.damaged:
        causes.append(f"{report.damaged} failed the integrity check")
    hint = (
        "; add the missing keys back (after the current one) and rerun"
        if report.missing_kids
        else ""
    )
    return f"{report.unreadable} credentials unreadable: {'; '.join(causes)}{hint}"


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


def _credentials_refresh(args: argparse.Namespace, settings: Settings) -> int:
    if args.connection is not None and settings.connection(args.connection) is None:
        return _fail(f"--connection: no connection {args.connection[:64]!r} in the settings")
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
        causes.append(f"connections not in OAUTH_VAULT_CONNECTIONS: {names}")
    return _fail(f"{report.failed} credentials failed: {'; '.join(causes)}")


# -- credentials show -----------------------------------------------------------------------


def _iso(at: float | None, otherwise: str) -> str:
    """An epoch time as ISO 8601 UTC, or ``otherwise``."""
    return otherwise if at is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


def _credentials_show(args: argparse.Namespace, settings: Settings) -> int:
    storage = storage_from_url(settings.storage_url)
    try:
        key = CredentialKey(args.connection, args.user)
        record = storage.get_credential(key)
        if record is None:
            raise VaultError("no credential for this connection and user")
        tokens = open_record(Sealer(settings.encryption_keys), record)
    finally:
        storage.close()
    expires = _iso(tokens.expires_at, "never")
    print(
        "\n".join(
            [
                f"connection: {key.connection_id}",
                f"user: {key.user_id}",
                f"status: {tokens.status}",
                f"expires_at: {expires}",
                f"scope: {tokens.scope or ''}",
                f"refreshable: {'yes' if tokens.refresh_token else 'no'}",
                f"reauthenticate_at: {_iso(tokens.refresh_expires_at, 'unknown')}",
                f"version: {record.version}",
                f"sealed_with: {record.sealed.split('.', 2)[1]}",
            ]
        )
    )
    return 0


_COMMANDS: dict[tuple[str, str], Callable[[argparse.Namespace, Settings], int]] = {
    ("db", "init"): _db,
    ("db", "upgrade"): _db,
    ("db", "prune"): _db_prune,
    ("keys", "rotate"): _keys_rotate,
    ("credentials", "refresh"): _credentials_refresh,
    ("credentials", "show"): _credentials_show,
    **SERVICE_COMMANDS,
}


@contextlib.contextmanager
def _logging(verbose: bool) -> Iterator[None]:
    """The vault's log lines go to stderr with ``-v`` only; otherwise stderr stays one line."""
    logger = logging.getLogger("oauth_vault_mw")
    saved = (logger.level, logger.propagate)
    handler: logging.Handler = logging.NullHandler()
    if verbose:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.setLevel(logging.INFO)
    else:
        logger.propagate = False
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    with _logging(args.verbose):
        try:
            return _COMMANDS[(args.group, args.cmd)](args, Settings.from_env())
        except VaultError as exc:
            return _fail(exc.description)
        except KeyboardInterrupt:
            return _fail("interrupted; run the same command again to continue")
        except Exception as exc:
            if args.verbose:
                raise
            return _fail(f"unexpected {type(exc).__name__}; rerun with -v for the traceback")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
