"""The FastAPI example's route under uvicorn[standard] against a bare FastAPI route.

(a) ``examples.fastapi_app.app:app``, as shipped, configured through ``OAUTH_VAULT_*`` on a
SQLite file seeded here: ``GET /demo/token`` takes the connection's credentials as a dependency
(``Depends(ConnectionCredentials("demo", min_validity=30))``, the session cookie) and answers the
token's expiry and scope; (b) ``benchmarks._fastapi_apps:bare_app``: the same route and answer
without the vault, in the example's route table (its pages matched first, as in the example;
answering placeholders). Same uvicorn settings as :mod:`benchmarks.endpoint`; a/b alternated at 2,
then at 50 keep-alive connections. Reported: (a) / (b), medians of the rounds (target >= 0.6).
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path

from oauth_vault_mw import AsyncVault
from oauth_vault_mw.core.cookies import SESSION_COOKIE

from ._common import (
    CONNECTION,
    CONNECTION_ID,
    USER_ID,
    make_settings,
    new_encryption_key,
    new_secret_key,
    seed,
)
from ._http import (
    EndpointResult,
    Load,
    Target,
    alternate,
    get,
    serve,
    subprocess_env,
    uvicorn_command,
)
from .endpoint import FEW, MANY, rounds_for, seconds_for

__all__ = ["FASTAPI_PATH", "run_fastapi"]

FASTAPI_PATH = "/demo/token"
BASE_URL = "http://127.0.0.1:8000"


async def _seed(url: str, secret: str, enc: str) -> tuple[str, dict[str, float | str | None]]:
    vault = AsyncVault(make_settings(url, secret, enc))
    try:
        seeded = await seed(vault)
        creds = await vault.get_connection_credentials(CONNECTION_ID, USER_ID)
        await seeded.service.close()
    finally:
        await vault.aclose()
    status = {"connection_id": CONNECTION_ID, "expires_at": creds.expires_at, "scope": creds.scope}
    return seeded.cookie_value, status


def _check(targets: list[Target]) -> None:
    """Both answer 200 with the same JSON (``expires_in`` within a few seconds) and the same
    ``Cache-Control``."""
    seen = []
    for target in targets:
        status, headers, body = get(target)
        if status != 200:
            raise RuntimeError(f"{target.name} answered {status} {body[:300]!r}")
        data = json.loads(body)
        seen.append((data, headers.get("cache-control")))
    (a, a_cache), (b, b_cache) = seen
    if (
        a.keys() != b.keys()
        or a["connection_id"] != b["connection_id"]
        or a["scope"] != b["scope"]
        or abs(a["expires_in"] - b["expires_in"]) > 5
        or a_cache != b_cache
    ):
        raise RuntimeError(f"answers differ: {seen}")


def run_fastapi(*, quick: bool, loadgen: str = "auto") -> dict[int, EndpointResult]:
    seconds, rounds = seconds_for(quick), rounds_for(quick)
    load = Load.choose(loadgen, FEW)
    secret, enc = new_secret_key(), new_encryption_key()
    with tempfile.TemporaryDirectory(prefix="oauth-vault-bench-") as tmp_name:
        tmp = Path(tmp_name)
        url = f"sqlite:///{tmp / 'fastapi.db'}"
        cookie_value, status = asyncio.run(_seed(url, secret, enc))
        env = subprocess_env(
            OAUTH_VAULT_SECRET_KEY=secret,
            OAUTH_VAULT_ENCRYPTION_KEYS=enc,
            OAUTH_VAULT_BASE_URL=BASE_URL,
            OAUTH_VAULT_STORAGE_URL=url,
            OAUTH_VAULT_CONNECTIONS=json.dumps([CONNECTION]),
            BENCH_TOKEN_STATUS=json.dumps(status),
        )
        cookie = {"Cookie": f"{SESSION_COOKIE}={cookie_value}"}
        commands = {
            "example_app": uvicorn_command("examples.fastapi_app.app:app"),
            "bare_fastapi_app": uvicorn_command("benchmarks._fastapi_apps:bare_app"),
        }
        with serve(commands, env, tmp, FASTAPI_PATH, cookie) as servers:
            ours = Target("ours", servers["example_app"], FASTAPI_PATH, cookie)
            bare = Target("bare", servers["bare_fastapi_app"], FASTAPI_PATH, cookie)
            _check([ours, bare])
            by_conns = {
                conns: alternate(load.at(conns), [ours, bare], seconds, rounds)
                for conns in (FEW, MANY)
            }
    return {
        conns: EndpointResult(rps["ours"], rps["bare"], load.at(conns).describe(), seconds)
        for conns, rps in by_conns.items()
    }
