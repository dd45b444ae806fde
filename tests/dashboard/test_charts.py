"""The overview's actions-per-minute chart: the counts, the bars, the SVG and its text."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from dashboard_helpers import submit
from django.test import override_settings
from django.urls import reverse

from connector.models import Action
from dashboard import charts

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 4, 12, 30, 20, tzinfo=UTC)
QUEUES = {"fetch": {"MaximumThreads": 2}, "other": {"MaximumThreads": 1}}


def queued(at: datetime, queue: str = "fetch") -> Action:
    action = submit()
    Action.objects.filter(pk=action.pk).update(queued_at=at, queue=queue)
    return action


def test_the_hour_is_sixty_whole_minutes_ending_with_the_current_one():
    start, end = charts.hour_window(NOW)
    assert start == datetime(2026, 3, 4, 11, 31, tzinfo=UTC)
    assert end == datetime(2026, 3, 4, 12, 31, tzinfo=UTC)


@override_settings(CONNECTOR_QUEUES=QUEUES)
def test_counts_per_queue_and_minute_in_one_query(django_assert_num_queries):
    queued(NOW - timedelta(seconds=5))  # 12:30
    queued(NOW - timedelta(seconds=10))  # 12:30
    queued(NOW - timedelta(minutes=3))  # 12:27
    queued(NOW - timedelta(minutes=3), queue="other")
    queued(NOW - timedelta(minutes=3), queue="not-asked-for")
    queued(NOW - timedelta(minutes=61))  # before the hour
    queued(NOW + timedelta(minutes=2))  # after it (clock skew)
    with django_assert_num_queries(1):
        counts = charts.counts_per_minute(["fetch", "other"], now=NOW)
    assert counts == {
        "fetch": {
            datetime(2026, 3, 4, 12, 30, tzinfo=UTC): 2,
            datetime(2026, 3, 4, 12, 27, tzinfo=UTC): 1,
        },
        "other": {datetime(2026, 3, 4, 12, 27, tzinfo=UTC): 1},
    }


def test_bars_are_scaled_to_the_busiest_minute():
    chart = charts.minute_chart(
        {
            datetime(2026, 3, 4, 12, 30, tzinfo=UTC): 4,
            datetime(2026, 3, 4, 11, 31, tzinfo=UTC): 1,
        },
        now=NOW,
    )
    assert len(chart.bars) == 60
    assert (chart.total, chart.peak) == (5, 4)
    first, last = chart.bars[0], chart.bars[-1]
    assert (first.count, first.x, first.height) == (1, 0, charts.HEIGHT / 4)
    assert (last.count, last.height, last.y) == (4, charts.HEIGHT, 0)
    assert last.x + last.width <= charts.WIDTH
    assert [bar.count for bar in chart.busy_minutes] == [1, 4]


def test_an_empty_hour_draws_no_bar():
    chart = charts.minute_chart({}, now=NOW)
    assert (chart.total, chart.peak) == (0, 0)
    assert all(bar.height == 0 for bar in chart.bars)
    assert chart.busy_minutes == []


def _svg(html: str, index: int = 0) -> str:
    """The ``index``-th arrivals chart's SVG (each card also has an endings chart)."""
    return re.findall(r'<figure class="minute-chart">\s*<svg.*?</svg>', html, re.S)[index]


def test_overview_draws_the_chart_with_its_numbers_as_text(viewer_client):
    now = datetime.now(UTC)
    queued(now)
    queued(now)
    queued(now - timedelta(minutes=10))
    html = viewer_client.get(reverse("dashboard:home")).content.decode()
    svg = _svg(html)
    assert 'role="img"' in svg and 'aria-labelledby="chart-fetch-title"' in svg
    assert "Queue fetch: 3 actions queued in the last hour, at most 2 in one minute" in svg
    assert svg.count("<rect") == 2
    assert f'height="{float(charts.HEIGHT)}"' in svg  # the busiest minute is full height
    assert "3 in all, at most 2 a minute" in html
    assert "Each minute&#x27;s number" in html or "Each minute's number" in html


def test_overview_chart_of_an_empty_hour_says_so(viewer_client):
    html = viewer_client.get(reverse("dashboard:home")).content.decode()
    svg = _svg(html)
    assert "<rect" not in svg
    assert "0 actions queued in the last hour" in svg
    assert "Each minute" not in html  # no list of nothing


@override_settings(
    CONNECTOR_QUEUES={"fetch": {"MaximumThreads": 1}, '<b x="1">q</b>': {"MaximumThreads": 1}}
)
def test_queue_names_with_markup_are_escaped_in_the_chart(viewer_client):
    queued(datetime.now(UTC), queue='<b x="1">q</b>')
    html = viewer_client.get(reverse("dashboard:home")).content.decode()
    assert '<b x="1">' not in html
    assert "Queue &lt;b x=&quot;1&quot;&gt;q&lt;/b&gt;: 1 action queued" in _svg(html, 1)
