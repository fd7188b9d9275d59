"""How long ``oauth-vault db migrate-accounts`` takes: ``Vault.migrate_accounts`` on every store.

``PYTHONPATH=. .venv/bin/python -m benchmarks.migrate_accounts [--records 100000]
[--stores sqlite,postgresql,redis] [--batch 500] [--concurrency 8]``

Each store (a SQLite file in a temp dir; a throwaway PostgreSQL and a throwaway Redis started
as :func:`benchmarks.backends.throwaway` starts them, on 127.0.0.1, stopped at the end) is
filled with ``--records`` credentials as the release before several accounts per provider
left them: one sealed token set without a subject in each user's default slot, and one linked
identity per user. The fill goes straight through the storage API (``link_identity`` and
``save_credential`` of sealed records, from :data:`FILL_THREADS` threads), not through logins.

Then, as the CLI runs it (SQLite: the sync :class:`~oauth_vault_mw.Vault`, one record after
another; PostgreSQL and Redis: the :class:`~oauth_vault_mw.AsyncVault`, ``--concurrency``
records at once, 8 by default as in the CLI; ``--batch`` records per page), the migration is
timed, and again a second run that finds nothing left to do. Each run's report is checked
(all migrated, then all already), and a sample of records is opened to check its subject.
Nothing refreshes meanwhile: this is the migration's own cost. One table: store, records,
seconds, records/s, second run seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import secrets
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from oauth_vault_mw import AsyncVault, CredentialKey, Settings, Vault
from oauth_vault_mw._async.accounts import AccountMigration
from oauth_vault_mw.core.model import TokenSet
from oauth_vault_mw.core.records import open_record, seal_record
from oauth_vault_mw.jobs import DEFAULT_BATCH
from oauth_vault_mw.storage import Storage

from ._common import CONNECTION_ID, make_settings, new_encryption_key, new_secret_key
from .backends import Unavailable, throwaway

__all__ = ["MigrationResult", "main", "run_store"]

STORES = ("sqlite", "postgresql", "redis")
DEFAULT_RECORDS = 100_000
FILL_THREADS = 8
SAMPLE = 200  # records opened after the migration to check their subject


@dataclass(frozen=True)
class MigrationResult:
    store: str
    records: int
    fill_seconds: float
    seconds: float
    second_seconds: float

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0


def _user(i: int) -> str:
    return f"user-{i:07d}"


def _subject(i: int) -> str:
    return f"subject-{i:07d}"


def _fill(storage: Storage, settings: Settings, records: int) -> None:
    """``records`` legacy credentials (no subject, default slot), each user with one linked
    identity, written through the storage API from :data:`FILL_THREADS` threads."""
    vault = Vault(settings, storage=storage)  # only for its sealer
    now = time.time()

    def chunk(start: int) -> None:
        for i in range(start, min(start + 1000, records)):
            tokens = TokenSet(
                access_token=f"at-{i}-{secrets.token_urlsafe(16)}",
                refresh_token=f"rt-{i}-{secrets.token_urlsafe(16)}",
                expires_at=now + 3600,
                obtained_at=now,
                scope="openid email",
                login_at=now,
            )
            key = CredentialKey(CONNECTION_ID, _user(i))
            if storage.link_identity(CONNECTION_ID, _subject(i), key.user_id) != key.user_id:
                raise RuntimeError(f"identity {i} is bound to another user")
            if not storage.save_credential(seal_record(vault.sealer, key, tokens, now=now), 0):
                raise RuntimeError(f"credential {i} exists already: the store is not empty")

    with ThreadPoolExecutor(FILL_THREADS) as pool:
        list(pool.map(chunk, range(0, records, 1000)))


def _check(name: str, report: dict[str, int], expected: AccountMigration) -> None:
    if report != asdict(expected):
        raise RuntimeError(f"{name}: {report}, expected {expected}")


def _migrate(settings: Settings, batch: int, concurrency: int) -> dict[str, int]:
    """One migration as ``oauth-vault db migrate-accounts`` runs it (its report's counts):
    SQLite in one thread (the sync vault), a network store with the async vault,
    ``concurrency`` records at once."""
    if settings.storage_url.startswith("sqlite"):
        vault = Vault(settings)
        try:
            vault.startup()
            return asdict(vault.migrate_accounts(batch=batch))
        finally:
            vault.close()

    async def run() -> AccountMigration:
        async_vault = AsyncVault(settings)
        try:
            await async_vault.startup()
            return await async_vault.migrate_accounts(batch=batch, concurrency=concurrency)
        finally:
            await async_vault.aclose()

    return asdict(asyncio.run(run()))


def run_store(
    store: str, url: str, records: int, batch: int, concurrency: int = 8
) -> MigrationResult:
    """Fill the empty store at ``url``, then time two migrations of it."""
    settings = make_settings(url, new_secret_key(), new_encryption_key())
    vault = Vault(settings)
    try:
        vault.startup()
        started = time.monotonic()
        _fill(vault.storage, settings, records)
        fill_seconds = time.monotonic() - started

        started = time.monotonic()
        first = _migrate(settings, batch, concurrency)
        seconds = time.monotonic() - started
        _check(f"{store} first run", first, AccountMigration(scanned=records, migrated=records))

        started = time.monotonic()
        second = _migrate(settings, batch, concurrency)
        second_seconds = time.monotonic() - started
        _check(f"{store} second run", second, AccountMigration(scanned=records, already=records))

        for i in random.sample(range(records), min(SAMPLE, records)):
            record = vault.storage.get_credential(CredentialKey(CONNECTION_ID, _user(i)))
            if record is None or open_record(vault.sealer, record).subject != _subject(i):
                raise RuntimeError(f"{store}: credential {i} was not given its subject")
    finally:
        vault.close()
    return MigrationResult(store, records, fill_seconds, seconds, second_seconds)


@contextlib.contextmanager
def _store_url(store: str) -> Iterator[str]:
    if store == "sqlite":
        with tempfile.TemporaryDirectory(prefix="oauth-vault-bench-migrate-") as tmp:
            yield f"sqlite:///{Path(tmp) / 'vault.db'}"
        return
    with throwaway(store) as url:
        yield url


def _table(results: list[MigrationResult | tuple[str, str]]) -> str:
    head = ("store", "records", "seconds", "records/s", "second run s", "(fill s)")
    rows: list[tuple[str, ...]] = []
    for result in results:
        if isinstance(result, tuple):
            rows.append((result[0], result[1], "", "", "", ""))
            continue
        rows.append(
            (
                result.store,
                f"{result.records:,}",
                f"{result.seconds:.1f}",
                f"{result.rate:,.0f}",
                f"{result.second_seconds:.1f}",
                f"{result.fill_seconds:.1f}",
            )
        )
    widths = [max(len(row[n]) for row in [head, *rows]) for n in range(len(head))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(head, widths, strict=True))]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.migrate_accounts", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--records", type=int, default=DEFAULT_RECORDS)
    parser.add_argument("--stores", default=",".join(STORES), help="comma-separated")
    parser.add_argument("--batch", type=int, default=DEFAULT_BATCH, help="records per page")
    parser.add_argument(
        "--concurrency", type=int, default=8, help="records migrated at once (the CLI's default)"
    )
    args = parser.parse_args(argv)
    stores = [s for s in args.stores.split(",") if s]
    unknown = set(stores) - set(STORES)
    if unknown or args.records < 1:
        parser.error(f"stores are {', '.join(STORES)}; records at least 1")
    logging.getLogger("oauth_vault_mw").setLevel(logging.WARNING)
    results: list[MigrationResult | tuple[str, str]] = []
    for store in stores:
        print(f"== {store}: filling {args.records:,} legacy records", file=sys.stderr, flush=True)
        try:
            with _store_url(store) as url:
                result = run_store(store, url, args.records, args.batch, args.concurrency)
        except Unavailable as why:
            results.append((store, str(why)))
            continue
        print(
            f"== {store}: fill {result.fill_seconds:.1f} s, migration {result.seconds:.1f} s, "
            f"second run {result.second_seconds:.1f} s",
            file=sys.stderr,
            flush=True,
        )
        results.append(result)
    print(f"migrate_accounts, batch {args.batch}, concurrency {args.concurrency}: one run")
    print(_table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
