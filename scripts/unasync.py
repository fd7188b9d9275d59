"""Generate the sync shells from the async ones: ``_vault.py`` -> ``_sync_vault.py`` and
``_service.py`` -> ``_sync_service.py``.

Hand-written sync/async twins drift; this keeps one source. Edit the async file, then run
``python scripts/unasync.py``; ``--check`` (run by the test suite) fails when a generated
file is stale. Lines marked ``# unasync: remove`` exist only in the async file; comments
``# unasync: sync-only: CODE`` become ``CODE`` in the sync file.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "oauth_vault_mw"
PAIRS = [("_vault.py", "_sync_vault.py"), ("_service.py", "_sync_service.py")]

REPLACEMENTS = [
    ('"""The async vault:', '"""The sync vault:'),
    ("Starlette/FastAPI integration", "Flask integration"),
    ('"""Service-side access (async):', '"""Service-side access (sync):'),
    ("AsyncVault", "Vault"),
    ("AsyncServiceAccess", "ServiceAccess"),
    ("AsyncAuditTrail", "AuditTrail"),
    ("AsyncAuditSink", "AuditSink"),
    ("from ._vault import", "from ._sync_vault import"),
    ("AsyncStorage", "Storage"),
    ("async_storage_from_url", "storage_from_url"),
    ("AsyncProviderClient", "ProviderClient"),
    ("AsyncSingleFlight", "SingleFlight"),
    ("httpx.AsyncBaseTransport", "httpx.BaseTransport"),
    ("from ._provider import", "from ._sync_provider import"),
    ('"str | Awaitable[str]"', "str"),
    ("Awaitable, Callable", "Callable"),
    ("async def ", "def "),
    ("await ", ""),
    ("asyncio.sleep", "time.sleep"),
    ("aclose", "close"),
]
HEADER = "# Generated from {source} by scripts/unasync.py: do not edit.\n"


def generate(source: str, target: str) -> str:
    lines = (PACKAGE / source).read_text().splitlines(keepends=True)
    kept = [line for line in lines if "# unasync: remove" not in line]
    # "# unasync: sync-only: CODE" comments become CODE in the sync file.
    text = "".join(re.sub(r"# unasync: sync-only: ", "", line) for line in kept)
    for old, new in REPLACEMENTS:
        text = text.replace(old, new)
    text = HEADER.format(source=source) + text
    for step in (["check", "--fix", "--quiet", "--exit-zero"], ["format"]):
        text = subprocess.run(  # noqa: S603 - our own file through our own formatter
            [sys.executable, "-m", "ruff", *step, "--stdin-filename", str(PACKAGE / target), "-"],
            input=text,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    return text


def main() -> int:
    stale = False
    for source, target in PAIRS:
        text = generate(source, target)
        path = PACKAGE / target
        if "--check" in sys.argv:
            if not path.exists() or path.read_text() != text:
                print(f"{target} is stale: run python scripts/unasync.py", file=sys.stderr)
                stale = True
        else:
            path.write_text(text)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
