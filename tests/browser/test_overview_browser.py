"""The overview in Debian's chromium against a real ``serve``: live, accessible, CSP-clean, no-JS.

Uses the browser fixtures of tests/browser/conftest.py.
"""

from __future__ import annotations

import pytest
from browser_helpers import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.processes]


def test_overview_is_live_announces_and_keeps_focus_without_csp_violations(
    browser, server, admin_password, resume
):
    page = sign_in(browser, server, "admin", admin_password)
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


def test_overview_reads_and_pauses_without_javascript(browser, server, admin_password, resume):
    page = sign_in(browser, server, "admin", admin_password, java_script_enabled=False)
    try:
        page.goto("/dashboard/")
        assert page.locator("#queue-fetch .minute-chart svg[role='img']").count() == 1
        page.click("#pause-fetch")  # a plain form post and a redirect back
        page.wait_for_selector("#queue-fetch .badge.paused")
        assert "Queue fetch paused." in page.content()
    finally:
        page.context.close()


def test_overview_fits_a_phone_and_follows_the_dark_system_setting(browser, server, admin_password):
    page = sign_in(
        browser,
        server,
        "admin",
        admin_password,
        viewport={"width": 360, "height": 740},
        color_scheme="dark",
    )
    try:
        page.goto("/dashboard/")
        wide = page.evaluate("document.documentElement.scrollWidth")
        assert wide <= 360  # nothing sideways to scroll
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(1, 4, 9)"  # the dark theme's --page, behind the cards
        card = page.evaluate(
            "getComputedStyle(document.querySelector('.queue-card')).backgroundColor"
        )
        assert card == "rgb(13, 17, 23)"  # the dark theme's --bg, the cards' surface
    finally:
        page.context.close()
