"""Install the package as a user does, then serve each example from that install.

Run by ``./scripts/install-check`` (and so by ``./scripts/test``, after pytest)::

    .venv/bin/python -m scripts.install_check [--source PATH] [--keep]

One wheel is built from the checkout (``pip wheel``: what PyPI would serve), then five
clean venvs get it with one extra each, never the dev extra, plus the server a user of that
extra installs (no extra brings one):

======================  ==============================  ====================================
venv                    server installed with it        served
======================  ==============================  ====================================
``[postgresql]``        uvicorn                         Starlette example: SQLite, PostgreSQL
``[redis]``             uvicorn                         Starlette example: SQLite, Redis
``[fastapi]``           uvicorn                         FastAPI and Starlette examples: SQLite
``[flask]``             waitress, gunicorn              Flask example: ``flask run``,
                                                        waitress, gunicorn: SQLite
``[otel]``              uvicorn                         Starlette example: SQLite
======================  ==============================  ====================================

Each served app must answer ``GET /`` with 200, ``GET /auth/me`` with 401
``not_authenticated`` JSON and ``GET /metrics`` with the Prometheus text: an import that fails
for a missing runtime dependency fails the check. In each venv, ``OpenTelemetryMetrics`` must
be enabled exactly where ``opentelemetry-api`` is installed (the ``[otel]`` venv, and any
other whose extra brings it) and otherwise stay off with one warning. Then, in the fastapi
and flask venvs, a ``postgresql://`` storage URL (their driver really is missing there) must
stop the server at start-up with one line naming ``OAUTH_VAULT_STORAGE_URL``. PostgreSQL and
Redis are throwaway servers on 127.0.0.1, as the tests start them (tests/support). The
examples run from a copy of ``examples/`` in a temp dir, so nothing is imported from the
checkout. pip's cache is reused; the venvs are made afresh in a temp dir each run
(``--keep`` leaves it for a look).
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.ports import free_port
from tests.support.postgres_server import PostgresServer
from tests.support.redis_server import RedisServer
from tests.support.served import ServerProcess, clean_environ

ROOT = Path(__file__).resolve().parents[1]
DESCRIPTION = "Install the package as a user does, then serve each example from that install."
SETTING = "OAUTH_VAULT_STORAGE_URL"
MISSING_DRIVER_URL = "postgresql://vault@127.0.0.1:9/vault"  # no venv but one has psycopg
CONNECTIONS = [
    {
        "id": "demo",
        "authorize_url": "http://127.0.0.1:9/authorize",
        "token_url": "http://127.0.0.1:9/token",
        "userinfo_url": "http://127.0.0.1:9/userinfo",
        "client_id": "demo",
        "client_secret": "demo-secret",
    }
]
# (label, command line from the venv's bin directory)
STARLETTE = ("starlette example, uvicorn", "uvicorn examples.starlette_app.app:app --port {port}")
FASTAPI = ("fastapi example, uvicorn", "uvicorn examples.fastapi_app.app:app --port {port}")
FLASK_RUN = ("flask example, flask run", "flask --app examples.flask_app.app run --port {port}")
WAITRESS = (
    "flask example, waitress",
    "waitress-serve --listen=127.0.0.1:{port} examples.flask_app.app:app",
)
GUNICORN = (
    "flask example, gunicorn",
    "gunicorn --bind 127.0.0.1:{port} --workers 1 --threads 4 examples.flask_app.app:app",
)


@dataclass(frozen=True)
class Venv:
    extra: str
    servers: tuple[str, ...]  # what a user of the extra installs to serve the app
    runs: tuple[tuple[tuple[str, str], str], ...]  # (server, storage: sqlite/postgresql/redis)
    refuses: tuple[str, str] | None = None  # must stop at start-up on postgresql://
    otel: bool = False  # opentelemetry-api must be installed (the [otel] extra)


VENVS = (
    Venv("postgresql", ("uvicorn",), ((STARLETTE, "sqlite"), (STARLETTE, "postgresql"))),
    Venv("redis", ("uvicorn",), ((STARLETTE, "sqlite"), (STARLETTE, "redis"))),
    Venv("fastapi", ("uvicorn",), ((FASTAPI, "sqlite"), (STARLETTE, "sqlite")), refuses=FASTAPI),
    Venv(
        "flask",
        ("waitress", "gunicorn"),
        ((FLASK_RUN, "sqlite"), (WAITRESS, "sqlite"), (GUNICORN, "sqlite")),
        refuses=GUNICORN,
    ),
    Venv("otel", ("uvicorn",), ((STARLETTE, "sqlite"),), otel=True),
)
# What a venv's python prints: is opentelemetry installed, is the bridge on, did it warn.
OTEL_PROBE = """
import importlib.util, logging
logging.basicConfig(level=logging.WARNING, format="%(message)s")
from oauth_vault_mw.metrics import OpenTelemetryMetrics
installed = importlib.util.find_spec("opentelemetry") is not None
print("installed" if installed else "absent", OpenTelemetryMetrics().enabled)
"""


@dataclass
class Report:
    failures: list[str] = field(default_factory=list)

    def check(self, ok: bool, label: str, detail: str) -> None:
        print(f"{'ok  ' if ok else 'FAIL'} {label}", flush=True)
        if not ok:
            self.failures.append(label)
            print("     | " + detail.rstrip().replace("\n", "\n     | "), flush=True)


def run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603 - pip, venv
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{done.stdout}{done.stderr}")


def build_wheel(source: Path, workdir: Path) -> Path:
    """The wheel of ``source``, built from a copy of what the build reads (a build in the
    checkout would reuse its ``build/`` directory, stale files included)."""
    tree = workdir / "source"
    tree.mkdir()
    shutil.copy2(source / "pyproject.toml", tree)
    shutil.copy2(source / "README.md", tree)
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(source / "src", tree / "src", ignore=skip)
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    run([*pip, "wheel", "--no-deps", "-w", str(workdir / "dist"), str(tree)])
    (wheel,) = (workdir / "dist").glob("oauth_vault_mw-*.whl")
    return wheel


def make_venv(venv: Venv, wheel: Path, base: Path) -> Path:
    """A clean venv with ``wheel[extra]`` and the venv's servers; returns its bin dir.

    The dev venv's pip installs into it (``pip --python``), without compiling bytecode: the
    same resolution as a user's ``pip install`` in a third of the time."""
    path = base / f"venv-{venv.extra}"
    run([sys.executable, "-m", "venv", "--without-pip", str(path)])
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    python = str(path / "bin" / "python")
    run(
        [
            *pip,
            "--python",
            python,
            "install",
            "--no-compile",
            f"{wheel}[{venv.extra}]",
            *venv.servers,
        ]
    )
    return path / "bin"


class Stores:
    """Storage URLs: ``None`` for SQLite (the default, a file in the app's directory); a new
    database on a throwaway PostgreSQL, a flushed throwaway Redis, each started on first use
    and stopped by :meth:`close`."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.stack = ExitStack()
        self.postgres: PostgresServer | None = None
        self.redis: RedisServer | None = None

    def url(self, storage: str) -> str | None:
        if storage == "postgresql":
            if self.postgres is None:
                self.postgres = self.stack.enter_context(PostgresServer.start_new())
            return self.postgres.create_database()
        if storage == "redis":
            if self.redis is None:
                self.redis = RedisServer(self.workdir / "redis")
                self.redis.start()
                self.stack.callback(self.redis.stop)
            self.redis.flush()
            return self.redis.url
        return None

    def close(self) -> None:
        self.stack.close()


class Apps:
    """Fresh project directories, each with a copy of ``examples/``: what a user's project
    looks like, and nothing importable from the checkout."""

    def __init__(self, source: Path, workdir: Path) -> None:
        self.examples = source / "examples"
        self.workdir = workdir
        self.count = 0

    def new(self) -> Path:
        self.count += 1
        directory = self.workdir / f"app{self.count}"
        skip = shutil.ignore_patterns("__pycache__", "*.db*")
        shutil.copytree(self.examples, directory / "examples", ignore=skip)
        return directory


def environment(bin_dir: Path, port: int, storage_url: str | None) -> dict[str, str]:
    extra = {
        "PATH": f"{bin_dir}:{clean_environ({})['PATH']}",
        "OAUTH_VAULT_SECRET_KEY": "install-check-" + "k" * 40,
        "OAUTH_VAULT_ENCRYPTION_KEYS": base64.b64encode(bytes(32)).decode(),
        "OAUTH_VAULT_BASE_URL": f"http://127.0.0.1:{port}",
        "OAUTH_VAULT_CONNECTIONS": json.dumps(CONNECTIONS),
    }
    if storage_url is not None:
        extra[SETTING] = storage_url
    return clean_environ(extra)


def start(command: str, bin_dir: Path, storage_url: str | None, cwd: Path) -> ServerProcess:
    port = free_port()
    program, *args = command.format(port=port).split()
    env = environment(bin_dir, port, storage_url)
    return ServerProcess([str(bin_dir / program), *args], port=port, env=env, cwd=cwd)


def tail(server: ServerProcess) -> str:
    return server.output[-3000:]


def serves(server: ServerProcess) -> tuple[bool, str]:
    """It serves ``/`` (200), ``/auth/me`` (401 ``not_authenticated`` JSON) and ``/metrics``
    (the Prometheus text)."""
    try:
        if server.wait(timeout=60) != "serving":
            return False, f"exited with status {server.returncode}:\n{tail(server)}"
        base = f"http://127.0.0.1:{server.port}"
        home = httpx.get(base + "/", timeout=10)
        me = httpx.get(base + "/auth/me", timeout=10)
        scraped = httpx.get(base + "/metrics", timeout=10)
    except (TimeoutError, httpx.HTTPError) as exc:
        return False, f"{exc!r}\n{tail(server)}"
    ok = (
        home.status_code == 200
        and me.status_code == 401
        and me.headers.get("content-type", "").startswith("application/json")
        and me.json().get("error") == "not_authenticated"
        and scraped.status_code == 200
        and scraped.headers.get("content-type", "").startswith("text/plain; version=0.0.4")
        and "# TYPE oauth_vault_refreshes_total counter" in scraped.text
    )
    answers = (
        f"GET / {home.status_code}, GET /auth/me {me.status_code} {me.text[:200]}, "
        f"GET /metrics {scraped.status_code} {scraped.text[:200]}"
    )
    return ok, f"{answers}\n{tail(server)}"


def stops(server: ServerProcess) -> tuple[bool, str]:
    """It exits non-zero at start-up, with a line naming the setting and the driver."""
    status = server.wait_exit(timeout=60)
    named = any(SETTING in line and "psycopg" in line for line in server.output.splitlines())
    return status not in (None, 0) and named, f"status {status}:\n{tail(server)}"


def otel_bridge(venv: Venv, bin_dir: Path) -> tuple[bool, str]:
    """``OpenTelemetryMetrics`` is on where ``opentelemetry-api`` is installed (it must be in
    the ``[otel]`` venv), else off with one warning naming the extra."""
    done = subprocess.run(  # noqa: S603 - the venv's own python
        [str(bin_dir / "python"), "-c", OTEL_PROBE],
        capture_output=True,
        text=True,
        check=False,
        env=clean_environ({}),
    )
    out = done.stdout.split()
    installed = out[:1] == ["installed"]
    enabled = out[1:] == ["True"]
    warned = "pip install 'oauth-vault-mw[otel]'" in done.stderr
    ok = (
        done.returncode == 0
        and len(out) == 2
        and installed == enabled
        and (installed or warned)
        and (installed or not venv.otel)
    )
    return ok, f"status {done.returncode}: {done.stdout}{done.stderr}"


def check_venv(venv: Venv, bin_dir: Path, stores: Stores, apps: Apps, report: Report) -> None:
    ok, detail = otel_bridge(venv, bin_dir)
    report.check(ok, f"[{venv.extra}] OpenTelemetryMetrics on exactly with opentelemetry", detail)
    for (name, command), storage in venv.runs:
        with start(command, bin_dir, stores.url(storage), apps.new()) as server:
            ok, detail = serves(server)
        report.check(
            ok, f"[{venv.extra}] {name}, {storage}: serves /, /auth/me and /metrics", detail
        )
    if venv.refuses:
        name, command = venv.refuses
        with start(command, bin_dir, MISSING_DRIVER_URL, apps.new()) as server:
            ok, detail = stops(server)
        report.check(ok, f"[{venv.extra}] {name}, postgresql without psycopg: stops", detail)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="install-check", description=DESCRIPTION)
    parser.add_argument("--source", type=Path, default=ROOT, help="the checkout to install")
    parser.add_argument("--keep", action="store_true", help="keep the venvs and apps")
    args = parser.parse_args(argv)
    began = time.monotonic()
    report = Report()
    workdir = Path(tempfile.mkdtemp(prefix="oauth-vault-install-check-"))
    stores = Stores(workdir)
    try:
        source = args.source.resolve()
        wheel = build_wheel(source, workdir)
        bins = [make_venv(venv, wheel, workdir) for venv in VENVS]  # in parallel: slower
        extras = ", ".join(f"[{venv.extra}]" for venv in VENVS)
        print(f"{wheel.name}: venvs {extras} ready in {time.monotonic() - began:.0f} s")
        apps = Apps(source, workdir)
        for venv, bin_dir in zip(VENVS, bins, strict=True):
            check_venv(venv, bin_dir, stores, apps, report)
    finally:
        stores.close()
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    took = time.monotonic() - began
    if report.failures:
        print(f"install check: {len(report.failures)} failed ({took:.0f} s)", file=sys.stderr)
        return 1
    print(f"install check: passed ({took:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
