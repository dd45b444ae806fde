"""An operator's clicks in a real browser, against a real server and worker."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from processes import Server

pytestmark = [pytest.mark.browser, pytest.mark.processes]


def go_live(page: Any, path: str) -> None:
    """Open a page and wait for its socket, so changes arrive pushed rather than polled."""
    page.goto(path)
    page.wait_for_selector("#live-state[data-live='yes']")
    # Set once per document: still set at the end means the page was never reloaded.
    page.evaluate("window.__sameDocument = true")


def same_document(page: Any) -> bool:
    return bool(page.evaluate("window.__sameDocument === true"))


def row_status(page: Any, pk: int) -> Any:
    return page.locator(f"#action-{pk} .status")


def pk_of(page: Any) -> int:
    return int(re.search(r"/actions/(\d+)/", page.url).group(1))


def pause(server: Server) -> None:
    server.aci("QueueInfo", QueueName="fetch", QueueAction="Pause")


def fetch(server: Server, **params: str) -> int:
    token = server.aci("Fetch", **params)["responsedata"]["token"]
    return int(server.site.query("SELECT id FROM connector_action WHERE token = ?", token)[0][0])


def test_a_synchronize_from_the_form_goes_to_finished_without_reload(
    page: Any, server: Server, resume: None, tmp_path: Path
) -> None:
    pause(server)
    page.goto("/dashboard/submit/?FetchAction=NOOP")
    # Choosing the action swaps in its fields (htmx): wait for them before filling them.
    page.select_option("#choose-fetch-action", "SYNCHRONIZE")
    page.wait_for_selector("select[name='TaskSections']")
    page.select_option("select[name='TaskSections']", "DEMO")
    page.fill("input[name='ActionID']", "from the browser")
    page.screenshot(path=tmp_path / "submit.png", full_page=True)
    page.click("button:has-text('Submit SYNCHRONIZE')")
    page.wait_for_url(re.compile(r"/dashboard/actions/\d+/$"))
    pk = pk_of(page)
    go_live(page, "/dashboard/actions/")
    assert row_status(page, pk).inner_text() == "Queued"
    server.aci("QueueInfo", QueueName="fetch", QueueAction="Resume")
    page.wait_for_selector(f"#action-{pk} .status-finished")
    assert same_document(page)
    page.screenshot(path=tmp_path / "actions.png", full_page=True)
    page.goto(f"/dashboard/actions/{pk}/")
    page.screenshot(path=tmp_path / "detail.png", full_page=True)
    page.goto("/dashboard/")
    page.screenshot(path=tmp_path / "overview.png", full_page=True)


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
