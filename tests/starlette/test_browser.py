"""A real browser (Debian's chromium through Playwright) logs in through the provider's page."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from oauth_vault_mw import AsyncVault
from tests.support.oidc_provider import DevProvider
from tests.support.suite import settings_for

from .conftest import make_app

pytestmark = [pytest.mark.integration, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-background-networking",
                 "--disable-component-update", "--disable-gpu", "--no-first-run"]  # fmt: skip


@pytest.fixture
def served_app(provider: DevProvider, server_port: int) -> Iterator[str]:
    base = f"http://127.0.0.1:{server_port}"
    vault = AsyncVault(settings_for(provider, base=base, storage_url="memory://"))
    config = uvicorn.Config(
        make_app(vault), host="127.0.0.1", port=server_port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(10)


def test_login_in_a_real_browser(served_app: str) -> None:
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (scripts/test does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{served_app}/auth/login/demo?return_to=/profile/demo")
            page.fill("#login", "browser-user")
            page.click("#submit")
            page.wait_for_url(f"{served_app}/profile/demo", timeout=15_000)
            body = json.loads(page.inner_text("body"))
            assert body["access_token"]
            cookies = {c["name"]: c for c in page.context.cookies()}
            session = cookies["oauth_vault_session"]
            assert session["httpOnly"] is True
            assert session["sameSite"] == "Lax"
            assert session["path"] == "/"
            assert body["access_token"] not in session["value"]
            me = page.goto(f"{served_app}/auth/me")
            assert me is not None
            assert me.status == 200
            assert json.loads(page.inner_text("body"))["connections"][0]["status"] == "active"
        finally:
            browser.close()
