"""``python -m benchmarks [--quick] [--loadgen auto|wrk|python]``: one run, one table.

Every ratio compares two numbers measured in this same run (the machine is shared and noisy,
so absolute numbers mean little); nothing here asserts on time. Targets: the hot path within
1.5x of its floor (Starlette, Flask, PostgreSQL, Redis), the credential endpoint at least 0.6x
a bare app under the same server (Starlette under uvicorn, Flask under waitress), the service
route at least 0.8x the user route, our Flask lookup faster than Flask-Dance's, the refresh
sweep through 10,000 expiring credentials in under 60 s. A section that needs a missing tool
prints a "skipped: <reason>" row.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import platform
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import TypeVar

from ._common import HotResult, Skipped, batch_seconds, repeats_for
from ._http import EndpointResult, uvicorn_description, waitress_description
from .sweep import SWEEP_TARGET_SECONDS, SweepResult, run_sweep

HOT_TARGET = 1.5
ENDPOINT_TARGET = 0.6
SERVICE_TARGET = 0.8
PEER_TARGET = 1.0

ENDPOINT_NAME = "endpoint: GET /auth/connections/demo/credentials"
SERVICE_NAME = "endpoint: service route / user route (Bearer key)"
FLASK_ENDPOINT_NAME = "flask endpoint: GET /auth/connections/demo/credentials"
SWEEP_NAME = "sweep: oauth-vault credentials refresh"
SWEEP_TARGET = f"10k < {SWEEP_TARGET_SECONDS:.0f} s"
HEADERS = ("benchmark", "storage", "ours", "floor / bare / peer", "ratio", "target", "verdict")

Row = tuple[str, ...]
T = TypeVar("T")


def _us(median: float, minimum: float) -> str:
    return f"{median:8.2f} us (min {minimum:.2f})"


def _hot_row(r: HotResult) -> Row:
    return (
        r.case,
        r.storage,
        _us(r.ours.median_us, r.ours.min_us),
        _us(r.floor.median_us, r.floor.min_us),
        f"{r.ratio:.2f}x",
        f"<= {HOT_TARGET:.1f}x",
        "ok" if r.ratio <= HOT_TARGET else "OVER TARGET",
    )


def _peer_row(r: HotResult) -> Row:
    return (
        r.case,
        r.storage,
        _us(r.ours.median_us, r.ours.min_us),
        _us(r.floor.median_us, r.floor.min_us),
        f"{r.ratio:.2f}x",
        f"< {PEER_TARGET:.1f}x",
        "ok (faster)" if r.ratio < PEER_TARGET else "SLOWER THAN PEER",
    )


def _rps_row(name: str, e: EndpointResult, target: float) -> Row:
    return (
        name,
        "sqlite",
        f"{e.ours:8.0f} req/s",
        f"{e.bare:8.0f} req/s",
        f"{e.ratio:.2f}x",
        f">= {target:.1f}x",
        "ok" if e.ratio >= target else "UNDER TARGET",
    )


def _sweep_row(s: SweepResult) -> Row:
    return (
        f"{SWEEP_NAME} ({s.credentials:,})",
        "sqlite",
        f"{s.rate:8.0f} cred/s",
        f"{s.floor_rps:8.0f} req/s",
        f"{s.ratio:.2f}x",
        SWEEP_TARGET,
        f"{'ok' if s.projected < SWEEP_TARGET_SECONDS else 'OVER TARGET'} "
        f"(10k in {s.projected:.0f} s)",
    )


def _missing_row(name: str, storage: str, target: str, verdict: str) -> Row:
    return (name, storage, "-", "-", "-", target, verdict)


def _skipped_row(s: Skipped, target: str) -> Row:
    return _missing_row(s.case, s.storage, target, s.reason)


def _table(rows: list[Row]) -> str:
    widths = [max(len(row[i]) for row in [HEADERS, *rows]) for i in range(len(HEADERS))]

    def line(row: Row) -> str:
        return "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(HEADERS), rule, *(line(r) for r in rows)])


class _Sections:
    """Runs each section; a failure is remembered (printed and exit 1 at the end), the other
    sections still run and the table is still printed."""

    def __init__(self) -> None:
        self.failures: list[str] = []

    def run(self, what: str, fn: Callable[[], T]) -> T | None:
        try:
            return fn()
        except Exception as exc:
            self.failures.append(f"{what} benchmark failed: {type(exc).__name__}: {exc}")
            return None


def _missing_module(*names: str) -> str | None:
    for name in names:
        if importlib.util.find_spec(name) is None:
            return f"skipped: {name} is not installed"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short run (smoke test)")
    parser.add_argument(
        "--loadgen", choices=("auto", "wrk", "python"), default="auto",
        help="load generator for the endpoint benchmarks (auto: wrk if on PATH)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    quick: bool = args.quick

    started = time.monotonic()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"oauth_vault_mw benchmarks{' (--quick)' if quick else ''}: "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs, load avg {load:.2f}",
        flush=True,
    )
    sections = _Sections()
    rows: list[Row] = []
    hot_target = f"<= {HOT_TARGET:.1f}x"

    # -- hot paths: Starlette, Flask, PostgreSQL and Redis ----------------------------------
    from .hotpath import run_hotpath

    hot = sections.run("hot path", lambda: asyncio.run(run_hotpath(quick=quick)))
    if hot is None:
        rows.append(_missing_row("hot path: (Starlette)", "-", hot_target, "FAILED"))
    else:
        rows += [_hot_row(r) for r in hot]

    flask_missing = _missing_module("flask")
    peer_row: Row | None = None
    if flask_missing is not None:
        rows.append(_missing_row("flask: hot path", "-", hot_target, flask_missing))
    else:
        from .flaskbench import PEER_CASE, run_flask_hot

        flask_hot = sections.run("flask hot path", lambda: run_flask_hot(quick=quick))
        if flask_hot is None:
            rows.append(_missing_row("flask: hot path", "-", hot_target, "FAILED"))
            peer_row = _missing_row(PEER_CASE, "sqlite", f"< {PEER_TARGET:.1f}x", "FAILED")
        else:
            rows += [_hot_row(r) for r in flask_hot.hot]
            peer = flask_hot.peer
            peer_row = (
                _skipped_row(peer, f"< {PEER_TARGET:.1f}x")
                if isinstance(peer, Skipped)
                else _peer_row(peer)
            )

    from .backends import CASE as BACKEND_CASE
    from .backends import run_postgres, run_redis

    for label, backend in (("postgresql", run_postgres), ("redis", run_redis)):
        result = sections.run(f"{label} hot path", partial(backend, quick))
        if result is None:
            rows.append(_missing_row(BACKEND_CASE, label, hot_target, "FAILED"))
        elif isinstance(result, Skipped):
            rows.append(_skipped_row(result, hot_target))
        else:
            rows.append(_hot_row(result))
    if peer_row is not None:
        rows.append(peer_row)

    # -- throughput: Starlette under uvicorn (user route, bare, service route), Flask ---------
    from .endpoint import run_endpoint

    starlette = sections.run("endpoint", lambda: run_endpoint(quick=quick, loadgen=args.loadgen))
    if starlette is None:
        rows.append(_missing_row(ENDPOINT_NAME, "sqlite", f">= {ENDPOINT_TARGET:.1f}x", "FAILED"))
        rows.append(_missing_row(SERVICE_NAME, "sqlite", f">= {SERVICE_TARGET:.1f}x", "FAILED"))
    else:
        rows.append(_rps_row(ENDPOINT_NAME, starlette.endpoint, ENDPOINT_TARGET))
        rows.append(_rps_row(SERVICE_NAME, starlette.service, SERVICE_TARGET))

    flask_endpoint: EndpointResult | None = None
    flask_target = f">= {ENDPOINT_TARGET:.1f}x"
    missing = _missing_module("flask", "waitress")
    if missing is not None:
        rows.append(_missing_row(FLASK_ENDPOINT_NAME, "sqlite", flask_target, missing))
    else:
        from .flaskbench import run_flask_endpoint

        flask_endpoint = sections.run(
            "flask endpoint", lambda: run_flask_endpoint(quick=quick, loadgen=args.loadgen)
        )
        if flask_endpoint is None:
            rows.append(_missing_row(FLASK_ENDPOINT_NAME, "sqlite", flask_target, "FAILED"))
        else:
            rows.append(_rps_row(FLASK_ENDPOINT_NAME, flask_endpoint, ENDPOINT_TARGET))

    # -- the refresh sweep -------------------------------------------------------------------
    sweep = sections.run("sweep", lambda: run_sweep(quick=quick))
    if sweep is not None:
        rows.append(_sweep_row(sweep))
    else:
        rows.append(_missing_row(SWEEP_NAME, "sqlite", SWEEP_TARGET, "FAILED"))

    print()
    print(_table(rows))
    print()
    print(
        f"hot path: median (min) cost per call over {repeats_for(quick)} interleaved batches of "
        f"~{batch_seconds(quick) * 1000:.0f} ms each;\n"
        "  ratio = ours / floor, both medians from this run; the vault has the service layer\n"
        "  attached (as the middleware and OAuthVault attach it): each read is also audited.\n"
        "  Floors:\n"
        "  - get_connection_credentials: storage.get_credential(key) + open_record(sealer, rec)\n"
        "  - connection_credentials(request): the same + the signed cookie's HMAC checked,\n"
        "    its id hashed, storage.get_session(hash, now) (ours also parses the cookie header,\n"
        "    skips the HMAC of a cookie value it verified before: the age is still checked; and\n"
        "    reads the session and the credential in one statement where the storage can)\n"
        "  - flask: the same two floors on the sync storage; request.connection_credentials()\n"
        "    in a pushed app/request context whose user cache is cleared before each call\n"
        "  - postgresql: bare psycopg AsyncConnection (held) SELECT sealed ... + unseal;\n"
        "    redis: bare redis.asyncio client (held) HGETALL + unseal; throwaway servers"
    )
    print(
        "peer: per call a whole Flask request context pushed and popped (app context, session,\n"
        "  teardown) on each app, SQLite files in the same temp dir; ours =\n"
        "  request.connection_credentials('demo') (OAuthVault, our session cookie); peer =\n"
        "  Flask-Dance 'blueprint.token' with SQLAlchemyStorage(OAuth, db.session,\n"
        "  user=current_user), Flask-Login user from Flask's session cookie, no cache;\n"
        "  ratio = ours / peer (below 1: ours is faster)"
    )
    if starlette is not None:
        e, s = starlette.endpoint, starlette.service
        print(
            f"endpoint: {uvicorn_description()};\n"
            f"  load: {e.loadgen}, {e.seconds} s per run, user/bare/service alternated, "
            f"req/s ours/bare per round: {e.rounds()};\n"
            "  ratio = median ours / median bare (bare: Starlette route returning the same "
            "dict)\n"
            f"  service route (same server, Authorization: Bearer <access key>) req/s "
            f"service/user per round: {s.rounds()}"
        )
    if flask_endpoint is not None:
        print(
            f"flask endpoint: {waitress_description()} for each app;\n"
            f"  load: {flask_endpoint.loadgen}, {flask_endpoint.seconds} s per run, a/b "
            f"alternated, req/s ours/bare per round: {flask_endpoint.rounds()};\n"
            "  ratio = median ours / median bare (bare: a Flask view returning the same dict "
            "with the same no-store headers)"
        )
    if sweep is not None:
        print(
            f"sweep: {sweep.credentials:,} credentials expiring in 5 min in a temp SQLite store, "
            "refreshed by AsyncVault\n"
            f"  + the CLI's sweep (concurrency {sweep.concurrency}, {sweep.refreshed:,} in "
            f"{sweep.seconds:.1f} s) against a local fake token endpoint\n"
            "  (uvicorn subprocess); floor = bare httpx POSTs to it at the same concurrency;\n"
            "  10k projected = 10,000 / rate"
        )
    print(
        f"targets: hot path <= {HOT_TARGET}x its floor; endpoints >= {ENDPOINT_TARGET}x the bare "
        f"app; service route >= {SERVICE_TARGET}x the user route; ours < {PEER_TARGET}x "
        f"Flask-Dance; sweep {SWEEP_TARGET}. Measured, not asserted. "
        f"Took {time.monotonic() - started:.0f} s."
    )
    if sections.failures:
        print("\n".join(sections.failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
