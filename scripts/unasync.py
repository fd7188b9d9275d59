"""Generate ``_sync/`` from ``_async/``: every module of the async shell has a sync twin.

Hand-written sync/async twins drift; this keeps one source. Edit the files under
``src/oauth_vault_mw/_async/``, then run ``python scripts/unasync.py``; ``--check`` (run by the
test command) fails when a generated file is stale, missing, or left over.

Markers in the async source:

- a line ending in ``# unasync: remove`` exists only in the async file;
- a comment ``# unasync: sync-only: CODE`` becomes ``CODE`` in the sync file.

Everything else is the word-for-word translation below (``async def`` -> ``def``,
``AsyncVault`` -> ``Vault``...), then ``ruff`` formats the result.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "oauth_vault_mw"
SOURCE = PACKAGE / "_async"
TARGET = PACKAGE / "_sync"

REPLACEMENTS = [
    ("(async)", "(sync)"),
    ("async shell", "sync shell"),
    ("Starlette/FastAPI integration", "Flask integration"),
    ("AsyncVault", "Vault"),
    ("AsyncServiceAccess", "ServiceAccess"),
    ("AsyncAuditTrail", "AuditTrail"),
    ("AsyncAuditSink", "AuditSink"),
    ("AsyncInstrumentedStorage", "InstrumentedStorage"),
    ("AsyncStorage", "Storage"),
    ("async_storage_from_url", "storage_from_url"),
    ("AsyncProviderClient", "ProviderClient"),
    ("AsyncSingleFlight", "SingleFlight"),
    ("AsyncRefresher", "Refresher"),
    ("AsyncLogin", "Login"),
    ("AsyncAccounts", "Accounts"),
    ("AsyncRequestAuth", "RequestAuth"),
    ("AsyncRouteHandlers", "RouteHandlers"),
    ("AsyncHttpInput", "HttpInput"),
    ("httpx.AsyncBaseTransport", "httpx.BaseTransport"),
    ("httpx.AsyncClient", "httpx.Client"),
    ("asyncio.Lock", "threading.Lock"),
    ('"str | Awaitable[str]"', "str"),
    ("Awaitable, Callable", "Callable"),
    ("async def ", "def "),
    ("async with ", "with "),
    ("async for ", "for "),
    ("await ", ""),
    ("asyncio.sleep", "time.sleep"),
    ("aclose", "close"),
    ("aiter_bytes", "iter_bytes"),
    ("AbstractAsyncContextManager", "AbstractContextManager"),
]
HEADER = "# Generated from _async/{name} by scripts/unasync.py: do not edit.\n"


def generate(source: Path) -> str:
    lines = source.read_text().splitlines(keepends=True)
    kept = [line for line in lines if not line.rstrip().endswith("# unasync: remove")]
    text = "".join(re.sub(r"# unasync: sync-only: ", "", line) for line in kept)
    for old, new in REPLACEMENTS:
        text = text.replace(old, new)
    text = HEADER.format(name=source.name) + text
    target = TARGET / source.name
    for step in (["check", "--fix", "--quiet", "--exit-zero"], ["format"]):
        text = subprocess.run(  # noqa: S603 - our own file through our own formatter
            [sys.executable, "-m", "ruff", *step, "--stdin-filename", str(target), "-"],
            input=text,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    return text


def main() -> int:
    check = "--check" in sys.argv
    stale = []
    sources = sorted(SOURCE.glob("*.py"))
    wanted = {source.name for source in sources}
    for source in sources:
        text = generate(source)
        target = TARGET / source.name
        if check:
            if not target.exists() or target.read_text() != text:
                stale.append(f"_sync/{source.name} is stale")
        else:
            TARGET.mkdir(exist_ok=True)
            target.write_text(text)
    for leftover in sorted(TARGET.glob("*.py")):
        if leftover.name not in wanted:
            if check:
                stale.append(f"_sync/{leftover.name} has no source in _async/")
            else:
                leftover.unlink()
    for line in stale:
        print(f"{line}: run python scripts/unasync.py", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
