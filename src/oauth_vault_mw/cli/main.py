"""``oauth-vault``: the operator's command line. Reads the same ``OAUTH_VAULT_*`` environment.

Exit status 0 on success; 1 with one line on stderr otherwise. Never prints a token, a
refresh token, a client secret or an encryption key; an access key only once, when it is
created (key ids otherwise). Progress goes to stderr, results to stdout::

    oauth-vault db init | db upgrade
    oauth-vault db prune [--batch 1000]
    oauth-vault db migrate-accounts [--batch 500] [--concurrency 8]
    oauth-vault keys rotate [--batch 500]
    oauth-vault credentials refresh --expiring-within 10m [--concurrency 8] [--connection ID]
    oauth-vault credentials show CONNECTION USER
    oauth-vault clients create NAME --grant PATTERN:ACTION [--grant ...] | list | revoke NAME
    oauth-vault clients add-key NAME | revoke-key NAME KEY_ID
    oauth-vault audit [--since 1h] [--limit 1000]

The help texts (``--help``) are plain text: no reST in them (``tests/cli/test_help.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import textwrap
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NoReturn

from .._async.accounts import AccountMigration
from .._async.vault import AsyncVault
from .._sync.accounts import AccountMigration as SyncAccountMigration
from .._sync.vault import Vault
from ..core.config import Settings
from ..core.errors import VaultError
from ..jobs import DEFAULT_BATCH, RotationReport, count_credentials, rotate_keys
from ..storage import purge_expired, storage_from_url
from ._args import whole_number
from ._words import counted
from .clients import COMMANDS as SERVICE_COMMANDS
from .clients import add_parsers as add_service_parsers
from .credentials import COMMANDS as CREDENTIALS_COMMANDS
from .credentials import add_parsers as add_credentials_parsers
from .progress import ProgressBar

__all__ = ["build_parser", "main"]

PROG = "oauth-vault"
DEFAULT_PRUNE_BATCH = 1000
MIGRATION_CONCURRENCY = 8
_DESCRIPTION = """\
The operator's command line of oauth-vault-mw: the storage schema, key rotation, the \
refresh sweep, service clients and the audit trail. It reads the app's settings from the \
same OAUTH_VAULT_* environment variables, and works on the app's storage.

Results go to stdout, progress to stderr. Exit status 0 on success, 1 with one line on \
stderr otherwise. No command prints a token, a client secret or an encryption key; an \
access key is printed once, when it is created. Run COMMAND --help for its options."""


class _Formatter(argparse.HelpFormatter):
    """Fills each paragraph of a description on its own; keeps lines indented by two spaces
    (examples) as they are written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        out: list[str] = []
        for paragraph in text.split("\n\n"):
            lines = paragraph.splitlines()
            if lines and all(line.startswith("  ") for line in lines):
                out.append("\n".join(indent + line for line in lines))
            else:
                filled = textwrap.fill(" ".join(paragraph.split()), width)
                out.append(textwrap.indent(filled, indent))
        return "\n\n".join(out)


class _Parser(argparse.ArgumentParser):
    """Usage errors are one line on stderr and exit status 1, as every other failure.
    Subcommands' parsers are of this class too, with the same formatter."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(1, f"{PROG}: {' '.join(message.split())}\n")


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: every command, option and help text."""
    parser = _Parser(prog=PROG, description=_DESCRIPTION)
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="log what the vault does, and the traceback of an unexpected error (stderr)",
    )
    groups = parser.add_subparsers(dest="group", required=True, metavar="COMMAND", title="commands")

    db = groups.add_parser(
        "db",
        help="the storage schema; pruning expired rows",
        description="The storage named by OAUTH_VAULT_STORAGE_URL: its schema, and pruning.",
    ).add_subparsers(dest="cmd", required=True, metavar="{init,upgrade,prune,migrate-accounts}")
    db.add_parser(
        "init",
        help="create the schema (idempotent)",
        description="Create the tables the vault needs (SQL: migrations to this release's "
        "schema). Idempotent; the app also does it at start-up.",
    )
    db.add_parser(
        "upgrade",
        help="upgrade the schema to this release (idempotent)",
        description="Upgrade an existing schema to this release's (the same migrations as "
        "db init). Idempotent.",
    )
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
        type=whole_number(100_000),
        default=DEFAULT_PRUNE_BATCH,
        metavar="N",
        help=f"rows per delete statement, 1 to 100000 (default {DEFAULT_PRUNE_BATCH})",
    )

    migrate = db.add_parser(
        "migrate-accounts",
        help="record each credential's account in credentials stored before accounts existed",
        description="Credentials stored by a release without several accounts per provider "
        "are each user's default account already; this seals the provider's account id "
        "(from the user's linked identity) into each, under its refresh lease, while the "
        "apps keep running (the previous release reads them as before). Resumable and "
        "idempotent; reports the counts. A credential whose user has several identities of "
        "its connection linked is left as it is (its next login names it); one due for a "
        "refresh that a reader may be waiting for is left for a later run. A refresh by the "
        "previous release drops what this wrote: run it again once no process of the "
        "previous release is left.",
    )
    migrate.add_argument(
        "--batch",
        type=whole_number(10_000),
        default=DEFAULT_BATCH,
        metavar="N",
        help=f"records read per storage page, 1 to 10000 (default {DEFAULT_BATCH})",
    )
    migrate.add_argument(
        "--concurrency",
        type=whole_number(64),
        default=MIGRATION_CONCURRENCY,
        metavar="N",
        help=f"credentials migrated at once on PostgreSQL and Redis, 1 to 64 (default "
        f"{MIGRATION_CONCURRENCY}); SQLite migrates one after another",
    )

    keys = groups.add_parser(
        "keys",
        help="encryption keys: re-seal with the current one",
        description="The encryption keys of OAUTH_VAULT_ENCRYPTION_KEYS.",
    ).add_subparsers(dest="cmd", required=True, metavar="{rotate}")
    rotate = keys.add_parser(
        "rotate",
        help="re-seal every credential with the first key of OAUTH_VAULT_ENCRYPTION_KEYS",
        description="Re-seal every credential sealed with an older key with the first key of "
        "OAUTH_VAULT_ENCRYPTION_KEYS. Resumable: a rerun skips what is done. Afterwards the "
        "older keys can be removed from the settings. Exit status 1 when some credentials "
        "could not be opened (their key ids are named).",
    )
    rotate.add_argument(
        "--batch",
        type=whole_number(10_000),
        default=DEFAULT_BATCH,
        metavar="N",
        help=f"records read per storage page, 1 to 10000 (default {DEFAULT_BATCH})",
    )
    rotate.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")

    add_credentials_parsers(groups)
    add_service_parsers(groups)
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
    print(
        f"pruned {counted(sessions, 'expired session')}, {counted(states, 'expired login state')}"
    )
    return 0


def _db_migrate_accounts(args: argparse.Namespace, settings: Settings) -> int:
    started = time.monotonic()

    async def migrate() -> AccountMigration:
        vault = AsyncVault(settings)
        try:
            await vault.startup()
            return await vault.migrate_accounts(batch=args.batch, concurrency=args.concurrency)
        finally:
            await vault.aclose()

    report: AccountMigration | SyncAccountMigration
    if settings.storage_url.split(":", 1)[0] in ("sqlite", "memory"):
        # an embedded store writes one transaction at a time: one thread, no hops
        vault = Vault(settings)
        try:
            vault.startup()
            report = vault.migrate_accounts(batch=args.batch)
        finally:
            vault.close()
    else:  # a network store: the round trips of several records overlap
        report = asyncio.run(migrate())
    print(
        f"scanned {report.scanned}, migrated {report.migrated}, already {report.already}, "
        f"ambiguous {report.ambiguous}, unlinked {report.unlinked}, "
        f"unreadable {report.unreadable}, busy {report.busy}, due {report.due}, "
        f"gone {report.gone} ({time.monotonic() - started:.1f} s)"
    )
    if report.due:
        print(
            f"{PROG}: {counted(report.due, 'credential')} due for a refresh left for a later run",
            file=sys.stderr,
        )
    if report.busy:
        return _fail(f"{counted(report.busy, 'credential')} stayed leased by a refresh: rerun")
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
    missing = len(report.missing_kids)
    ids, keys = ("key id", "key") if missing == 1 else ("key ids", "keys")
    if missing:
        kids = ", ".join(f"{kid} ({n})" for kid, n in sorted(report.missing_kids.items()))
        causes.append(f"sealed with {ids} not in OAUTH_VAULT_ENCRYPTION_KEYS: {kids}")
    if report.damaged:
        causes.append(f"{report.damaged} failed the integrity check")
    hint = f"; add the missing {keys} back (after the current one) and rerun" if missing else ""
    return f"{counted(report.unreadable, 'credential')} unreadable: {'; '.join(causes)}{hint}"


_COMMANDS: dict[tuple[str, str], Callable[[argparse.Namespace, Settings], int]] = {
    ("db", "init"): _db,
    ("db", "upgrade"): _db,
    ("db", "prune"): _db_prune,
    ("db", "migrate-accounts"): _db_migrate_accounts,
    ("keys", "rotate"): _keys_rotate,
    **CREDENTIALS_COMMANDS,
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
    args = build_parser().parse_args(argv)
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
