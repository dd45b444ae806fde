"""An operator's and a viewer's clicks in a real browser, against a real server and worker."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from browser_helpers import (
    fetch,
    go_live,
    open_as,
    pause,
    pk_of,
    row_status,
    same_document,
    start_server,
    stop_server,
)
from processes import ROOT, Server

pytestmark = [pytest.mark.browser, pytest.mark.processes]


def test_a_synchronize_from_the_form_goes_to_finished_without_reload(
    page: Any, server: Server, resume: None
) -> None:
    pause(server)
    page.goto("/dashboard/submit/?FetchAction=NOOP")
    # Choosing the action swaps in its fields (htmx): wait for them before filling them.
    page.select_option("#choose-fetch-action", "SYNCHRONIZE")
    page.wait_for_selector("select[name='TaskSections']")
    page.select_option("select[name='TaskSections']", "DEMO")
    page.fill("input[name='ActionID']", "from the browser")
    page.click("button:has-text('Submit SYNCHRONIZE')")
    page.wait_for_url(re.compile(r"/dashboard/actions/\d+/$"))
    pk = pk_of(page)
    go_live(page, "/dashboard/actions/")
    assert row_status(page, pk).inner_text() == "Queued"
    server.aci("QueueInfo", QueueName="fetch", QueueAction="Resume")
    page.wait_for_selector(f"#action-{pk} .status-finished")
    assert same_document(page)


def test_a_long_sleep_is_stopped_with_its_button(page: Any, server: Server) -> None:
    pk = fetch(server, FetchAction="Sleep", Seconds="30", Steps="3000")
    go_live(page, "/dashboard/actions/")
    page.wait_for_selector(f"#action-{pk} .status-processing")
    page.click(f"#action-{pk} button:has-text('Stop')")
    page.wait_for_selector(f"#action-{pk} .status-stopped")
    assert same_document(page)


def test_an_action_in_a_paused_queue_is_cancelled_with_its_button(
    page: Any, server: Server, resume: None
) -> None:
    pause(server)
    pk = fetch(server, FetchAction="NoOp")
    go_live(page, "/dashboard/actions/")
    page.click(f"#action-{pk} button:has-text('Cancel')")
    page.wait_for_selector(f"#action-{pk} .status-cancelled")
    assert server.site.action(pk)["status"] == "Cancelled"


def test_bulk_cancel_by_filter_shows_the_count_then_cancels(
    page: Any, server: Server, resume: None
) -> None:
    pause(server)
    pks = [fetch(server, FetchAction="NoOp", ActionID=f"bulk-{n}") for n in range(3)]
    page.goto("/dashboard/actions/?q=bulk-")
    page.click("#cancel-matching")
    assert "3 queued actions match" in page.inner_text("#matching-count")
    page.click("#confirm-cancel")
    page.wait_for_selector("text=3 cancelled, 0 not queued any more.")
    for pk in pks:
        assert row_status(page, pk).inner_text() == "Cancelled"
    assert server.site.statuses(pks) == ["Cancelled"] * 3


def test_markup_in_an_actionid_is_shown_escaped(page: Any, server: Server) -> None:
    markup = '<img src=x onerror="window.__injected=1"><script>window.__injected=1</script>'
    page.goto("/dashboard/submit/?FetchAction=NOOP")
    page.fill("input[name='ActionID']", markup)
    page.click("button:has-text('Submit NOOP')")
    page.wait_for_url(re.compile(r"/dashboard/actions/\d+/$"))
    assert markup in page.inner_text("main")
    page.goto("/dashboard/actions/")
    assert markup in page.inner_text(f"#action-{pk_of_latest(server)}")
    assert page.evaluate("window.__injected === undefined")


def pk_of_latest(server: Server) -> int:
    return int(server.site.query("SELECT max(id) FROM connector_action")[0][0])


#: Screenshots of the main pages, light and dark, kept after the run for people to look at.
SCREENSHOTS = ROOT / "var" / "test-output" / "screenshots"


def shown(page: Any) -> list[int]:
    """The actions the list shows, top to bottom."""
    return list(
        page.eval_on_selector_all(
            "#results tr[id^='action-']", "rows => rows.map(row => Number(row.id.slice(7)))"
        )
    )


def wait_for_top_row(page: Any, pk: int) -> None:
    page.wait_for_function(
        "pk => document.querySelector('#results tr[id^=\"action-\"]')?.id === 'action-' + pk",
        arg=pk,
    )


def test_pages_stay_put_while_actions_arrive_and_new_ones_are_offered(
    page: Any, server: Server, resume: None
) -> None:
    pause(server)
    older = [fetch(server, FetchAction="NoOp", ActionID=f"paging-{n}") for n in range(60)]
    newest_first = older[::-1]
    go_live(page, "/dashboard/actions/?q=paging-")
    assert shown(page) == newest_first[:50]

    arrived = [fetch(server, FetchAction="NoOp", ActionID=f"paging-new-{n}") for n in range(3)]
    page.wait_for_selector("#new-actions a:has-text('3 new - show')")
    assert shown(page) == newest_first[:50], "rows moved under the reader"

    page.click("#results a[rel='next']")
    wait_for_top_row(page, newest_first[50])
    assert shown(page) == newest_first[50:], "the second page shifted by the new arrivals"
    assert "after=" in page.url

    page.click("#results a:has-text('Newest')")
    wait_for_top_row(page, arrived[-1])
    assert shown(page) == arrived[::-1] + newest_first[:47]

    more = [fetch(server, FetchAction="NoOp", ActionID=f"paging-more-{n}") for n in range(2)]
    page.click("#new-actions a:has-text('2 new - show')")
    wait_for_top_row(page, more[-1])
    assert shown(page)[:5] == more[::-1] + arrived[::-1]
    assert page.locator("#results").count() == 1
    assert same_document(page)


#: The only buttons a viewer may see: they change nothing.
VIEWER_BUTTONS = {"Copy", "Filter"}


def operator_controls(page: Any) -> list[str]:
    """Buttons other than the viewer's, and the links that lead to operators' forms."""
    found = page.eval_on_selector_all(
        "main button, main input[type=submit], main a#cancel-matching, header a[href$='/submit/']",
        "elements => elements.map(e => (e.innerText || e.value || '').trim())",
    )
    return [text for text in found if text not in VIEWER_BUTTONS]


def test_a_viewer_sees_no_buttons_on_any_page(
    viewer_page: Any, server: Server, resume: None
) -> None:
    pause(server)
    queued = fetch(server, FetchAction="NoOp", ActionID="viewer-queued")
    running = fetch(server, FetchAction="Sleep", Seconds="20", Steps="2000", ActionID="viewer-run")
    page = viewer_page
    assert operator_controls(page) == []
    go_live(page, "/dashboard/actions/?q=viewer-")
    assert operator_controls(page) == []
    assert page.locator("#cancel-matching, #cancel-selected, input.select-row").count() == 0
    # A row pushed over the socket is rendered for this user too.
    server.aci("QueueInfo", QueueName="fetch", QueueAction="Resume")
    page.wait_for_selector(f"#action-{running} .status-processing")
    assert operator_controls(page) == []
    for pk in (queued, running):
        page.goto(f"/dashboard/actions/{pk}/")
        assert operator_controls(page) == [], pk
    for path in ("/dashboard/submit/", "/dashboard/actions/cancel-matching/"):
        response = page.goto(path)
        assert response.status == 403, path
    token = server.site.action(running)["token"]
    server.aci("QueueInfo", QueueName="fetch", QueueAction="Stop", Token=token)


def test_screenshots_of_the_main_pages_light_and_dark(
    browser: Any, server: Server, admin_session: dict[str, Any]
) -> None:
    pk = fetch(server, FetchAction="NoOp", ActionID="screenshot")
    server.site.wait_for(
        lambda: server.site.action(pk)["status"] == "Finished", 15, "the action to finish"
    )
    pages = {
        "overview": "/dashboard/",
        "actions": "/dashboard/actions/",
        "detail": f"/dashboard/actions/{pk}/",
        "submit": "/dashboard/submit/",
    }
    backgrounds = {}
    login = browser.new_page(base_url=server.base)
    page = open_as(browser, server, admin_session)
    for scheme in ("light", "dark"):
        folder = SCREENSHOTS / scheme
        folder.mkdir(parents=True, exist_ok=True)
        login.emulate_media(color_scheme=scheme)
        login.goto("/accounts/login/")
        login.screenshot(path=folder / "login.png")
        page.emulate_media(color_scheme=scheme)
        for name, path in pages.items():
            page.goto(path)
            page.screenshot(path=folder / f"{name}.png")
        backgrounds[scheme] = page.evaluate("getComputedStyle(document.body).backgroundColor")
    login.context.close()
    page.context.close()
    written = sorted(path.relative_to(SCREENSHOTS) for path in SCREENSHOTS.glob("*/*.png"))
    expected = sorted(Path(s) / f"{n}.png" for s in ("light", "dark") for n in [*pages, "login"])
    assert set(expected) <= set(written)
    assert all((SCREENSHOTS / path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for path in expected)
    assert backgrounds["light"] != backgrounds["dark"]


# Last: it restarts the module's server.
def test_a_lost_socket_says_reconnecting_and_shows_what_changed_meanwhile(
    page: Any, server: Server, resume: None
) -> None:
    pause(server)
    kept, cancelled = (fetch(server, FetchAction="NoOp", ActionID=f"socket-{n}") for n in range(2))
    go_live(page, "/dashboard/actions/?q=socket-")
    # The socket's own back-off (up to 2**n s) is not what is tested here; its reconnection is.
    page.evaluate("htmx.config.wsReconnectDelay = () => 200")

    stop_server(server)
    page.wait_for_selector("#live-state[data-live='no']")
    assert "reconnecting" in page.inner_text("#live-state")
    # Changes made while the page cannot hear about them: by another process, on the database.
    server.site.manage(
        "shell",
        "-c",
        "from connector import queue\n"
        f"queue.cancel_action(pk={cancelled}, cancelled_by='test')\n"
        "queue.submit_action(fetch_action='NoOp', params={}, action_id='socket-new')\n",
    )
    new = server.site.query("SELECT id FROM connector_action WHERE action_id = 'socket-new'")[0][0]

    start_server(server)
    page.wait_for_selector("#live-state[data-live='yes']", timeout=30_000)
    page.wait_for_selector(f"#action-{cancelled} .status-cancelled")
    wait_for_top_row(page, new)
    assert row_status(page, kept).inner_text() == "Queued"
    assert same_document(page)
