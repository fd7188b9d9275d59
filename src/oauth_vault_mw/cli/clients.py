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
from ._args import parse_duration, whole_number

__all__ = ["COMMANDS", "add_parsers"]

_NAME_HELP = "the client's name: 1 to 64 letters, digits, dots, dashes or underscores"


_GRANT_HELP = """\
A grant is PATTERN:ACTION. PATTERN is the path of the credentials it covers, \
Connections/{connectionId}/Users/{userId}/Credentials, where * stands for exactly one whole \
segment (Connections/*/Users/*/Credentials: every user of every connection); there are no \
partial wildcards (goo* is refused) and matching is case-sensitive. ACTION is \
connections:credentials:read, or the role UserCredentialsViewer, which grants it; the \
grant ends with it, so a pattern may hold colons (a user id such as auth0:123). Repeat \
--grant for several grants; a request is allowed when any grant covers it.

Examples:

  oauth-vault clients create reports \\
    --grant 'Connections/*/Users/*/Credentials:connections:credentials:read'
  oauth-vault clients create sync \\
    --grant 'Connections/github/Users/*/Credentials:UserCredentialsViewer' \\
    --grant 'Connections/google/Users/u-42/Credentials:connections:credentials:read'"""


def add_parsers(groups: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    clients = groups.add_parser(
        "clients",
        help="service clients, their grants and access keys",
        description="Service clients: the services that read users' credentials from the "
        "app with an access key, within their grants.",
    )
    sub = clients.add_subparsers(
        dest="cmd", required=True, metavar="{create,list,revoke,add-key,revoke-key}"
    )
    create = sub.add_parser(
        "create",
        help="a new client with its grants; prints its first access key once",
        description="Create a service client with one or more grants, and print its first "
        "access key, alone on a line. It is shown this once: store it in the service's "
        "secret store.",
        epilog=_GRANT_HELP,
    )
    create.add_argument("name", metavar="NAME", help=_NAME_HELP)
    create.add_argument(
        "--grant",
        action="append",
        required=True,
        metavar="PATTERN:ACTION",
        help="a permission (syntax below); required, and repeated for several grants",
    )
    sub.add_parser(
        "list",
        help="clients, grants and key ids (never a key)",
        description="List every client (active or revoked), its grants, and its access "
        "keys by id, with their state. Never prints a key.",
    )
    revoke = sub.add_parser(
        "revoke",
        help="revoke a client and all its keys",
        description="Revoke a client and every one of its access keys, at the next request "
        "of every app process. Its name stays taken.",
    )
    revoke.add_argument("name", metavar="NAME", help="the client's name")
    add_key = sub.add_parser(
        "add-key",
        help="another access key for a client, printed once",
        description="Create another access key for an active client and print it once, "
        "alone on a line. To rotate a key: add one, deploy it, then revoke the old one.",
    )
    add_key.add_argument("name", metavar="NAME", help="the client's name")
    revoke_key = sub.add_parser(
        "revoke-key",
        help="revoke one access key of a client",
        description="Revoke one access key of a client; its other keys keep working.",
    )
    revoke_key.add_argument("name", metavar="NAME", help="the client's name")
    revoke_key.add_argument(
        "key_id", metavar="KEY_ID", help="the key's id, 16 hex digits, as clients list shows it"
    )
    audit = groups.add_parser(
        "audit",
        help="the audit trail, newest last",
        description="Print the audit trail's events of the last --since, oldest first, one "
        "per line: time (UTC), actor, action, connection/user when there is one, outcome. "
        "Routine events that an app process still holds in memory (they are written in "
        "batches) are not shown yet.",
    )
    audit.set_defaults(cmd="show")
    audit.add_argument(
        "--since",
        type=parse_duration,
        default=3600.0,
        metavar="DURATION",
        help="how far back: 30s, 10m, 2h, 1d or seconds, up to 366d (default 1h)",
    )
    audit.add_argument(
        "--limit",
        type=whole_number(1_000_000),
        default=1000,
        metavar="N",
        help="print at most the newest N events (default 1000)",
    )


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
