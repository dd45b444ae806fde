"""The overview in Debian's chromium against a real ``serve``: live, accessible, CSP-clean, no-JS.

Its own fixtures (the shared browser fixtures live with tests/browser); skipped
without /usr/bin/chromium, except on CI.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from processes import Server, Site

pytestmark = [pytest.mark.browser, pytest.mark.processes]

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing on CI")
        pytest.skip(f"{CHROMIUM} is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"]
        )
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Iterator[Server]:
    site = Site(tmp_path_factory.mktemp("site"))
    try:
        running = Server(site)
        yield running
        running.process.send_signal(signal.SIGTERM)
        running.process.wait(15)
    finally:
        site.stop_all()


def signed_in_page(browser: Any, server: Server, **context: Any) -> Any:
    page = browser.new_context(base_url=server.base, **context).new_page()
    page.set_default_timeout(10_000)
    page.goto("/accounts/login/?next=/dashboard/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", server.admin_password())
    page.click("button:has-text('Sign in')")
    page.wait_for_url("**/dashboard/")
    return page


@pytest.fixture
def resume(server: Server) -> Iterator[None]:
    yield
    server.aci("QueueInfo", QueueName="fetch", QueueAction="Resume")


def test_overview_is_live_announces_and_keeps_focus_without_csp_violations(browser, server, resume):
    page = signed_in_page(browser, server)
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    try:
        page.goto("/dashboard/")
        page.wait_for_selector("#live-state[data-live='yes']")
        page.evaluate("window.__sameDocument = true")

        server.aci("Fetch", FetchAction="Identifiers", ConfigSection="DEMO")
        chart = page.locator("#queue-fetch .minute-chart figcaption", has_text="1 in all")
        chart.wait_for()  # the card came over the socket
        assert page.evaluate("window.__sameDocument === true")  # not a reload
        assert "1 action queued" in page.locator("#chart-fetch-title").text_content()

        # Pause by keyboard: the card is swapped, focus stays, the change is announced.
        page.focus("#pause-fetch")
        page.keyboard.press("Enter")
        page.wait_for_selector("#queue-fetch .badge.paused")
        assert page.evaluate("document.activeElement.id") == "pause-fetch"
        announcer = page.locator("#live-announcer[aria-live='polite']", has_text="paused")
        announcer.wait_for(state="attached")

        for path in ("/dashboard/actions/", "/dashboard/submit/", "/admin/"):
            page.goto(path)
            page.wait_for_load_state("networkidle")
        assert problems == []
    finally:
        page.context.close()


def test_overview_reads_and_pauses_without_javascript(browser, server, resume):
    page = signed_in_page(browser, server, java_script_enabled=False)
    try:
        page.goto("/dashboard/")
        assert page.locator("#queue-fetch .minute-chart svg[role='img']").count() == 1
        page.click("#pause-fetch")  # a plain form post and a redirect back
        page.wait_for_selector("#queue-fetch .badge.paused")
        assert "Queue fetch paused." in page.content()
    finally:
        page.context.close()


def test_overview_fits_a_phone_and_follows_the_dark_system_setting(browser, server):
    page = signed_in_page(
        browser, server, viewport={"width": 360, "height": 740}, color_scheme="dark"
    )
    try:
        page.goto("/dashboard/")
        wide = page.evaluate("document.documentElement.scrollWidth")
        assert wide <= 360  # nothing sideways to scroll
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(13, 17, 23)"  # the dark theme's --bg
    finally:
        page.context.close()
