"""Usage errors: exit status 1 and one line on stderr that names the option."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from .conftest import cli_env, run_cli


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--expiring-within", "10x"], "--expiring-within"),
        (["--expiring-within", "10m", "--concurrency", "0"], "--concurrency"),
        (["--expiring-within", "10m", "--connection", "nope"], "--connection"),
        ([], "--expiring-within"),
    ],
)
def test_bad_options_are_one_line_naming_the_option(
    tmp_path: Path, args: list[str], option: str
) -> None:
    connections = [{"id": "demo", "issuer": "http://127.0.0.1:9", "client_id": "c",
                    "client_secret": "s"}]  # fmt: skip
    env = cli_env(f"sqlite:///{tmp_path / 'v.db'}", [base64.b64encode(b"k" * 32).decode()],
                  connections)  # fmt: skip
    done = run_cli(env, "credentials", "refresh", *args)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith("oauth-vault: ")
    assert option in done.stderr


@pytest.mark.parametrize("args", [[], ["keys"], ["nope"], ["credentials", "show", "demo"]])
def test_incomplete_commands_are_one_line(tmp_path: Path, args: list[str]) -> None:
    env = cli_env(f"sqlite:///{tmp_path / 'v.db'}", [base64.b64encode(b"k" * 32).decode()], [])
    done = run_cli(env, *args)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith("oauth-vault: ")
