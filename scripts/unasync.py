"""Generate the sync vault (``_sync_vault.py``) from the async one (``_vault.py``).

Hand-written sync/async twins drift; this keeps one source. Edit ``_vault.py``, then run
``python scripts/unasync.py``; ``--check`` (run by the test suite) fails when the generated
file is stale. Lines marked ``# unasync: remove`` exist only in the async vault.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "oauth_vault_mw"
SOURCE = PACKAGE / "_vault.py"
TARGET = PACKAGE / "_sync_vault.py"

REPLACEMENTS = [
    ('"""The async vault:', '"""The sync vault:'),
    ("Starlette/FastAPI integration", "Flask integration"),
    ("AsyncVault", "Vault"),
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
HEADER = "# Generated from _vault.py by scripts/unasync.py: do not edit.\n"


def generate() -> str:
    lines = SOURCE.read_text().splitlines(keepends=True)
    text = "".join(line for line in lines if "# unasync: remove" not in line)
    for old, new in REPLACEMENTS:
        text = text.replace(old, new)
    text = HEADER + text
    for step in (["check", "--fix", "--quiet", "--exit-zero"], ["format"]):
        text = subprocess.run(  # noqa: S603 - our own file through our own formatter
            [sys.executable, "-m", "ruff", *step, "--stdin-filename", str(TARGET), "-"],
            input=text, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    return text


def main() -> int:
    text = generate()
    if "--check" in sys.argv:
        if not TARGET.exists() or TARGET.read_text() != text:
            print(f"{TARGET.name} is stale: run python scripts/unasync.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
