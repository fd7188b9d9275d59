"""``oauth-vault clients ...`` and ``oauth-vault audit``: service clients and the audit trail.

Access keys are printed alone on a line, once, at creation; nothing else ever prints one.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from .._sync.service import ServiceAccess
from .._sync.vault import Vault
from ..core.config import Settings
from ..core.errors import VaultError

__all__ = ["COMMANDS", "add_parsers"]


def add_parsers(
    groups: argparse._SubParsersAction,  # type: ignore[type-arg]
    parse_duration: Callable[[str], float],
) -> None:
    clients = groups.add_parser("clients", help="service clients and their access keys")
    sub = clients.add_subparsers(dest="cmd", required=True)
    create = sub.add_parser("create", help="a new client; prints its first access key once")
    create.add_argument("name")
    create.add_argument(
        "--grant",
        action="append",
        default=[],
        metavar="PATTERN:ACTION",
        help="e.g. 'Connections/*/Users/*/Credentials:connections:credentials:read'",
    )
    sub.add_parser("list", help="clients, grants and key ids (never a key)")
    revoke = sub.add_parser("revoke", help="revoke a client and all its keys")
    revoke.add_argument("name")
    add_key = sub.add_parser("add-key", help="another access key, printed once")
    add_key.add_argument("name")
    revoke_key = sub.add_parser("revoke-key", help="revoke one access key")
    revoke_key.add_argument("name")
    revoke_key.add_argument("key_id")
    audit = groups.add_parser("audit", help="the audit trail, newest last")
    audit.set_defaults(cmd="show")
    audit.add_argument(
        "--since",
        type=parse_duration,
        default=3600.0,
        metavar="DURATION",
        help="how far back (30s, 10m, 2h, 1d); default 1h",
    )
    audit.add_argument("--limit", type=int, default=1000, help="at most this many (newest)")


@contextmanager
def _service(settings: Settings) -> Iterator[ServiceAccess]:
    vault = Vault(settings)
    vault.startup()
    service = ServiceAccess(vault)
    try:
        yield service
    finally:
        service.close()
        vault.close()


def _create(args: argparse.Namespace, settings: Settings) -> int:
    if not args.grant:
        raise VaultError("give at least one --grant PATTERN:ACTION")
    with _service(settings) as service:
        key = service.create_client(args.name, args.grant)
    print(key.value)
    return 0


def _list(args: argparse.Namespace, settings: Settings) -> int:
    with _service(settings) as service:
        clients = service.list_clients()
    for client, keys in clients:
        state = "revoked" if client.revoked else "active"
        print(f"{client.name} ({state})")
        for grant in client.grants:
            print(f"  grant {grant}")
        for key in keys:
            key_state = "revoked" if key.revoked_at is not None else "active"
            print(f"  key {key.key_id} ({key_state})")
    return 0


def _revoke(args: argparse.Namespace, settings: Settings) -> int:
    with _service(settings) as service:
        if not service.revoke_client(args.name):
            raise VaultError(f"no active client named {args.name!r}")
    print(f"revoked {args.name}")
    return 0


def _add_key(args: argparse.Namespace, settings: Settings) -> int:
    with _service(settings) as service:
        key = service.add_access_key(args.name)
    print(key.value)
    return 0


def _revoke_key(args: argparse.Namespace, settings: Settings) -> int:
    with _service(settings) as service:
        if not service.revoke_access_key(args.name, args.key_id):
            raise VaultError(f"no active key {args.key_id!r} of client {args.name!r}")
    print(f"revoked key {args.key_id}")
    return 0


def _audit(args: argparse.Namespace, settings: Settings) -> int:
    with _service(settings) as service:
        events = service.audit.read(time.time() - args.since, args.limit)
    for e in events:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(e.at))
        where = f" {e.connection_id}/{e.user_id}" if e.connection_id else ""
        print(f"{stamp} {e.actor} {e.action}{where} {e.outcome}")
    return 0


COMMANDS: dict[tuple[str, str], Callable[[argparse.Namespace, Settings], int]] = {
    ("clients", "create"): _create,
    ("clients", "list"): _list,
    ("clients", "revoke"): _revoke,
    ("clients", "add-key"): _add_key,
    ("clients", "revoke-key"): _revoke_key,
    ("audit", "show"): _audit,
}
