"""The Tasks and Workers pages (issue 16 items 2 and 3) in a real browser, against a real
server and worker: Synchronize now, pause and resume a schedule, a live worker; screenshots."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from browser_helpers import open_as, pause
from processes import ROOT, Server

pytestmark = [pytest.mark.browser, pytest.mark.processes]

SCREENSHOTS = ROOT / "var" / "test-output" / "screenshots"
#: The elements that stick out on the right, to say what to fix.
WIDER_THAN_THE_SCREEN = """
[...document.querySelectorAll('*')]
  .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
  .slice(0, 8).map(e => e.tagName + '.' + e.className)
"""


@pytest.fixture(scope="module")
def nightly(server: Server) -> str:
    """A second task, with a daily schedule, over the demo's folder."""
    server.site.manage(
        "shell",
        "-c",
        "from django.utils import timezone\n"
        "from connector import schedules\n"
        "from connector.models import FetchTask\n"
        "demo = FetchTask.objects.get(name='DEMO')\n"
        "task = FetchTask(name='NIGHTLY', directory_paths=demo.directory_paths,\n"
        "    file_match=['*.txt'], schedule_start_time='23:59', schedule_repeat_secs=86400,\n"
        "    schedule_cycles=30)\n"
        "schedules.reset_schedule(task, now=timezone.now())\n"
        "task.save()\n",
    )
    return "NIGHTLY"


def synchronizes(server: Server, task: str) -> int:
    return int(
        server.site.query(
            "SELECT count(*) FROM connector_action WHERE fetch_action = 'SYNCHRONIZE'"
            " AND tasks = ?",
            task,
        )[0][0]
    )


def test_synchronize_now_from_the_tasks_page_queues_and_runs_one(
    page: Any, server: Server, nightly: str
) -> None:
    before = synchronizes(server, "DEMO")
    page.goto("/dashboard/tasks/")
    page.click("#sync-DEMO")
    # Back on the page the button was on, with the new run as the task's last Synchronize.
    page.wait_for_url(re.compile(r"/dashboard/tasks/$"))
    assert "Synchronize of DEMO queued." in page.inner_text(".messages")
    assert synchronizes(server, "DEMO") == before + 1
    (pk,) = server.site.query(
        "SELECT max(id) FROM connector_action WHERE fetch_action = 'SYNCHRONIZE'"
    )[0]
    assert page.locator(f"#task-DEMO a[href='/dashboard/actions/{pk}/']").count() == 1
    server.site.wait_for(
        lambda: server.site.action(pk)["status"] == "Finished", 30, "the Synchronize to finish"
    )
    # The task's page: the run with its counts, and among the task's latest actions.
    page.goto("/dashboard/tasks/DEMO/")
    assert "Finished" in page.inner_text("#sync-title + dl")
    page.click("#sync-DEMO")
    page.wait_for_url(re.compile(r"/dashboard/tasks/DEMO/$"))
    assert synchronizes(server, "DEMO") == before + 2
    assert page.locator(f"#action-{pk}").count() == 1


def test_pause_and_resume_a_schedule_from_the_tasks_page(
    page: Any, server: Server, nightly: str
) -> None:
    page.goto("/dashboard/tasks/")
    card = page.locator("#task-NIGHTLY")
    assert "scheduled" in card.locator("h2").inner_text()
    assert "29 cycles left" in card.inner_text() or "30 cycles left" in card.inner_text()
    page.click("#schedule-NIGHTLY")
    page.wait_for_url(re.compile(r"/dashboard/tasks/$"))
    assert "schedule paused" in page.locator("#task-NIGHTLY h2").inner_text()
    assert page.locator("#schedule-NIGHTLY").inner_text().startswith("Resume schedule")
    assert server.site.query(
        "SELECT schedule_paused FROM connector_fetchtask WHERE name = 'NIGHTLY'"
    ) == [(1,)]
    page.click("#schedule-NIGHTLY")
    page.wait_for_url(re.compile(r"/dashboard/tasks/$"))
    assert "scheduled" in page.locator("#task-NIGHTLY h2").inner_text()
    verbs = server.site.query(
        "SELECT verb FROM connector_auditentry WHERE detail = 'schedule of task NIGHTLY'"
        " ORDER BY id"
    )
    assert verbs == [("pause",), ("resume",)]


def test_the_workers_page_shows_the_live_worker_and_its_running_action(
    page: Any, server: Server, resume: None
) -> None:
    pause(server)
    token = server.aci("Fetch", FetchAction="Sleep", Seconds="30", Steps="30")["responsedata"][
        "token"
    ]
    server.aci("QueueInfo", QueueName="fetch", QueueAction="Resume")
    server.wait_for_status(token, "Processing")
    page.goto("/dashboard/workers/")
    card = page.locator(".worker-card").first
    # Alive; with the tests' quarter-second heartbeat a busy machine may show it late,
    # never lost (its lease is renewed).
    assert card.locator(".badge").inner_text().split()[-1] in {"alive", "late"}
    text = card.inner_text()
    assert "1 of " in text and "MaximumThreads" in text
    assert "SLEEP" in card.locator(".worker-actions").inner_text().upper()
    server.aci("QueueInfo", QueueName="fetch", QueueAction="Stop", Token=token)


def test_screenshots_of_the_tasks_and_workers_pages(
    browser: Any, server: Server, admin_session: dict[str, Any], nightly: str
) -> None:
    pages = {
        "tasks": "/dashboard/tasks/",
        "task": "/dashboard/tasks/DEMO/",
        "workers": "/dashboard/workers/",
    }
    written = []
    for width, suffix in ((1280, ""), (390, "-390")):
        page = open_as(browser, server, admin_session, viewport={"width": width, "height": 900})
        for scheme in ("light", "dark"):
            folder = SCREENSHOTS / scheme
            folder.mkdir(parents=True, exist_ok=True)
            page.emulate_media(color_scheme=scheme)
            for name, path in pages.items():
                page.goto(path)
                target = folder / f"{name}{suffix}.png"
                page.screenshot(path=target, full_page=True)
                written.append(target)
                # Nothing is wider than the screen: the page scrolls down, not sideways.
                overflow = page.evaluate(
                    "document.documentElement.scrollWidth - document.documentElement.clientWidth"
                )
                wide = page.evaluate(WIDER_THAN_THE_SCREEN) if overflow > 0 else []
                assert overflow <= 0, (
                    f"{name} at {width} px {scheme}: {overflow} px too wide: {wide}"
                )
        page.context.close()
    assert all(Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for path in written)
