"""``python -m benchmarks.profile`` (``./scripts/bench --profile``): where the served request
path spends its time.

The Starlette credential endpoint (``benchmarks._apps:vault_app``, ``GET /auth/connections/demo/
credentials`` with a session cookie, SQLite seeded as in :mod:`benchmarks.endpoint`; ``--storage
postgresql|redis``: a throwaway server) runs under
uvicorn[standard] (uvloop, httptools, one worker) on 127.0.0.1; ``wrk`` keeps 50 connections
busy (else the Python load generator, with a note) while ``py-spy record`` samples the served
process (``--function``: one entry per function; idle time left out). Printed: how the samples
split (the ASGI request task, uvicorn's protocol callbacks, the rest), then the top entries by
own time (the function itself on CPU) and by cumulative time within the request task (the
function and what it calls), as a share of all samples. ``--app bare`` profiles the bare
Starlette app under the same load, to tell the server's share from ours.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from oauth_vault_mw.core.cookies import SESSION_COOKIE

from ._common import CREDENTIALS_PATH
from ._http import (
    HOST,
    PYTHON_LOADGEN_NOTE,
    Load,
    Target,
    check_same,
    serve,
    uvicorn_command,
    uvicorn_description,
)
from .backends import BACKENDS, throwaway
from .endpoint import MANY, seeded_env

__all__ = ["Profile", "main", "parse_raw", "profile_endpoint"]

TOP = 25
REQUEST_ROOT = "run_asgi"  # uvicorn's RequestResponseCycle.run_asgi: the request's task
PROTOCOL_FILES = ("uvicorn/protocols/",)
_FRAME = re.compile(r"^(?P<name>.*) \((?P<file>.*?)(?::(?P<line>\d+))?\)$")


@dataclass(frozen=True)
class Profile:
    """Sample counts: per function, own (on top of the stack) and cumulative (anywhere in
    the stack, once per sample) over all samples, and cumulative within the request task."""

    samples: int
    request_samples: int
    protocol_samples: int
    own: collections.Counter[str]
    cumulative: collections.Counter[str]
    request_cumulative: collections.Counter[str]
    own_by_package: collections.Counter[str]


def _short(path: str) -> str:
    """``site-packages/x/y.py`` -> ``x/y.py``; ``.../src/oauth_vault_mw/..`` likewise;
    the standard library's ``lib/python3.x/json/encoder.py`` -> ``json/encoder.py``."""
    for marker in ("site-packages/", "/src/", "/lib/python3."):
        if marker in path:
            tail = path.split(marker, 1)[1]
            return tail.split("/", 1)[1] if marker == "/lib/python3." and "/" in tail else tail
    return path


def _frame(raw: str) -> tuple[str, str]:
    """``name (file:line)`` -> (display key, file)."""
    found = _FRAME.match(raw)
    if found is None:
        return raw, ""
    file = _short(found["file"])
    line = f":{found['line']}" if found["line"] else ""
    return f"{found['name']} ({file}{line})", file


def _name(key: str) -> str:
    """``Class.method (file:line)`` -> ``Class.method``."""
    return key.rsplit(" (", 1)[0]


def _package(file: str) -> str:
    if not file or file.startswith("<"):
        return "(interpreter)"
    head = file.split("/", 1)[0]
    return head.removesuffix(".py") if "/" in file else f"stdlib: {head.removesuffix('.py')}"


def parse_raw(lines: Iterable[str]) -> Profile:
    """py-spy's ``--format raw`` (one ``frame;frame;... count`` line per distinct stack, the
    innermost frame last)."""
    own: collections.Counter[str] = collections.Counter()
    cumulative: collections.Counter[str] = collections.Counter()
    request: collections.Counter[str] = collections.Counter()
    by_package: collections.Counter[str] = collections.Counter()
    samples = request_samples = protocol_samples = 0
    for line in lines:
        stack, _, count_text = line.rstrip("\n").rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame(f) for f in stack.split(";") if f.endswith(")") and "(" in f]
        frames = [f for f in frames if f[1]]  # drop the process and thread pseudo-frames
        if not frames:
            continue
        samples += count
        top_key, top_file = frames[-1]
        own[top_key] += count
        by_package[_package(top_file)] += count
        for key in {k for k, _ in frames}:
            cumulative[key] += count
        roots = [i for i, (k, _) in enumerate(frames) if _name(k).endswith(REQUEST_ROOT)]
        if roots:
            request_samples += count
            for key in {k for k, _ in frames[roots[0] :]}:
                request[key] += count
        elif any(f.startswith(PROTOCOL_FILES) for _, f in frames):
            protocol_samples += count
    return Profile(samples, request_samples, protocol_samples, own, cumulative, request, by_package)


def _pct(n: int, total: int) -> str:
    return f"{100 * n / total:5.1f}%" if total else "  -  "


def render(p: Profile, per_request_us: float | None = None, top: int = TOP) -> str:
    """The tables; with ``per_request_us`` (sampled seconds per request served, in us) each
    entry also shows its approximate time per request."""
    total = p.samples
    other = total - p.request_samples - p.protocol_samples

    def entry(n: int, key: str) -> str:
        cost = "" if per_request_us is None else f"{n * per_request_us:7.1f} us  "
        return f"  {_pct(n, total)}  {cost}{key}"

    cost_header = "" if per_request_us is None else "; us: sampled time per request served"
    out = [
        f"{total} samples (idle left out): request task ({REQUEST_ROOT} and below) "
        f"{_pct(p.request_samples, total).strip()}, uvicorn protocol callbacks outside it "
        f"(parsing, connection handling) {_pct(p.protocol_samples, total).strip()}, "
        f"other (event loop, start-up, GC) {_pct(other, total).strip()}",
    ]
    if per_request_us is not None:
        out.append(
            f"all samples: {total * per_request_us:.1f} us per request served (time the process"
            " was on CPU or waiting for one: 2 cores are shared with wrk and any database)"
        )
    out += ["", f"own time by package (the function on top of the stack{cost_header}):"]
    out += [entry(n, name) for name, n in p.own_by_package.most_common(12)]
    out += ["", f"top {top} by own time (share of all samples{cost_header}):"]
    out += [entry(n, key) for key, n in p.own.most_common(top)]
    out += [
        "",
        f"top {top} by cumulative time within the request task (share of all samples"
        f"{cost_header}):",
    ]
    out += [entry(n, key) for key, n in p.request_cumulative.most_common(top)]
    out += [
        "",
        "reading it: 'Runner.run (asyncio/runners.py)' own time is the event loop itself (uvloop",
        "is C: polling, callbacks, task steps); 'RequestResponseCycle.send' own time is the",
        "socket write (uvloop's transport.write); a C call (sqlite3, AES-GCM, hmac) counts as",
        "its Python caller's own time.",
    ]
    return "\n".join(out)


def _record(pid: int, seconds: int, rate: int, raw: Path) -> None:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        raise RuntimeError("py-spy is not installed: pip install py-spy (the dev extra has it)")
    cmd = [
        py_spy,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(seconds),
        "--rate",
        str(rate),
        "--function",
        "--format",
        "raw",
        "--output",
        str(raw),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode != 0 or not raw.exists():
        raise RuntimeError(f"py-spy failed ({done.returncode}):\n{done.stderr[-2000:]}")


def profile_endpoint(
    *,
    app: str = "vault_app",
    storage: str = "sqlite",
    seconds: int = 10,
    rate: int = 200,
    loadgen: str = "auto",
    raw_out: Path | None = None,
    users: int = 0,
) -> tuple[Profile, float, str]:
    """Serve ``app``, load it with :data:`MANY` connections, record it; (profile, req/s
    under the profiler, load description). ``users``: that many users' cookies in turns
    (as the PostgreSQL and Redis endpoint rows), else one user's."""
    load = Load.choose(loadgen, MANY)
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="oauth-vault-prof-")))
        if storage == "sqlite":
            url = f"sqlite:///{tmp / 'profile.db'}"
        else:
            url = stack.enter_context(throwaway(storage))
        seeded = seeded_env(url, users)
        cookie = seeded.cookie_header
        commands = {app: uvicorn_command(f"benchmarks._apps:{app}")}
        with serve(commands, seeded.env, tmp, CREDENTIALS_PATH, cookie) as servers:
            server = servers[app]
            target = Target(app, server, CREDENTIALS_PATH, cookie)
            check_same([target], seeded.body)
            if users:
                turns = tuple(f"{SESSION_COOKIE}={value}" for value in seeded.others)
                target = Target(app, server, CREDENTIALS_PATH, {}, turns)
            load.run(target, 2)  # warm-up
            raw = raw_out or tmp / "profile.raw"
            result: list[float] = []
            loader = threading.Thread(target=lambda: result.append(load.run(target, seconds + 2)))
            loader.start()
            time.sleep(1)
            try:
                _record(server.proc.pid, seconds, rate, raw)
            finally:
                loader.join()
            server.check_alive()
            with raw.open() as lines:
                profile = parse_raw(lines)
    return profile, result[0] if result else float("nan"), load.describe()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.profile",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--app", choices=("vault_app", "bare_app"), default="vault_app")
    parser.add_argument(
        "--storage",
        choices=("sqlite", *BACKENDS),
        default="sqlite",
        help="the vault app's storage (postgresql, redis: a throwaway server)",
    )
    parser.add_argument("--seconds", type=int, default=10, help="sampling time (default 10)")
    parser.add_argument("--rate", type=int, default=200, help="samples per second (200)")
    parser.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--raw", type=Path, help="keep py-spy's raw stacks in this file")
    parser.add_argument("--quick", action="store_true", help="3 s of sampling")
    parser.add_argument(
        "--users", type=int, default=0, help="that many users' cookies in turns (default: one)"
    )
    args = parser.parse_args(argv)
    seconds = 3 if args.quick else args.seconds
    print(
        f"profile: {args.app} ({CREDENTIALS_PATH}, {args.storage}) under {uvicorn_description()} "
        f"on {HOST}; py-spy record --function at {args.rate} Hz for {seconds} s",
        flush=True,
    )
    profile, rps, loadgen = profile_endpoint(
        app=args.app,
        storage=args.storage,
        seconds=seconds,
        rate=args.rate,
        loadgen=args.loadgen,
        raw_out=args.raw,
        users=args.users,
    )
    print(f"load: {loadgen}, {rps:.0f} req/s while sampled (the sampler pauses the process)")
    if "python" in loadgen:
        print(PYTHON_LOADGEN_NOTE)
    print()
    served = rps * seconds  # requests served while sampled (wrk's rate over its run)
    per_request_us = 1e6 / args.rate / served if served > 0 else None
    print(render(profile, per_request_us))
    return 0


if __name__ == "__main__":
    sys.exit(main())
