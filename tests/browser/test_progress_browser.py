"""A running Synchronize's progress on the real page (issue 16, item 6): a first run shows
the documents listed and ingested, the rate and the time with a moving bar, never a
percentage; so does the run after it was stopped (it used to show 99 % at 14 % done)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from browser_helpers import fetch, go_live
from processes import ROOT, Server

pytestmark = [pytest.mark.browser, pytest.mark.processes]

SCREENSHOTS = ROOT / "var" / "test-output" / "screenshots"
#: 50,000 documents: a first run of 20,000 took under a second once the datastore
#: wrote its rows in bulk, sometimes ending before the test's Stop reached it.
FOLDERS, PER_FOLDER = 200, 250


@pytest.fixture(scope="module")
def big(server: Server) -> str:
    """A task of 50,000 small documents: a first run takes seconds, long enough to watch."""
    root = Path(server.site.tmp) / "big"
    for folder in range(FOLDERS):
        (root / f"f{folder:02d}").mkdir(parents=True)
        for n in range(PER_FOLDER):
            (root / f"f{folder:02d}" / f"{n}.txt").write_text(f"Document {folder}/{n}.")
    server.site.manage(
        "shell",
        "-c",
        "from connector.models import FetchTask\n"
        f"FetchTask.objects.create(name='BIG', directory_paths=[{str(root)!r}])\n",
    )
    return "BIG"


def progress_cell(page: Any, pk: int) -> Any:
    return page.locator(f"#action-{pk} .progress-cell")


def listed(text: str) -> int:
    found = re.search(r"([\d,]+) listed", text)
    assert found, text
    return int(found.group(1).replace(",", ""))


def watch_without_a_percentage(page: Any, pk: int) -> None:
    """While the run lists: a moving bar (no value), the counts growing live, no %."""
    page.wait_for_selector(f"#action-{pk} progress.indeterminate")
    page.wait_for_function(
        "pk => /[1-9][\\d,]* listed/.test("
        "document.querySelector(`#action-${pk} .progress-cell`)?.innerText || '')",
        arg=pk,
        timeout=60_000,
    )
    cell = progress_cell(page, pk)
    first = cell.inner_text()
    assert "total not known yet" in first
    assert "%" not in first
    assert re.search(r"[\d,]+ listed · [\d,]+ ingested · ", first), first
    assert page.locator(f"#action-{pk} progress[value]").count() == 0
    # Pushed over the socket as it goes: the count grows without a reload, until
    # every document is listed; only then (the total exact) is there a percentage.
    page.wait_for_function(
        "([pk, before]) => {"
        " const m = (document.querySelector(`#action-${pk} .progress-cell`)?.innerText || '')"
        "   .match(/([\\d,]+) listed/);"
        " const bar = document.querySelector(`#action-${pk} progress[value]`);"
        " return (m && Number(m[1].replace(/,/g, '')) > before)"
        "   || (bar !== null && Number(bar.value) >= 99); }",
        arg=[pk, listed(first)],
        # Reader processes start once 2,000 are listed: slow on a busy machine.
        timeout=60_000,
    )


def test_a_first_synchronize_and_the_run_after_its_stop_show_no_false_percentage(
    page: Any, server: Server, big: str
) -> None:
    first = fetch(server, FetchAction="Synchronize", TaskSections=big)
    go_live(page, f"/dashboard/actions/{first}/")
    token = server.site.action(first)["token"]
    watch_without_a_percentage(page, first)
    progress = server.aci("QueueInfo", QueueName="fetch", QueueAction="Progress", Token=token)
    data = progress["responsedata"]
    if data["status"] == "Processing":
        assert str(data["progressknown"]).lower() == "false", data
    SCREENSHOTS.joinpath("light").mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "light" / "progress-first-run.png", full_page=True)
    stop = server.aci("QueueInfo", QueueName="fetch", QueueAction="Stop", Token=token)
    assert stop["response"] == "SUCCESS", f"the first run ended before its Stop: {stop}"
    server.wait_for_status(token, "Stopped", timeout=60)
    page.wait_for_selector(f"#action-{first} .status-stopped")
    assert "%" not in progress_cell(page, first).inner_text()

    after = fetch(server, FetchAction="Synchronize", TaskSections=big)
    go_live(page, f"/dashboard/actions/{after}/")
    # Was 99 % at 14 % done: the share of the rows the stopped run left.
    watch_without_a_percentage(page, after)
    after_token = server.site.action(after)["token"]
    server.wait_for_status(after_token, "Finished", timeout=180)
    # Done: the exact total, 100 %.
    page.wait_for_selector(f"#action-{after} progress[value='100']")
    assert "100%" in progress_cell(page, after).inner_text()
