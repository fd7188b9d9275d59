"""A configuration error stops the server at start-up, in every documented way of installing
the vault (issue 11): real servers in subprocesses, as users start them.

ASGI: uvicorn with ``--lifespan auto`` (its default) and ``--lifespan on``, on both examples and
on the other documented ways to add the middleware (``tests/startup/apps.py``). An exception in
the lifespan's start-up is "lifespan unsupported" to uvicorn under ``auto``, which then
serves 500s; the middleware answers ``lifespan.startup.failed`` with one line instead, and
uvicorn exits with status 3. WSGI: ``flask run`` and ``waitress-serve``, where ``init_app``
raises while the app module is imported. gunicorn runs in ``scripts/install-check`` (the
flask venv there installs it, as a user would).

The errors: a storage URL with an unknown scheme, and a storage whose driver is missing
(simulated by a package on ``PYTHONPATH`` whose import fails as a missing module's does;
``scripts/install-check`` meets the real thing in clean venvs).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.types import Message

from oauth_vault_mw import ConfigurationError, StorageUnavailable
from oauth_vault_mw.flask import OAuthVault
from oauth_vault_mw.starlette import OAuthVaultMiddleware
from tests.support.ports import free_port
from tests.support.served import ServerProcess, clean_environ
from tests.support.suite import new_key

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SETTING = "OAUTH_VAULT_STORAGE_URL"
CONNECTION = {
    "id": "demo",
    "authorize_url": "http://127.0.0.1:9/authorize",
    "token_url": "http://127.0.0.1:9/token",
    "userinfo_url": "http://127.0.0.1:9/userinfo",
    "client_id": "demo",
    "client_secret": "demo-secret",
}


@dataclass(frozen=True)
class Case:
    storage_url: str
    says: str  # what the line says besides the setting's name
    missing: str | None = None  # a driver to hide


CASES = {
    "bad-scheme": Case("nosuch://x", "unsupported scheme 'nosuch'"),
    "no-postgresql-driver": Case("postgresql://vault@127.0.0.1:9/vault", "psycopg", "psycopg"),
    "no-redis-driver": Case("redis://127.0.0.1:9/0", "redis", "redis"),
}

ASGI_APPS = {
    "starlette-example": ["examples.starlette_app.app:app"],
    "fastapi-example": ["examples.fastapi_app.app:app"],
    "starlette-add-middleware": ["--factory", "tests.startup.apps:starlette_add_middleware"],
    "starlette-middleware-list": ["--factory", "tests.startup.apps:starlette_middleware_list"],
    "starlette-wrapped": ["--factory", "tests.startup.apps:starlette_wrapped"],
}

WSGI_SERVERS = {  # command lines, from the venv's bin directory
    "flask-run-example": "flask --app examples.flask_app.app run --port {port}",
    "flask-run-extension": "flask --app tests.startup.apps:flask_extension() run --port {port}",
    "waitress-example": "waitress-serve --listen=127.0.0.1:{port} examples.flask_app.app:app",
    "waitress-factory": "waitress-serve --listen=127.0.0.1:{port} --call "
    "examples.flask_app.app:create_app",
}


def hide_driver(tmp_path: Path, name: str) -> Path:
    """A directory for PYTHONPATH whose package ``name`` fails to import as a missing one."""
    package = tmp_path / "hidden" / name
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        f"raise ModuleNotFoundError({f'No module named {name!r}'!r}, name={name!r})\n"
    )
    return package.parent


def server_env(case: Case, port: int, tmp_path: Path) -> dict[str, str]:
    paths = [str(REPO), str(REPO / "src")]  # this checkout, whatever the venv installed
    if case.missing:
        paths.insert(0, str(hide_driver(tmp_path, case.missing)))
    return clean_environ(
        {
            "PYTHONPATH": ":".join(paths),
            "OAUTH_VAULT_SECRET_KEY": "k" * 48,
            "OAUTH_VAULT_ENCRYPTION_KEYS": new_key(),
            "OAUTH_VAULT_BASE_URL": f"http://127.0.0.1:{port}",
            "OAUTH_VAULT_CONNECTIONS": json.dumps([CONNECTION]),
            "OAUTH_VAULT_STORAGE_URL": case.storage_url,
        }
    )


def assert_stops_at_startup(
    argv: list[str], port: int, case: Case, tmp_path: Path, *, failure_status: bool = True
) -> None:
    """The server exits non-zero without ever serving, and says why in one line."""
    env = server_env(case, port, tmp_path)
    with ServerProcess(argv, port=port, env=env, cwd=REPO) as server:
        outcome = server.wait(timeout=30)
        output = server.output
        assert outcome == "exited", f"serving with {case.storage_url}:\n{output}"
        assert server.returncode != 0 or not failure_status, output
    lines = [line for line in output.splitlines() if SETTING in line and case.says in line]
    assert lines, f"no line naming {SETTING} ({case.says}):\n{output}"


def asgi_params() -> list[Any]:
    params = []
    for app_id, app_args in ASGI_APPS.items():
        for case_id, case in CASES.items():
            params.append(pytest.param(app_args, case, id=f"{app_id}-{case_id}"))
    return params


def uvicorn(app_args: list[str], port: int, lifespan: str) -> list[str]:
    return [
        *(str(BIN / "uvicorn"), *app_args),
        *("--host", "127.0.0.1", "--port", str(port), "--lifespan", lifespan),
    ]


@pytest.mark.parametrize(("app_args", "case"), asgi_params())
def test_config_error_stops_uvicorn_startup_lifespan_auto(
    app_args: list[str], case: Case, tmp_path: Path
) -> None:
    port = free_port()
    assert_stops_at_startup(uvicorn(app_args, port, "auto"), port, case, tmp_path)


@pytest.mark.parametrize(("app_args", "case"), asgi_params())
def test_config_error_stops_uvicorn_startup_lifespan_on(
    app_args: list[str], case: Case, tmp_path: Path
) -> None:
    port = free_port()
    assert_stops_at_startup(uvicorn(app_args, port, "on"), port, case, tmp_path)


def test_config_error_stops_uvicorn_startup_with_workers(tmp_path: Path) -> None:
    """``uvicorn --workers 2``: each worker's start-up fails, and the parent stops when one
    does. Its exit status is uvicorn's choice: 0 (0.55), so only the stop is asserted."""
    port = free_port()
    argv = [*uvicorn(ASGI_APPS["fastapi-example"], port, "auto"), "--workers", "2"]
    assert_stops_at_startup(argv, port, CASES["bad-scheme"], tmp_path, failure_status=False)


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
@pytest.mark.parametrize("command", WSGI_SERVERS.values(), ids=WSGI_SERVERS.keys())
def test_config_error_stops_flask_server_startup(command: str, case: Case, tmp_path: Path) -> None:
    port = free_port()
    program, *args = command.format(port=port).split()
    assert_stops_at_startup([str(BIN / program), *args], port, case, tmp_path)


# -- in process: the lifespan messages, the constructor, the Flask extension ----------------


def settings(storage_url: str) -> dict[str, Any]:
    return {
        "secret_key": "k" * 48,
        "encryption_keys": new_key(),
        "base_url": "http://127.0.0.1:8000",
        "storage_url": storage_url,
        "connections": [CONNECTION],
    }


async def lifespan_startup(app: Any) -> list[Message]:
    """Send ``lifespan.startup`` to ``app`` as a server does; what it sent back."""
    sent: list[Message] = []
    incoming = [{"type": "lifespan.startup"}]

    async def receive() -> Message:
        if incoming:
            return incoming.pop()
        raise AssertionError("the app waited for lifespan.shutdown after a failed start-up")

    async def send(message: Message) -> None:
        sent.append(message)

    await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)
    return sent


async def test_config_error_stops_startup_as_lifespan_startup_failed() -> None:
    """Built by Starlette on its first ASGI call: one ``lifespan.startup.failed``, one line."""
    app = Starlette()
    app.add_middleware(OAuthVaultMiddleware, settings=settings("nosuch://x"))
    sent = await lifespan_startup(app)
    assert [m["type"] for m in sent] == ["lifespan.startup.failed"]
    line = sent[0]["message"]
    assert line.startswith("oauth_vault_mw: OAUTH_VAULT_STORAGE_URL: unsupported scheme 'nosuch'")
    assert "\n" not in line


async def test_config_error_stops_startup_then_requests_raise_it() -> None:
    """A server that runs no lifespan gets the error itself on each request (it logs it)."""
    app = OAuthVaultMiddleware(Starlette(), settings=settings("nosuch://x"))
    scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b""}

    async def never(*args: Any) -> Any:
        raise AssertionError("not reached")

    for _ in range(2):
        with pytest.raises(ConfigurationError, match=r"^OAUTH_VAULT_STORAGE_URL: unsupported"):
            await app(scope, never, never)


def test_config_error_stops_startup_at_construction_outside_event_loop() -> None:
    """Built at import (no event loop runs), the middleware raises at once."""
    with pytest.raises(ConfigurationError, match=r"^OAUTH_VAULT_STORAGE_URL: unsupported"):
        OAuthVaultMiddleware(Starlette(), settings=settings("nosuch://x"))


async def test_storage_setup_error_stops_startup(tmp_path: Path) -> None:
    """A storage that cannot be set up fails the start-up with a line naming the setting,
    and the app's own lifespan never starts."""
    url = f"sqlite:///{tmp_path}/no/such/dir/vault.db"
    started: list[str] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        started.append(scope["type"])

    sent = await lifespan_startup(OAuthVaultMiddleware(inner, settings=settings(url)))
    assert [m["type"] for m in sent] == ["lifespan.startup.failed"]
    assert sent[0]["message"].startswith(
        "oauth_vault_mw: OAUTH_VAULT_STORAGE_URL: the storage could not be set up ("
    )
    assert "\n" not in sent[0]["message"]
    assert str(tmp_path) not in sent[0]["message"]
    assert started == []


def test_config_error_stops_flask_init_app_missing_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    """A storage URL whose driver is not installed: ``ConfigurationError`` naming the setting."""
    from flask import Flask

    monkeypatch.setitem(sys.modules, "redis", None)  # import redis -> ImportError
    monkeypatch.delitem(sys.modules, "oauth_vault_mw.storage.redis", raising=False)
    app = Flask(__name__)
    with pytest.raises(ConfigurationError, match=r"^OAUTH_VAULT_STORAGE_URL: .*\[redis\]"):
        OAuthVault(app, settings=settings("redis://127.0.0.1:9/0"))


def test_storage_setup_error_stops_flask_init_app(tmp_path: Path) -> None:
    from flask import Flask

    url = f"sqlite:///{tmp_path}/no/such/dir/vault.db"
    with pytest.raises(StorageUnavailable, match=r"^OAUTH_VAULT_STORAGE_URL: the storage could"):
        OAuthVault(Flask(__name__), settings=settings(url))
