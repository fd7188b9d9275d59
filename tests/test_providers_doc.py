"""``docs/providers.md`` is generated from the preset records: it must say what the code does."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "providers_doc.py"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("providers_doc", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_providers_page_is_up_to_date() -> None:
    page = (ROOT / "docs" / "providers.md").read_text()
    assert page == _script().render(), "docs/providers.md is stale: run scripts/providers_doc.py"


def test_the_page_has_every_preset_once() -> None:
    from oauth_vault_mw.core.preset_table import PRESETS

    page = (ROOT / "docs" / "providers.md").read_text()
    for name in PRESETS:
        assert page.count(f"\n### {name}\n") == 1
        assert f"| [`{name}`](#{name}) |" in page


def test_check_mode_exits_1_when_stale(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    stale = tmp_path / "providers.md"
    stale.write_text("# Providers\n")
    module = _script()
    assert module.main(["--check"], stale) == 1
    assert module.main(["--check"], tmp_path / "missing.md") == 1
    assert module.main([], stale) == 0
    assert module.main(["--check"], stale) == 0
