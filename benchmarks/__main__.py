"""``python -m benchmarks [--quick] [--loadgen auto|wrk|python]``: one run, one table.

Every ratio compares two numbers measured in this same run (the machine is shared and noisy,
so absolute numbers mean little); nothing here asserts on time. Targets: the hot path within
1.5x of its floor, the credential endpoint at least 0.6x a bare Starlette endpoint, the
refresh sweep through 10,000 expiring credentials in under 60 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time

from .endpoint import EndpointResult, run_endpoint, server_description
from .hotpath import HotResult, batch_seconds, run_hotpath
from .sweep import SWEEP_TARGET_SECONDS, SweepResult, run_sweep

HOT_TARGET = 1.5
ENDPOINT_TARGET = 0.6

ENDPOINT_NAME = "endpoint: GET /auth/connections/demo/credentials"
SWEEP_NAME = "sweep: oauth-vault credentials refresh"
SWEEP_TARGET = f"10k < {SWEEP_TARGET_SECONDS:.0f} s"
HEADERS = ("benchmark", "storage", "ours", "floor / bare", "ratio", "target", "verdict")


def _us(median: float, minimum: float) -> str:
    return f"{median:8.2f} us (min {minimum:.2f})"


def _hot_row(r: HotResult) -> tuple[str, ...]:
    return (
        f"hot path: {r.case}",
        r.storage,
        _us(r.ours.median_us, r.ours.min_us),
        _us(r.floor.median_us, r.floor.min_us),
        f"{r.ratio:.2f}x",
        f"<= {HOT_TARGET:.1f}x",
        "ok" if r.ratio <= HOT_TARGET else "OVER TARGET",
    )


def _endpoint_row(e: EndpointResult) -> tuple[str, ...]:
    return (
        ENDPOINT_NAME,
        "sqlite",
        f"{e.ours:8.0f} req/s",
        f"{e.bare:8.0f} req/s",
        f"{e.ratio:.2f}x",
        f">= {ENDPOINT_TARGET:.1f}x",
        "ok" if e.ratio >= ENDPOINT_TARGET else "UNDER TARGET",
    )


def _sweep_row(s: SweepResult) -> tuple[str, ...]:
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


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in [HEADERS, *rows]) for i in range(len(HEADERS))]

    def line(row: tuple[str, ...]) -> str:
        return "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(HEADERS), rule, *(line(r) for r in rows)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short run (smoke test)")
    parser.add_argument(
        "--loadgen", choices=("auto", "wrk", "python"), default="auto",
        help="load generator for the endpoint benchmark (auto: wrk if on PATH)",
    )  # fmt: skip
    args = parser.parse_args(argv)

    started = time.monotonic()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"oauth_vault_mw benchmarks{' (--quick)' if args.quick else ''}: "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs, load avg {load:.2f}",
        flush=True,
    )
    hot = asyncio.run(run_hotpath(quick=args.quick))
    endpoint: EndpointResult | None = None
    failure = ""
    try:
        endpoint = run_endpoint(quick=args.quick, loadgen=args.loadgen)
    except Exception as exc:  # still print the hot-path rows, then fail
        failure = f"endpoint benchmark failed: {type(exc).__name__}: {exc}"

    sweep: SweepResult | None = None
    try:
        sweep = run_sweep(quick=args.quick)
    except Exception as exc:  # still print the other rows, then fail
        why = f"sweep benchmark failed: {type(exc).__name__}: {exc}"
        failure = f"{failure}\n{why}" if failure else why

    rows = [_hot_row(r) for r in hot]
    if endpoint is not None:
        rows.append(_endpoint_row(endpoint))
    else:
        rows.append(
            (ENDPOINT_NAME, "sqlite", "-", "-", "-", f">= {ENDPOINT_TARGET:.1f}x", "FAILED")
        )
    if sweep is not None:
        rows.append(_sweep_row(sweep))
    else:
        rows.append((SWEEP_NAME, "sqlite", "-", "-", "-", SWEEP_TARGET, "FAILED"))
    print()
    print(_table(rows))
    print()
    first = hot[0].ours
    print(
        f"hot path: median (min) cost per call over {first.repeats} interleaved batches of "
        f"~{batch_seconds(args.quick) * 1000:.0f} ms each;\n"
        "  ratio = ours / floor, both medians from this run. Floors:\n"
        "  - get_connection_credentials: storage.get_credential(key) + open_record(sealer, rec)\n"
        "  - connection_credentials(request): the same + the signed cookie verified, its id\n"
        "    hashed, storage.get_session(hash, now) (ours also parses the cookie header)"
    )
    if endpoint is not None:
        rounds = ", ".join(
            f"{o:.0f}/{b:.0f}" for o, b in zip(endpoint.ours_rps, endpoint.bare_rps, strict=True)
        )
        print(
            f"endpoint: {server_description()};\n"
            f"  load: {endpoint.loadgen}, {endpoint.seconds} s per run, a/b alternated, "
            f"req/s ours/bare per round: {rounds};\n"
            "  ratio = median ours / median bare (bare: Starlette route returning the same dict)"
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
        f"targets: hot path <= {HOT_TARGET}x its floor; endpoint >= {ENDPOINT_TARGET}x bare "
        f"Starlette; sweep {SWEEP_TARGET}. Measured, not asserted. "
        f"Took {time.monotonic() - started:.0f} s."
    )
    if failure:
        print(failure, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
