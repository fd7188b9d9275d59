"""``--help`` of every command: a description, help on every argument, and plain text only
(none of the docstrings' reST: double backticks, roles such as :func:, literal-block ``::``)."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator

import pytest

from oauth_vault_mw.cli import main
from oauth_vault_mw.cli.main import build_parser

from .conftest import cli_env, run_cli

REST = re.compile(r"`|:(?:func|mod|class|meth|attr|data|exc|obj|ref|doc):|::\s*$", re.MULTILINE)


def commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every parser of the command line, with the words that reach it."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from commands(sub, (*path, name))


def subcommand_help(parser: argparse.ArgumentParser) -> dict[str, str | None]:
    return {
        choice.dest: choice.help
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
        for choice in action._choices_actions
    }


ALL = [path for path, _ in commands(build_parser())]


def test_the_walk_finds_every_command() -> None:
    leaves = {" ".join(path) for path, parser in commands(build_parser())
              if not subcommand_help(parser)}  # fmt: skip
    assert leaves == {
        "db init", "db upgrade", "db prune", "db migrate-accounts", "keys rotate",
        "credentials list", "credentials refresh", "credentials show", "clients create",
        "clients list", "clients revoke",
        "clients add-key", "clients revoke-key", "audit",
    }  # fmt: skip


@pytest.mark.parametrize("path", ALL, ids=lambda p: " ".join(p) or "oauth-vault")
def test_every_command_and_argument_has_help(path: tuple[str, ...]) -> None:
    parser = dict(commands(build_parser()))[path]
    assert parser.description, f"{path}: no description"
    for name, text in subcommand_help(parser).items():
        assert text, f"{path} {name}: no help in the list of commands"
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        assert action.help, f"{path} {action.dest}: no help"
        assert action.help != argparse.SUPPRESS, f"{path} {action.dest}: hidden"
        assert not REST.search(action.help), action.help


@pytest.mark.parametrize("path", ALL, ids=lambda p: " ".join(p) or "oauth-vault")
def test_help_output_is_plain_text_naming_every_argument(
    path: tuple[str, ...], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    with pytest.raises(SystemExit) as exited:
        main([*path, "--help"])
    assert exited.value.code == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert not REST.search(out), REST.search(out)
    parser = dict(commands(build_parser()))[path]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            continue
        shown = action.option_strings[-1] if action.option_strings else action.metavar
        assert isinstance(shown, str), f"{path}: {action.dest} has no name to show"
        assert shown in out, f"{path}: {action.dest} missing from --help"


def test_grant_documents_its_syntax_wildcards_and_repetition(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["clients", "create", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "Connections/{connectionId}/Users/{userId}/Credentials" in out
    assert "* stands for exactly one whole segment" in out
    assert "no partial wildcards" in out
    assert "connections:credentials:read" in out
    assert "UserCredentialsViewer" in out
    assert "Repeat --grant for several grants" in out
    assert "--grant 'Connections/*/Users/*/Credentials:connections:credentials:read'" in out


def test_help_in_a_subprocess_exits_0() -> None:
    done = run_cli(cli_env("memory://", [], []), "credentials", "show", "--help")
    assert done.returncode == 0
    assert "sealed_with" in done.stdout
    assert done.stderr == ""


def test_create_without_a_grant_names_the_option() -> None:
    done = run_cli(cli_env("memory://", [], []), "clients", "create", "reports")
    assert done.returncode == 1
    assert done.stderr == "oauth-vault: the following arguments are required: --grant\n"
