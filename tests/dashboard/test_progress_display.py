"""The pages show how far a Synchronize is with only what is known (issue 16, item 6)."""

from __future__ import annotations

import re
from datetime import timedelta

from django.test import Client
from django.utils import timezone

from connector import progress, queue
from connector.models import Action, FetchTask
from tests.dashboard.dashboard_helpers import start, submit


def running_sync(basis: str, total: int | None, seen: int) -> Action:
    FetchTask.objects.get_or_create(name="DOCS", defaults={"directory_paths": ["/nowhere"]})
    action = start(submit(fetch_action="SYNCHRONIZE", tasks=["DOCS"], params={}))
    queue.record_progress(
        pk=action.pk,
        worker="w",
        percent=0 if total is None else min(99, 100 * seen // total),
        stage="enumerating",
        counts={"DOCS": {"seen": seen, "added": 40, "updated": 2}},
        basis=basis,
        total=total,
    )
    # Ten seconds in: a rate of seen/10 a second.
    Action.objects.filter(pk=action.pk).update(started_at=timezone.now() - timedelta(seconds=10))
    return action


def row(client: Client, action: Action) -> str:
    html = client.get(f"/dashboard/actions/{action.pk}/").content.decode()
    start_at = html.index(f'id="action-{action.pk}"')
    return html[start_at : html.index("</tr>", start_at)]


def test_a_first_run_shows_counts_rate_and_time_with_an_indeterminate_bar(
    viewer_client: Client,
) -> None:
    action = running_sync(progress.UNKNOWN, None, 300)
    shown = row(viewer_client, action)
    assert '<progress class="indeterminate"' in shown and "value=" not in shown
    # The clock moves between the update and the page: 10.0x seconds.
    assert re.search(r"300 listed · 42 ingested · (29|30)/s · 10 s so far · enumerating", shown)
    assert "total not known yet" in shown
    assert "%" not in shown


def test_an_estimated_run_shows_its_percentage_estimate_and_time_left(
    viewer_client: Client,
) -> None:
    action = running_sync(progress.PREVIOUS, 1200, 300)
    shown = row(viewer_client, action)
    assert '<progress max="100" value="25"' in shown
    assert "25% of about 1200" in shown
    # 900 left at 30 a second.
    assert re.search(r"about (30|31) s left, if it lists as many as the last complete run", shown)


def test_the_tasks_and_workers_pages_say_the_same(viewer_client: Client) -> None:
    action = running_sync(progress.UNKNOWN, None, 300)
    Action.objects.filter(pk=action.pk).update(worker="w")
    tasks_page = viewer_client.get("/dashboard/tasks/").content.decode()
    assert re.search(r"300 listed, 42 ingested · (29|30)/s · 10 s so far", tasks_page)
