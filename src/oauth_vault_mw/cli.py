"""``oauth-vault``: the operator's command line. Reads the same ``OAUTH_VAULT_*`` environment.

Exit status 0 on success; 1 with one line on stderr otherwise. Never prints a secret.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from ._exceptions import VaultError
from ._settings import settings_from_env
from .core.crypto import Sealer
from .core.model import CredentialKey
from .core.vault_logic import open_record
from .storage import storage_from_url

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="oauth-vault", description=__doc__.splitlines()[0])
    groups = parser.add_subparsers(dest="group", required=True)
    db = groups.add_parser("db", help="storage schema").add_subparsers(dest="cmd", required=True)
    db.add_parser("init", help="create the schema (idempotent)")
    db.add_parser("upgrade", help="upgrade the schema to this version (idempotent)")
    creds = groups.add_parser("credentials", help="stored credentials").add_subparsers(
        dest="cmd", required=True
    )
    show = creds.add_parser("show", help="status, expiry and scopes of one credential")
    show.add_argument("connection")
    show.add_argument("user")
    return parser


def _run(args: argparse.Namespace) -> str:
    settings = settings_from_env()
    storage = storage_from_url(settings.storage_url)
    try:
        if args.group == "db":
            storage.setup()
            return f"schema ready ({settings.storage_url.split('://', 1)[0]})"
        key = CredentialKey(args.connection, args.user)
        record = storage.get_credential(key)
        if record is None:
            raise VaultError("no credential for this connection and user")
        tokens = open_record(Sealer(settings.encryption_keys), record)
        expires = "never" if tokens.expires_at is None else (
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(tokens.expires_at))
        )  # fmt: skip
        return "\n".join(
            [
                f"connection: {key.connection_id}",
                f"user: {key.user_id}",
                f"status: {tokens.status}",
                f"expires_at: {expires}",
                f"scope: {tokens.scope or ''}",
                f"refreshable: {'yes' if tokens.refresh_token else 'no'}",
                f"version: {record.version}",
                f"sealed_with: {record.sealed.split('.', 2)[1]}",
            ]
        )
    finally:
        storage.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        print(_run(args))
    except VaultError as exc:
        print(f"oauth-vault: {exc.description}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
