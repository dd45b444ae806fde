"""The history page and the overview's endings chart (dashboard/outcome_history.py):
the bars, the percentiles, the links (each lists exactly the actions its bar counts),
bad filters, and the number of queries."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta

import pytest
from dashboard_helpers import start, submit
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from connector import queue
from connector.models import Action, OutcomeMinute, Status
from dashboard import outcome_history

pytestmark = pytest.mark.django_db

URL = reverse("dashboard:history")
QUEUES = {"fetch": {"MaximumThreads": 2}, "other": {"MaximumThreads": 1}}


def ended(
    status: str,
    *,
    at: datetime,
    tasks: tuple[str, ...] = (),
    queue_name: str = "fetch",
    wait: timedelta = timedelta(seconds=1),
    run: timedelta = timedelta(seconds=2),
) -> Action:
    """An action that ended ``status`` at ``at`` (the trigger counts it, as in real life)."""
    action = submit(tasks=list(tasks), queue=queue_name)
    started_at = at - run if status != Status.CANCELLED else None
    queued_at = (started_at or at) - wait
    Action.objects.filter(pk=action.pk).update(queued_at=queued_at, started_at=started_at)
    Action.objects.filter(pk=action.pk).update(status=status, finished_at=at)
    return action


def listed(client, url: str) -> set[int]:
    response = client.get(html.unescape(url))
    assert response.status_code == 200, response.content[:500]
    assert not response.context["form"].errors
    return {a.pk for a in response.context["page"].actions}


def bar_links(page: str) -> list[tuple[str, str, int]]:
    """(url, status, count) of each bar segment in the page's SVGs."""
    found = re.findall(
        r'<a href="([^"]+)" tabindex="-1"><rect [^>]*data-status="(\w+)" data-count="(\d+)"',
        page,
    )
    return [(url, status, int(n)) for url, status, n in found]


def test_windows_are_whole_steps_ending_with_the_current_one():
    now = datetime(2026, 3, 4, 12, 30, 20, tzinfo=UTC)
    ranges = outcome_history.RANGES
    assert outcome_history.window(ranges["hour"], now) == (
        datetime(2026, 3, 4, 11, 31, tzinfo=UTC),
        datetime(2026, 3, 4, 12, 31, tzinfo=UTC),
    )
    assert outcome_history.window(ranges["day"], now) == (
        datetime(2026, 3, 3, 13, 0, tzinfo=UTC),
        datetime(2026, 3, 4, 13, 0, tzinfo=UTC),
    )
    assert outcome_history.window(ranges["week"], now) == (
        datetime(2026, 2, 26, tzinfo=UTC),
        datetime(2026, 3, 5, tzinfo=UTC),
    )


def test_percentiles_are_the_middle_of_the_nearest_rank_bucket():
    histogram = [0] * 42
    histogram[5] = 50  # [10^0.8, 10^1) ms
    histogram[20] = 45  # [10^3.8, 10^4) ms
    histogram[41] = 5  # 10^8 ms or more
    p50 = outcome_history.percentile(histogram, 0.5)
    assert p50 is not None and p50.low_ms == pytest.approx(10**0.8)
    assert p50.ms == pytest.approx(10**0.9)
    assert outcome_history.percentile(histogram, 0.95).ms == pytest.approx(10**3.9)
    assert outcome_history.percentile(histogram, 0.96).text == "27.8 h or more"
    assert outcome_history.percentile([0] * 42, 0.5) is None
    assert outcome_history.percentile([3] + [0] * 41, 0.5).text == "under 1 ms"


def test_the_page_reports_percentiles_of_wait_and_run_time(viewer_client):
    now = timezone.now()
    for _ in range(19):
        ended(Status.FINISHED, at=now, wait=timedelta(milliseconds=200), run=timedelta(seconds=3))
    ended(Status.ERROR, at=now, wait=timedelta(seconds=40), run=timedelta(minutes=5))
    h = viewer_client.get(URL).context["h"]
    assert h.totals == {"Finished": 19, "Error": 1, "Cancelled": 0, "Stopped": 0}
    assert h.wait["p50"].low_ms <= 200 < h.wait["p50"].high_ms
    assert h.wait["p95"].low_ms <= 200 < h.wait["p95"].high_ms
    assert h.run["p50"].low_ms <= 3000 < h.run["p50"].high_ms
    # Nearest rank: the 95th percentile of 20 values is the 19th, still a 3 s run.
    assert h.run["p95"].low_ms <= 3000 < h.run["p95"].high_ms
    page = viewer_client.get(URL).content.decode()
    assert "Bucketed estimates" in page and "within about 26 %" in page


@override_settings(CONNECTOR_QUEUES=QUEUES)
def test_every_bar_lists_exactly_the_actions_it_counts(viewer_client):
    now = timezone.now().replace(second=30, microsecond=0)
    minute_ago = now - timedelta(minutes=1)
    expected = {
        "Finished": {
            ended(Status.FINISHED, at=now, tasks=("DOCS",)).pk,
            ended(Status.FINISHED, at=now + timedelta(seconds=20)).pk,
        },
        "Error": {ended(Status.ERROR, at=now, tasks=("DOCS", "HR")).pk},
        "Cancelled": {ended(Status.CANCELLED, at=minute_ago).pk},
        "Stopped": {ended(Status.STOPPED, at=minute_ago, tasks=("HR",)).pk},
    }
    ended(Status.FINISHED, at=now, queue_name="other")  # another queue's
    earlier = ended(Status.FINISHED, at=now - timedelta(hours=2)).pk  # before the hour
    page = viewer_client.get(URL, {"queue": "fetch"}).content.decode()
    links = bar_links(page)
    assert sorted((status, n) for _, status, n in links) == [
        ("Cancelled", 1),
        ("Error", 1),
        ("Finished", 2),
        ("Stopped", 1),
    ]
    for url, status, n in links:
        shown = listed(viewer_client, url)
        assert len(shown) == n
        assert shown <= expected[status]
    # A task's history counts that task's actions, and its bars list those.
    page = viewer_client.get(URL, {"task": "hr"}).content.decode()
    by_status = {status: listed(viewer_client, url) for url, status, _ in bar_links(page)}
    assert by_status == {"Error": expected["Error"], "Stopped": expected["Stopped"]}
    # The legend's totals link to the range's actions of each status.
    page = viewer_client.get(URL, {"range": "day", "queue": "fetch"}).content.decode()
    total_link = re.search(r'<a href="([^"]+)">Finished \(processed\)</a>', page)
    assert listed(viewer_client, total_link.group(1)) == expected["Finished"] | {earlier}


def test_the_day_and_week_ranges_group_by_hour_and_day(viewer_client):
    now = timezone.now()
    ended(Status.FINISHED, at=now - timedelta(hours=3))
    ended(Status.FINISHED, at=now - timedelta(hours=3, minutes=1))
    ended(Status.ERROR, at=now - timedelta(days=3))
    day = viewer_client.get(URL, {"range": "day"}).context["h"]
    assert len(day.bars) == 24 and day.totals["Finished"] == 2 and day.totals["Error"] == 0
    week = viewer_client.get(URL, {"range": "week"}).context["h"]
    assert len(week.bars) == 7 and week.totals["Finished"] == 2 and week.totals["Error"] == 1


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"range": "year"}, "Range &#x27;year&#x27; is not valid"),
        ({"queue": "nope"}, "Queue &#x27;nope&#x27; is not valid"),
        ({"task": "x" * 101}, "Task is not valid"),
    ],
)
def test_an_invalid_filter_says_so_and_shows_no_chart(viewer_client, params, message):
    ended(Status.FINISHED, at=timezone.now())
    response = viewer_client.get(URL, params)
    assert response.status_code == 400
    page = response.content.decode()
    assert message in page and "<svg" not in page


def test_the_page_needs_the_view_permission(client, nobody):
    assert client.get(URL).status_code == 302
    client.force_login(nobody)
    assert client.get(URL).status_code == 403


def test_the_chart_has_a_title_a_legend_and_the_numbers_as_text(viewer_client):
    now = timezone.now()
    ended(Status.FINISHED, at=now)
    ended(Status.STOPPED, at=now)
    page = viewer_client.get(URL, {"range": "hour"}).content.decode()
    assert re.search(r'<svg [^>]*role="img" aria-labelledby="history---title"', page)
    assert "2 actions ended, last hour, per minute: 1 Finished, 0 Error" in page
    assert "Error (failed)" in page and "Finished (processed)" in page
    assert 'fill="url(#history---p-stopped)"' in page
    assert re.search(r'<td><a href="[^"]+">1</a></td>', page)


def test_one_query_for_a_range_whatever_it_holds(viewer_client, django_assert_max_num_queries):
    now = timezone.now()
    for minutes in range(0, 600, 7):
        ended(Status.FINISHED, at=now - timedelta(minutes=minutes), tasks=("DOCS",))
    for name in outcome_history.RANGES:
        with django_assert_max_num_queries(1):
            outcome_history.history(name, task="DOCS")


@override_settings(CONNECTOR_QUEUES=QUEUES)
def test_the_overview_shows_each_queues_last_hour_of_endings_live(viewer_client):
    now = timezone.now()
    ended(Status.FINISHED, at=now)
    ended(Status.ERROR, at=now, queue_name="other")
    page = viewer_client.get(reverse("dashboard:home")).content.decode()
    assert 'id="history-fetch-"' in page and 'id="history-other-"' in page
    assert f'href="{URL}?queue=fetch"' in page
    # The live refresh (htmx) carries it too.
    partial = viewer_client.get(reverse("dashboard:home"), HTTP_HX_REQUEST="true")
    assert 'id="history-other-"' in partial.content.decode()
    links = bar_links(page)
    assert sorted(status for _, status, _ in links) == ["Error", "Finished"]


def test_a_real_finish_reaches_the_chart(viewer_client):
    action = start(submit())
    queue.end_action(
        pk=action.pk,
        worker="w",
        ending=queue.Ending(counts={}, result={}, progress=100),
    )
    h = viewer_client.get(URL).context["h"]
    assert (
        h.totals["Finished"] == 1
        and OutcomeMinute.objects.filter(task="", span_minutes=1).count() == 1
    )


def test_an_invalid_finished_time_in_the_list_says_so_and_shows_no_rows(viewer_client):
    ended(Status.FINISHED, at=timezone.now())
    response = viewer_client.get(reverse("dashboard:actions"), {"finished_to": "soon"})
    assert response.context["page"].actions == []
    assert "Finished before &#x27;soon&#x27; is not valid" in response.content.decode()
