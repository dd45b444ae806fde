"""The History page and the overview's endings chart (issue 16 item 1) in a real browser,
against a real server and worker: actions the worker finished and one cancelled are drawn,
a bar opens the list of exactly its actions, and screenshots in both themes and at 390 px."""

from __future__ import annotations

import re
from typing import Any

import pytest
from browser_helpers import fetch, open_as, pause
from processes import ROOT, Server

pytestmark = [pytest.mark.browser, pytest.mark.processes]

SCREENSHOTS = ROOT / "var" / "test-output" / "screenshots"


@pytest.fixture(scope="module")
def endings(server: Server) -> dict[str, set[int]]:
    """Three actions the worker finished and one cancelled, on the module's server."""
    finished = {fetch(server, FetchAction="NoOp", ActionID=f"history-{n}") for n in range(3)}
    for pk in finished:
        server.site.wait_for(
            lambda pk=pk: server.site.action(pk)["status"] == "Finished", 30, "a NoOp to finish"
        )
    pause(server)
    try:
        cancelled = fetch(server, FetchAction="NoOp", ActionID="history-cancelled")
        token = server.site.action(cancelled)["token"]
        server.aci("QueueInfo", QueueName="fetch", QueueAction="Cancel", Token=token)
    finally:
        server.aci("QueueInfo", QueueName="fetch", QueueAction="Resume")
    return {"Finished": finished, "Cancelled": {cancelled}}


def listed_pks(page: Any) -> set[int]:
    ids = page.eval_on_selector_all("tr[id^='action-']", "rows => rows.map(r => r.id)")
    return {int(i.removeprefix("action-")) for i in ids}


def test_a_bar_opens_the_list_of_exactly_its_actions(
    page: Any, server: Server, endings: dict[str, set[int]]
) -> None:
    page.goto("/dashboard/history/?queue=fetch")
    title = page.text_content("svg[role='img'] > title") or ""
    assert re.search(r"Queue fetch: \d+ actions? ended", title)
    # Every Finished segment, clicked: its list shows as many actions as the bar said.
    segments = page.locator("svg rect[data-status='Finished']")
    assert segments.count() >= 1
    seen: set[int] = set()
    for index in range(segments.count()):
        page.goto("/dashboard/history/?queue=fetch")
        segment = page.locator("svg rect[data-status='Finished']").nth(index)
        count = int(segment.get_attribute("data-count"))
        segment.click()
        page.wait_for_url(re.compile(r"/dashboard/actions/\?.*finished_from="))
        assert "status=Finished" in page.url and "queue=fetch" in page.url
        shown = listed_pks(page)
        assert len(shown) == count
        seen |= shown
    assert endings["Finished"] <= seen
    # The Cancelled one, from the table of numbers (the keyboard's way to the same links).
    page.goto("/dashboard/history/?queue=fetch")
    link = page.locator(".endings-table td a").nth(0)
    assert link.is_visible()
    page.goto("/dashboard/history/?queue=fetch")
    page.locator("svg rect[data-status='Cancelled']").first.click()
    page.wait_for_url(re.compile(r"status=Cancelled"))
    assert endings["Cancelled"] <= listed_pks(page)


def test_the_overview_draws_each_queues_endings(
    page: Any, server: Server, endings: dict[str, set[int]]
) -> None:
    page.goto("/dashboard/")
    # Live: the card (and its chart) may be swapped in again at any moment; wait for it.
    page.wait_for_selector("#queue-fetch .endings-chart.compact rect[data-status='Finished']")
    assert "Finished (processed)" in page.inner_text("#queue-fetch .endings-chart.compact")
    page.click("#queue-fetch .history-link a")
    page.wait_for_url(re.compile(r"/dashboard/history/\?queue=fetch"))
    # The times in the table follow the dashboard's rule: the browser's zone, shown.
    # (a re-read every 10 s swaps the chart in again, localised once it has settled).
    page.wait_for_selector(".endings-table time[data-local='yes']", state="attached")


def test_screenshots_of_the_history_page(
    browser: Any, server: Server, admin_session: dict[str, Any], endings: dict[str, set[int]]
) -> None:
    for width, folder in ((1280, None), (390, SCREENSHOTS / "390px")):
        page = open_as(browser, server, admin_session, viewport={"width": width, "height": 900})
        try:
            for scheme in ("light", "dark"):
                page.emulate_media(color_scheme=scheme)
                page.goto("/dashboard/history/")
                if folder is None:
                    (SCREENSHOTS / scheme).mkdir(parents=True, exist_ok=True)
                    path = SCREENSHOTS / scheme / "history.png"
                else:
                    folder.mkdir(parents=True, exist_ok=True)
                    path = folder / f"history-{scheme}.png"
                page.screenshot(path=path, full_page=True)
                assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
                if width == 390:
                    wide = page.evaluate("document.scrollingElement.scrollWidth - innerWidth")
                    assert wide <= 0, f"the page scrolls {wide} px sideways at 390 px"
        finally:
            page.context.close()
