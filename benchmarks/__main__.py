"""``python -m benchmarks [--quick] [--loadgen auto|wrk|python] [--profile]``: one run, one table.

Every ratio compares two numbers measured in this same run (the machine is shared and noisy,
so absolute numbers mean little); nothing here asserts on time. Measured as users deploy:
uvicorn[standard] (uvloop, httptools), gunicorn gthread and waitress, ``wrk`` at 2 and at 50
keep-alive connections. Rows: the hot path next to its floor on every backend; the Starlette
credential endpoint next to a bare Starlette app (SQLite at 2 and 50 connections, PostgreSQL
and Redis at 50), the service route next to the user route; the FastAPI example's route next to
a bare FastAPI route; Flask under gunicorn and under waitress next to a bare Flask view; our
Flask lookup next to Flask-Dance's; the refresh sweep next to its floor; the resident set of a
served app over 100,000 distinct sessions. Then issue 12's done-when targets, each with its
measured ratio and PASS/FAIL. A section that needs a missing tool prints a "skipped: <reason>"
row. ``--profile`` runs :mod:`benchmarks.profile` instead (py-spy on the served endpoint).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar

from . import _report as rep
from ._common import HotResult, Skipped, batch_seconds, repeats_for
from ._http import (
    PYTHON_LOADGEN_NOTE,
    EndpointResult,
    gunicorn_description,
    uvicorn_description,
    waitress_description,
)
from ._report import Check, Row, check_at_least, check_at_most
from .endpoint import FEW, MANY, rounds_for, seconds_for
from .memory import RSS_GROWTH_BOUND_MIB, MemoryResult, run_memory
from .sweep import SWEEP_TARGET_SECONDS, SweepResult, run_sweep

STARLETTE = "endpoint: starlette, credentials route"
SERVICE = "endpoint: starlette, service route / user route"
FASTAPI = "endpoint: fastapi example, GET /demo/token"
FLASK = "endpoint: flask, credentials route"
SERVERS = {"gunicorn": "gunicorn gthread 1x8", "waitress": "waitress 8 threads"}
SWEEP_NAME = "sweep: oauth-vault credentials refresh"
MEMORY_NAME = "memory: served app RSS"
SWEEP_TARGET = f"10k < {SWEEP_TARGET_SECONDS:.0f} s"

T = TypeVar("T")


def _conns(n: int) -> str:
    return f"{n} conns"


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


@dataclass
class _Run:
    """What one run measured (``None``: failed or skipped)."""

    quick: bool
    loadgen: str
    sections: _Sections = field(default_factory=_Sections)
    hot_rows: list[Row] = field(default_factory=list)
    peer_rows: list[Row] = field(default_factory=list)
    endpoint_rows: list[Row] = field(default_factory=list)
    other_rows: list[Row] = field(default_factory=list)
    hot: list[HotResult] = field(default_factory=list)
    hot_failed: list[str] = field(default_factory=list)
    peer: HotResult | None = None
    starlette: dict[int, EndpointResult] = field(default_factory=dict)
    service: EndpointResult | None = None
    fastapi: dict[int, EndpointResult] = field(default_factory=dict)
    flask: dict[str, EndpointResult] = field(default_factory=dict)
    storage_endpoints: dict[str, EndpointResult] = field(default_factory=dict)
    sweep: SweepResult | None = None
    memory: MemoryResult | None = None


# -- sections -------------------------------------------------------------------------------------


def _hot_paths(run: _Run) -> None:
    from .hotpath import run_hotpath

    hot_target = f"<= {rep.HOT_TARGET:.1f}x"
    hot = run.sections.run("hot path", lambda: asyncio.run(run_hotpath(quick=run.quick)))
    if hot is None:
        run.hot_rows.append(rep.missing_row("hot path: (Starlette)", "-", hot_target, "FAILED"))
        run.hot_failed.append("starlette")
    else:
        run.hot += hot
    missing = _missing_module("flask")
    if missing is not None:
        run.hot_rows.append(rep.missing_row("flask: hot path", "-", hot_target, missing))
        run.hot_failed.append("flask")
        return
    from .flaskbench import PEER_CASE, run_flask_hot

    flask_hot = run.sections.run("flask hot path", lambda: run_flask_hot(quick=run.quick))
    peer_target = f"< {rep.PEER_TARGET:.1f}x"
    if flask_hot is None:
        run.hot_rows.append(rep.missing_row("flask: hot path", "-", hot_target, "FAILED"))
        run.hot_failed.append("flask")
        run.peer_rows.append(rep.missing_row(PEER_CASE, "sqlite", peer_target, "FAILED"))
        return
    run.hot += flask_hot.hot
    if isinstance(flask_hot.peer, Skipped):
        run.peer_rows.append(rep.skipped_row(flask_hot.peer, peer_target))
    else:
        run.peer = flask_hot.peer
        run.peer_rows.append(rep.peer_row(flask_hot.peer))


def _starlette(run: _Run) -> None:
    from .endpoint import run_endpoint

    target = f">= {rep.ENDPOINT_TARGET:.1f}x"
    result = run.sections.run(
        "starlette endpoint", lambda: run_endpoint(quick=run.quick, loadgen=run.loadgen)
    )
    for conns in (FEW, MANY):
        name = f"{STARLETTE}, {_conns(conns)}"
        if result is None:
            run.endpoint_rows.append(rep.missing_row(name, "sqlite", target, "FAILED"))
        else:
            e = result.endpoint[conns]
            run.starlette[conns] = e
            run.endpoint_rows.append(rep.rps_row(name, "sqlite", e, rep.ENDPOINT_TARGET))
    name = f"{SERVICE}, {_conns(MANY)}"
    if result is None:
        run.endpoint_rows.append(rep.missing_row(name, "sqlite", ">= 0.8x", "FAILED"))
    else:
        run.service = result.service
        run.endpoint_rows.append(rep.rps_row(name, "sqlite", result.service, rep.SERVICE_TARGET))


def _fastapi(run: _Run) -> None:
    target = f">= {rep.ENDPOINT_TARGET:.1f}x"
    missing = _missing_module("fastapi")
    result = None
    if missing is None:
        from .fastapibench import run_fastapi

        result = run.sections.run(
            "fastapi endpoint", lambda: run_fastapi(quick=run.quick, loadgen=run.loadgen)
        )
    for conns in (FEW, MANY):
        name = f"{FASTAPI}, {_conns(conns)}"
        if result is None:
            run.endpoint_rows.append(rep.missing_row(name, "sqlite", target, missing or "FAILED"))
        else:
            run.fastapi[conns] = result[conns]
            run.endpoint_rows.append(
                rep.rps_row(name, "sqlite", result[conns], rep.ENDPOINT_TARGET)
            )


def _flask(run: _Run) -> None:
    from .flaskbench import FLASK_CONNECTIONS

    target = f">= {rep.ENDPOINT_TARGET:.1f}x"
    missing = _missing_module("flask", "gunicorn", "waitress")
    result = None
    if missing is None:
        from .flaskbench import run_flask_endpoint

        result = run.sections.run(
            "flask endpoint", lambda: run_flask_endpoint(quick=run.quick, loadgen=run.loadgen)
        )
    for server, label in SERVERS.items():
        name = f"{FLASK}, {label}, {_conns(FLASK_CONNECTIONS)}"
        if result is None:
            run.endpoint_rows.append(rep.missing_row(name, "sqlite", target, missing or "FAILED"))
        else:
            run.flask[server] = result[server]
            run.endpoint_rows.append(
                rep.rps_row(name, "sqlite", result[server], rep.ENDPOINT_TARGET)
            )


def _backends(run: _Run) -> None:
    """PostgreSQL and Redis: one throwaway server each for its hot-path and endpoint rows."""
    from . import backends
    from .endpoint import run_storage_endpoint

    hot_target = f"<= {rep.HOT_TARGET:.1f}x"
    ep_target = f">= {rep.STORAGE_ENDPOINT_TARGET:.1f}x"
    ep_name = f"{STARLETTE}, {_conns(MANY)}"
    runners = {"postgresql": backends.run_postgres, "redis": backends.run_redis}
    for label in backends.BACKENDS:
        hot: HotResult | None = None
        endpoint: EndpointResult | None = None
        frozen: EndpointResult | None = None
        why = "FAILED"
        try:
            with backends.throwaway(label) as url:
                hot = run.sections.run(f"{label} hot path", partial(runners[label], run.quick, url))
                endpoint = run.sections.run(
                    f"{label} endpoint",
                    partial(run_storage_endpoint, url, quick=run.quick, loadgen=run.loadgen),
                )
                frozen = run.sections.run(
                    f"{label} endpoint, gc.freeze()",
                    partial(
                        run_storage_endpoint,
                        url,
                        quick=run.quick,
                        loadgen=run.loadgen,
                        gc_freeze=True,
                    ),
                )
        except backends.Unavailable as err:
            why = str(err)
        except Exception as exc:
            run.sections.failures.append(f"{label} server: {type(exc).__name__}: {exc}")
        if hot is None:
            run.hot_rows.append(rep.missing_row(backends.CASE, label, hot_target, why))
            run.hot_failed.append(label)
        else:
            run.hot.append(hot)
        if endpoint is None:
            run.endpoint_rows.append(rep.missing_row(ep_name, label, ep_target, why))
        else:
            run.storage_endpoints[label] = endpoint
            run.endpoint_rows.append(
                rep.rps_row(ep_name, label, endpoint, rep.STORAGE_ENDPOINT_TARGET)
            )
        if frozen is not None:  # what docs/deployment.md suggests; not the default
            row = rep.rps_row(f"{ep_name}, gc.freeze()", label, frozen, 0.0)
            run.endpoint_rows.append((*row[:5], "(informative)", "-"))


def _sweep(run: _Run) -> None:
    sweep = run.sections.run("sweep", lambda: run_sweep(quick=run.quick))
    if sweep is None:
        run.other_rows.append(rep.missing_row(SWEEP_NAME, "sqlite", SWEEP_TARGET, "FAILED"))
        return
    run.sweep = sweep
    run.other_rows.append(
        (
            f"{SWEEP_NAME} ({sweep.credentials:,})",
            "sqlite",
            f"{sweep.rate:8.0f} cred/s",
            f"{sweep.floor_rps:8.0f} req/s",
            f"{sweep.ratio:.2f}x",
            SWEEP_TARGET,
            f"{'ok' if sweep.projected < SWEEP_TARGET_SECONDS else 'OVER TARGET'} "
            f"(10k in {sweep.projected:.0f} s)",
        )
    )


def _memory(run: _Run) -> None:
    target = f"<= +{RSS_GROWTH_BOUND_MIB:.0f} MiB"
    memory = run.sections.run("memory", lambda: run_memory(quick=run.quick, loadgen=run.loadgen))
    if memory is None:
        run.other_rows.append(rep.missing_row(MEMORY_NAME, "sqlite", target, "FAILED"))
        return
    run.memory = memory
    m = memory
    run.other_rows.append(
        (
            f"{MEMORY_NAME} ({m.served:,} of {m.sessions:,} sessions, {m.credentials:,} creds)",
            "sqlite",
            f"{m.after_mib:6.1f} MiB after",
            f"{m.before_mib:6.1f} MiB before",
            f"{m.growth_mib:+.1f} MiB",
            target,
            "ok" if m.growth_mib <= RSS_GROWTH_BOUND_MIB else "OVER TARGET",
        )
    )


# -- the done-when table -----------------------------------------------------------------------


def _ratio(e: EndpointResult | None) -> float | None:
    return None if e is None else e.ratio


def _checks(run: _Run) -> list[Check]:
    at_least, at_most = check_at_least, check_at_most
    e = rep.ENDPOINT_TARGET
    checks = [
        at_least(
            f"starlette endpoint / bare starlette, uvicorn[standard], {_conns(MANY)}",
            e,
            _ratio(run.starlette.get(MANY)),
        ),
        at_least(
            f"starlette endpoint / bare starlette, uvicorn[standard], {_conns(FEW)}",
            e,
            _ratio(run.starlette.get(FEW)),
        ),
        at_least(
            f"fastapi example route / bare fastapi, {_conns(MANY)}",
            e,
            _ratio(run.fastapi.get(MANY)),
        ),
        at_least(
            f"fastapi example route / bare fastapi, {_conns(FEW)}", e, _ratio(run.fastapi.get(FEW))
        ),
        at_least(
            f"flask / bare flask, gunicorn gthread 1x8, {_conns(MANY)}",
            e,
            _ratio(run.flask.get("gunicorn")),
        ),
        at_least(
            f"starlette endpoint on postgresql / bare, {_conns(MANY)}",
            rep.STORAGE_ENDPOINT_TARGET,
            _ratio(run.storage_endpoints.get("postgresql")),
        ),
        at_least(
            f"starlette endpoint on redis / bare, {_conns(MANY)}",
            rep.STORAGE_ENDPOINT_TARGET,
            _ratio(run.storage_endpoints.get("redis")),
        ),
    ]
    goal = f"hot path / its floor, every backend (worst of {len(run.hot)})"
    if run.hot:
        worst = max(run.hot, key=lambda r: r.ratio)
        ok = worst.ratio <= rep.HOT_TARGET and not run.hot_failed
        measured = f"{worst.ratio:.2f}x ({worst.storage}: {worst.case.split(': ', 1)[-1]})"
        if run.hot_failed:
            measured += f"; not measured: {', '.join(run.hot_failed)}"
        checks.append(Check(goal, f"<= {rep.HOT_TARGET:.2f}x", measured, ok))
    else:
        checks.append(at_most(goal, rep.HOT_TARGET, None))
    checks.append(
        at_most(
            "flask request path / flask-dance token lookup (20x faster)",
            rep.PEER_DONE_TARGET,
            None if run.peer is None else run.peer.ratio,
        )
    )
    checks.append(
        at_least(
            "sweep rate / its floor (bare token POSTs)",
            rep.SWEEP_FLOOR_TARGET,
            None if run.sweep is None else run.sweep.ratio,
        )
    )
    m = run.memory
    goal = "rss growth, 100,000 sessions / 10,000 credentials"
    if run.quick:
        goal = "rss growth, 10,000 sessions / 1,000 credentials (--quick)"
    bound = f"<= +{RSS_GROWTH_BOUND_MIB:.0f} MiB"
    if m is None:
        checks.append(Check(goal, bound, "-", None))
    else:
        measured = f"{m.growth_mib:+.1f} MiB ({m.before_mib:.0f} -> {m.after_mib:.0f} MiB)"
        complete = m.served >= m.sessions
        if not complete:
            measured += f", only {m.served:,} sessions served"
        checks.append(
            Check(goal, bound, measured, complete and m.growth_mib <= RSS_GROWTH_BOUND_MIB)
        )
    return checks


# -- notes under the table ------------------------------------------------------------------------


def _notes(run: _Run) -> str:
    notes = [
        f"hot path: median (min) cost per call over {repeats_for(run.quick)} interleaved "
        f"batches of ~{batch_seconds(run.quick) * 1000:.0f} ms each;\n"
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
        "    redis: bare redis.asyncio client (held) HGETALL + unseal; throwaway servers",
        "peer: per call a whole Flask request context pushed and popped (app context, session,\n"
        "  teardown) on each app, for a path both route to a view (not run: an unrouted path\n"
        "  costs ~5 us more on each, its NotFound built), SQLite files in the same temp dir;\n"
        "  ours = request.connection_credentials('demo') (OAuthVault, our session cookie); peer =\n"
        "  Flask-Dance 'blueprint.token' with SQLAlchemyStorage(OAuth, db.session,\n"
        "  user=current_user), Flask-Login user from Flask's session cookie, no cache;\n"
        "  ratio = ours / peer (below 1: ours is faster; issue 12 asks for <= 0.05x)",
    ]
    load = next(iter([*run.starlette.values(), *run.fastapi.values(), *run.flask.values()]), None)
    notes.append(
        f"endpoints: ASGI under {uvicorn_description()};\n"
        f"  WSGI under {gunicorn_description()} and under {waitress_description()};\n"
        f"  load: {load.loadgen.rsplit(' -c', 1)[0] if load else '-'} at {FEW} and {MANY} "
        f"keep-alive connections, {seconds_for(run.quick)} s per run, {rounds_for(run.quick)} "
        "rounds, ours/bare alternated in each round after a 1 s warm-up each;\n"
        "  ratio = median ours / median bare; bare = the same framework, a route on the same\n"
        "  path answering the same JSON with the same no-store headers, no vault (Starlette,\n"
        "  FastAPI: GET /demo/token computing the same expiry, behind the example's pages as\n"
        "  in the example, so both pay the same routing; Flask: a view); PostgreSQL and\n"
        "  Redis rows: throwaway servers on 127.0.0.1, round trips included; their\n"
        "  'gc.freeze()' rows (informative, not a target): both apps freeze the collector's\n"
        "  start-up objects once started, as docs/deployment.md suggests"
    )
    for conns, e in sorted(run.starlette.items()):
        notes.append(f"  starlette {conns} conns, req/s ours/bare per round: {e.rounds()}")
    if run.service is not None:
        notes.append(
            f"  service route (same server, Authorization: Bearer <access key>), "
            f"service/user per round: {run.service.rounds()}"
        )
    for label, e in run.storage_endpoints.items():
        notes.append(f"  starlette on {label} {MANY} conns, ours/bare: {e.rounds()}")
    for conns, e in sorted(run.fastapi.items()):
        notes.append(f"  fastapi {conns} conns, ours/bare: {e.rounds()}")
    for server, e in run.flask.items():
        notes.append(f"  flask {SERVERS[server]}, ours/bare: {e.rounds()}")
    if load is not None and "python" in load.loadgen:
        notes.append(PYTHON_LOADGEN_NOTE)
    if run.sweep is not None:
        s = run.sweep
        notes.append(
            f"sweep: {s.credentials:,} credentials expiring in 5 min in a temp SQLite store, "
            "refreshed by AsyncVault\n"
            f"  + the CLI's sweep (concurrency {s.concurrency}, {s.refreshed:,} in "
            f"{s.seconds:.1f} s) against a local fake token endpoint\n"
            "  (uvicorn subprocess); floor = bare httpx POSTs to it at the same concurrency;\n"
            "  10k projected = 10,000 / rate; issue 12 asks for >= 0.8x the floor"
        )
    if run.memory is not None:
        m = run.memory
        notes.append(
            "memory: the Starlette vault app under uvicorn[standard] as above, SQLite seeded with\n"
            f"  {m.sessions:,} sessions and {m.credentials:,} credentials; RSS (VmRSS of the "
            f"server process) {m.started_mib:.1f} MiB after start-up, {m.before_mib:.1f} MiB\n"
            f"  after a warm-up on 1,000 sessions (before), {m.half_mib:.1f} MiB after the "
            f"first half, {m.after_mib:.1f} MiB after all (after), peak {m.peak_mib:.1f} MiB;\n"
            f"  each session's cookie once, {m.served:,} requests in {m.seconds:.1f} s, "
            f"{m.loadgen}; the bound (+{RSS_GROWTH_BOUND_MIB:.0f} MiB) is docs/performance.md's"
        )
    return "\n".join(notes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="short run (smoke test)")
    parser.add_argument(
        "--loadgen",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="load generator for the endpoint benchmarks (auto: wrk if on PATH)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="profile the served endpoint instead (python -m benchmarks.profile)",
    )
    args, rest = parser.parse_known_args(argv)
    if args.profile:
        from .profile import main as profile_main

        extra = ["--quick"] if args.quick else []
        return profile_main([*extra, "--loadgen", args.loadgen, *rest])
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")

    started = time.monotonic()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"oauth_vault_mw benchmarks{' (--quick)' if args.quick else ''}: "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs, load avg {load:.2f}",
        flush=True,
    )
    if args.loadgen != "python" and shutil.which("wrk") is None:
        print(PYTHON_LOADGEN_NOTE, flush=True)
    run = _Run(args.quick, args.loadgen)
    for section in (_hot_paths, _starlette, _fastapi, _flask, _backends, _memory, _sweep):
        section(run)

    print()
    print(
        rep.table(
            [
                *run.hot_rows,
                *(rep.hot_row(r) for r in run.hot),
                *run.peer_rows,
                *run.endpoint_rows,
                *run.other_rows,
            ]
        )
    )
    print()
    print(_notes(run))
    print()
    print(rep.checks_table(_checks(run)))
    print(f"Measured, not asserted. Took {time.monotonic() - started:.0f} s.")
    if run.sections.failures:
        print("\n".join(run.sections.failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
