"""The offline demo, run by ``./scripts/demo``: the testing OpenID provider and an example app.

::

    python -m examples.demo [--fastapi | --flask] [--port 8000] [--provider-port 9000]

The provider is ``oauth_vault_mw.testing.OpenIDProvider``, served by uvicorn from a thread of
this process, with one page in front of its authorization endpoint: "Log in as: ____", so you
pick the name you log in with (no password). Access tokens live ``DEMO_ACCESS_TOKEN_TTL``
seconds (default 30), so refreshes show within a minute. The app is configured from the
``OAUTH_VAULT_*`` environment as its README says; this sets the connections, base URL and
storage (keys come from the environment: ``./scripts/demo`` keeps them in ``.runtime/``).
Logging is at INFO: the vault's "credential refreshed connection=... user=..." lines show.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route

from examples import pages
from oauth_vault_mw.testing import OpenIDProvider

CONNECTIONS = ("demo", "other")  # two connections at one provider: log in, then connect more
APPS = {
    "starlette": "examples.starlette_app.app:app",
    "fastapi": "examples.fastapi_app.app:app",
    "flask": "examples.flask_app.app:app",
}

LOGIN_FORM = """<p>This is the demo's OpenID provider. A real provider asks for a password
and consent here; this one logs in whoever you name.</p>
<form method="get" action="/authorize">{hidden}
<label>Log in as: <input id="name" name="name" value="Alice Example" autofocus required
maxlength="64"></label> <button id="approve" type="submit">Log in</button></form>"""


def provider_app(provider: OpenIDProvider) -> Starlette:
    """The provider as an ASGI app, with a "log in as" form before it approves."""

    async def authorize(request: Request) -> Response:
        params = dict(request.query_params)
        name = " ".join(params.pop("name", "").split())[:64]
        if not name:
            hidden = "".join(
                f'<input type="hidden" name="{pages.e(k)}" value="{pages.e(v)}">'
                for k, v in params.items()
            )
            body = LOGIN_FORM.format(hidden=hidden)
            return HTMLResponse(pages.page("Log in to the demo provider", body))
        login = re.sub(r"[^a-z0-9]+", ".", name.lower()).strip(".") or "user"
        provider.login_as(login, name=name, email=f"{login}@example.test")
        params["login_hint"] = login
        reply = provider.handle("GET", f"{provider.issuer}/authorize?{urlencode(params)}")
        return Response(reply.body, reply.status, headers=dict(reply.headers))

    return Starlette(routes=[Route("/authorize", authorize), Mount("/", app=provider.app)])


def app_environ(provider: OpenIDProvider, base_url: str) -> dict[str, str]:
    """The example app's connections and base URL (registers the clients at the provider)."""
    conns = [provider.connection(c, base_url=base_url) for c in CONNECTIONS]
    return {"OAUTH_VAULT_BASE_URL": base_url, "OAUTH_VAULT_CONNECTIONS": json.dumps(conns)}


@contextlib.contextmanager
def serving(app: Any, host: str, port: int) -> Iterator[uvicorn.Server]:
    """Serve an ASGI app with uvicorn from a daemon thread while the block runs."""
    # No log_level: uvicorn would set it on its loggers, for the app's server too.
    config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise SystemExit(f"demo: nothing serves on {host}:{port} (is the port in use?)")
        time.sleep(0.02)
    try:
        yield server
    finally:
        server.should_exit = True
        thread.join(10)


def main() -> None:
    parser = argparse.ArgumentParser(prog="scripts/demo", description=__doc__.split("\n")[0])
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--fastapi", action="store_const", const="fastapi", dest="framework")
    which.add_argument("--flask", action="store_const", const="flask", dest="framework")
    parser.add_argument("--port", type=int, default=8000, help="the app's port (8000)")
    parser.add_argument("--provider-port", type=int, default=9000, help="the provider's (9000)")
    args = parser.parse_args()
    framework = args.framework or "starlette"
    host = "127.0.0.1"

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per provider call

    ttl = int(os.environ.get("DEMO_ACCESS_TOKEN_TTL", "30"))
    issuer = f"http://{host}:{args.provider_port}"
    provider = OpenIDProvider(issuer=issuer, access_token_ttl=ttl)
    base_url = f"http://{host}:{args.port}"
    os.environ.update(app_environ(provider, base_url))
    os.environ.setdefault("OAUTH_VAULT_STORAGE_URL", "sqlite:///.runtime/demo.db")
    with serving(provider_app(provider), host, args.provider_port):
        run_app(framework, host, args.port, ttl, issuer)


def run_app(framework: str, host: str, port: int, ttl: int, issuer: str) -> None:
    base_url = f"http://{host}:{port}"
    print(
        f"\n  Open {base_url} and log in with any name (no password).\n"
        f"  The provider is at {issuer}; its access tokens last {ttl} s, and the vault\n"
        "  refreshes one past half its life when the app calls the API (the userinfo link).\n"
        "  Ctrl-C stops the demo.\n",
        flush=True,
    )
    if framework == "flask":
        from examples.flask_app.app import app as flask_app

        flask_app.run(host=host, port=port, threaded=True)
    else:
        uvicorn.run(APPS[framework], host=host, port=port, log_config=None)


if __name__ == "__main__":
    main()
