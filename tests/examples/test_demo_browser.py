"""The demo in a real browser (Debian's chromium through Playwright), served as
``./scripts/demo`` serves it: the testing provider with its "log in as" page
(``examples/demo.py``) and the Starlette example, each by uvicorn on a free loopback port.

Log in as a named person, see the name; wait past half the token's life, call the API, see
the refresh counted and the countdown start again (twice); disconnect and see the connection
gone; log out; a login the provider refuses ends on a readable page. Screenshots of each step
go to ``artifacts/demo-browser/`` (git-ignored; ``DEMO_SCREENSHOTS`` names another directory).
Access tokens live ``DEMO_BROWSER_TOKEN_TTL`` seconds (default 4).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pytest

from examples import demo
from oauth_vault_mw.testing import OpenIDProvider
from tests.examples.loading import examples_configured
from tests.support.ports import free_port

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.integration, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-background-networking",
                 "--disable-component-update", "--disable-gpu", "--no-first-run"]  # fmt: skip
TTL = int(os.environ.get("DEMO_BROWSER_TOKEN_TTL", "4"))
ROOT = Path(__file__).resolve().parents[2]
SHOTS = Path(os.environ.get("DEMO_SCREENSHOTS") or ROOT / "artifacts" / "demo-browser")
NAME = "Ada Lovelace"


class Demo:
    def __init__(self, base: str, provider: OpenIDProvider) -> None:
        self.base, self.provider = base, provider


@pytest.fixture
def served_demo(monkeypatch: pytest.MonkeyPatch) -> Iterator[Demo]:
    provider_port, app_port = free_port(), free_port()
    provider = OpenIDProvider(issuer=f"http://127.0.0.1:{provider_port}", access_token_ttl=TTL)
    base = f"http://127.0.0.1:{app_port}"
    environ = demo.app_environ(provider, base)
    with examples_configured(monkeypatch, []) as load:  # keys, memory:// storage
        for key, value in environ.items():  # the demo's connections and base URL
            monkeypatch.setenv(key, value)
        app: ModuleType = load("examples.starlette_app.app")
        with (
            demo.serving(demo.provider_app(provider), "127.0.0.1", provider_port),
            demo.serving(app.app, "127.0.0.1", app_port),
        ):
            yield Demo(base, provider)


def countdown(page: Page) -> tuple[float, int]:
    """The demo connection's expiry (epoch) and the seconds its countdown shows."""
    cell = page.locator("#connection-demo [data-expires]")
    text = cell.inner_text()
    found = re.fullmatch(r"expires in (\d+) s", text)
    assert found, text
    return float(cell.get_attribute("data-expires") or 0), int(found.group(1))


def refreshes(page: Page) -> int:
    return int(page.locator("#connection-demo .refreshes").get_attribute("data-count") or -1)


def test_demo_in_a_real_browser(served_demo: Demo) -> None:
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (scripts/test does)")
    from playwright.sync_api import sync_playwright

    base, provider = served_demo.base, served_demo.provider
    SHOTS.mkdir(parents=True, exist_ok=True)

    def shot(page: Page, name: str) -> None:
        page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)

    print(f"\nscreenshots: {SHOTS}")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 700})
            page.goto(base + "/")
            assert "You are not logged in." in page.inner_text("body")
            shot(page, "01-logged-out")

            # The provider's page: who logs in.
            page.click("text=Log in with demo")
            page.wait_for_selector("#name")
            page.fill("#name", NAME)
            shot(page, "02-provider-log-in-as")
            page.click("#approve")
            page.wait_for_url(base + "/?flash=logged_in")
            assert page.inner_text("#user-name") == NAME
            assert page.inner_text("#flash") == "You are logged in."
            assert page.inner_text("#connection-demo .status") == "active"
            assert refreshes(page) == 0
            expires, shown = countdown(page)
            assert 0 < shown <= TTL
            time.sleep(1.2)
            assert countdown(page)[1] < shown  # it counts down in the page
            shot(page, "03-logged-in")

            for count in (1, 2):
                time.sleep(TTL / 2 + 0.3)  # past half the token's life: the next call refreshes
                page.click("#connection-demo >> text=userinfo")
                page.wait_for_url(base + "/demo/profile/demo")
                assert NAME in page.inner_text("#userinfo")
                assert refreshes(page) == count
                if count == 1:
                    shot(page, "04-userinfo-after-a-refresh")
                page.click("text=Back to the home page")
                page.wait_for_url(base + "/")
                assert refreshes(page) == count
                assert f"{count} time" in page.inner_text("#connection-demo .refreshes")
                again, shown = countdown(page)
                assert again > expires  # a new token: the countdown starts again
                assert shown >= TTL - 2
                expires = again
            assert provider.counts.refreshes == 2
            shot(page, "05-home-after-two-refreshes")

            page.click("#connection-demo >> text=disconnect")
            page.wait_for_url(base + "/?flash=disconnected")
            assert "Disconnected" in page.inner_text("#flash")
            assert page.inner_text("#connection-demo td") == "not connected"
            assert page.locator("#connection-demo [data-expires]").count() == 0
            assert provider.counts.revocations == 1
            shot(page, "06-disconnected")

            page.click("text=log out")
            page.wait_for_url(base + "/?flash=logged_out")
            assert "You are not logged in." in page.inner_text("body")

            provider.refuse_next_login()
            page.click("text=Log in with demo")
            page.fill("#name", NAME)
            page.click("#approve")
            page.wait_for_url(re.compile(r".*/auth/callback/demo\?.*error=access_denied.*"))
            text = page.inner_text("body")
            assert "access_denied" in text
            if "Login failed" in page.title():  # the library's page for browser navigations
                assert "cancelled or refused" in text
            shot(page, "07-refused-login")
        finally:
            browser.close()
