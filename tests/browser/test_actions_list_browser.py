"""The actions list's navigation in a real browser: counts, sorts, Newer/Older pages, bulk Retry."""

from __future__ import annotations

from typing import Any

import pytest
from browser_helpers import fetch, go_live, open_as, pause
from processes import ROOT, Server

pytestmark = [pytest.mark.browser, pytest.mark.processes]

SCREENSHOTS = ROOT / "var" / "test-output" / "screenshots"


def shown(page: Any) -> list[int]:
    return list(
        page.eval_on_selector_all(
            "#results tr[id^='action-']", "rows => rows.map(row => Number(row.id.slice(7)))"
        )
    )


def wait_for_rows(page: Any, pks: list[int]) -> None:
    """Until the list shows exactly these rows (the top row alone may match both orders)."""
    page.wait_for_function(
        "pks => JSON.stringify([...document.querySelectorAll('#results tr[id^=\"action-\"]')]"
        ".map(row => Number(row.id.slice(7)))) === JSON.stringify(pks)",
        arg=pks,
    )


def test_sorting_by_priority_and_paging_older_then_newer(
    page: Any, server: Server, resume: None
) -> None:
    pause(server)
    # 55 actions, priorities 0..4; the highest first, ties newest first.
    pks = [
        fetch(server, FetchAction="NoOp", ActionID=f"nav-{n}", Priority=str(n % 5))
        for n in range(55)
    ]
    priority = {pk: n % 5 for n, pk in enumerate(pks)}
    expected = sorted(pks, key=lambda pk: (-priority[pk], -pk))
    # Live first: the socket's first refresh of the rows must not land after the click.
    go_live(page, "/dashboard/actions/?q=nav-")
    assert page.inner_text("#status-count-queued").strip().isdigit()
    page.click("#sort-priority")
    wait_for_rows(page, expected[:50])
    page.wait_for_url(lambda url: "sort=-priority" in url)  # pushed after the swap
    assert page.locator(f"#action-{expected[0]} .priority-cell").inner_text() == "4"

    page.click("#older-page")
    wait_for_rows(page, expected[50:])
    assert page.locator("#older-page").count() == 0

    page.click("#newer-page")
    wait_for_rows(page, expected[:50])
    assert page.locator("#newer-page").count() == 0

    # Again: lowest first.
    page.click("#sort-priority")
    wait_for_rows(page, expected[::-1][:50])
    page.wait_for_url(lambda url: "sort=priority" in url and "sort=-priority" not in url)
    assert page.locator("#results").count() == 1


def test_an_invalid_filter_says_so_and_shows_nothing(page: Any) -> None:
    page.goto("/dashboard/actions/?status=Nope")
    assert "No actions are shown: the filter is not valid." in page.inner_text("#invalid-filter")
    assert shown(page) == []


def finished(server: Server, action_id: str) -> int:
    pk = fetch(server, FetchAction="NoOp", ActionID=action_id)
    server.site.wait_for(
        lambda: server.site.action(pk)["status"] == "Finished", 15, "the action to finish"
    )
    return pk


def test_bulk_retry_of_a_selection_and_of_all_matching(page: Any, server: Server) -> None:
    first, second, third = (finished(server, f"again-{n}") for n in range(3))
    page.goto("/dashboard/actions/?q=again-")
    page.check(f"#action-{first} input.select-row")
    page.check(f"#action-{second} input.select-row")
    page.click("#retry-selected")
    page.wait_for_selector("text=2 queued again as new actions, 0 not ended.")
    assert (
        server.site.query("SELECT count(*) FROM connector_action WHERE action_id LIKE 'again-%'")[
            0
        ][0]
        == 5
    )

    page.goto("/dashboard/actions/?q=again-&status=Finished")
    server.site.wait_for(
        lambda: (
            server.site.query(
                "SELECT count(*) FROM connector_action WHERE action_id LIKE 'again-%'"
                " AND status = 'Finished'"
            )[0][0]
            == 5
        ),
        15,
        "the copies to finish",
    )
    page.click("#retry-matching")
    assert "5 ended actions match this filter." in page.inner_text("#matching-count")
    page.click("#confirm-retry")
    page.wait_for_selector("text=5 queued again as new actions, 0 not ended.")
    assert "q=again-" in page.url and "status=Finished" in page.url
    assert (
        server.site.query("SELECT count(*) FROM connector_action WHERE action_id LIKE 'again-%'")[
            0
        ][0]
        == 10
    )
    assert third


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("light", {"color_scheme": "light"}),
        ("dark", {"color_scheme": "dark"}),
        ("phone-390", {"color_scheme": "light", "viewport": {"width": 390, "height": 844}}),
    ],
)
def test_screenshots_of_the_sorted_list(
    browser: Any, server: Server, admin_session: dict[str, Any], name: str, options: Any
) -> None:
    page = open_as(browser, server, admin_session, **options)
    try:
        page.goto("/dashboard/actions/?sort=-priority")
        folder = SCREENSHOTS / name
        folder.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=folder / "actions-sorted.png", full_page=True)
        if name == "phone-390":
            wide = page.evaluate(
                "[...document.querySelectorAll('body *')]"
                ".filter(e => e.getBoundingClientRect().right > 391)"
                ".filter(e => !e.parentElement.closest('.table-scroll'))"
                ".map(e => e.tagName + '.' + e.className + '#' + e.id).slice(0, 8)"
            )
            assert page.evaluate("document.documentElement.scrollWidth") <= 390, wide
    finally:
        page.context.close()
