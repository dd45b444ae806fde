"""Issue 16 item 9: every time a page shows follows one rule (dashboard_time).

The server writes ``<time datetime="...Z" data-when=...>`` with UTC text that says
UTC and the exact instant in ``title``; the browser rewrites the text into its zone
(tests/browser/test_dashboard_behaviour.py). Ages are counted by the server.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from dashboard_helpers import finish, start, submit
from django.urls import reverse
from django.utils import timezone as django_timezone

from connector.models import Action, DatastoreDocument, FetchTask, WorkerProcess
from dashboard.templatetags.dashboard_time import age_text, ago, when

pytestmark = pytest.mark.django_db

AT = datetime(2026, 12, 6, 22, 11, 42, 123456, tzinfo=UTC)


def test_a_time_is_a_time_element_with_utc_text_and_instant():
    assert str(when(AT)) == (
        '<time datetime="2026-12-06T22:11:42.123456Z" data-when="datetime" '
        'title="2026-12-06 22:11:42 UTC">2026-12-06 22:11:42 UTC</time>'
    )
    assert ">22:11:42 UTC<" in str(when(AT, "time"))
    assert ">22:11 UTC<" in str(when(AT, "minute"))
    assert when(None) == ""


def test_a_time_in_another_zone_is_written_in_utc():
    paris = AT.astimezone(timezone(timedelta(hours=1)))
    assert ">2026-12-06 22:11:42 UTC<" in str(when(paris))


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (2, "2 s ago"),
        (40, "40 s ago"),
        (150, "2 min ago"),
        (3600, "1 h ago"),
        (3 * 3600 + 5 * 60, "3 h 5 min ago"),
        (2 * 86400 + 4 * 3600, "2 d 4 h ago"),
        (-30, "0 s ago"),
    ],
)
def test_ages_are_short(seconds, text):
    assert age_text(seconds) == text


def test_an_age_holds_the_instant():
    html = str(ago(django_timezone.now() - timedelta(minutes=2)))
    assert 'data-when="age"' in html and ">2 min ago<" in html and " UTC" in html


TIME = re.compile(r"<time[^>]*>")


def times_of(html: str) -> list[str]:
    return TIME.findall(html)


def assert_times_follow_the_rule(page: str, html: str) -> int:
    """How many ``<time>`` elements the page has; each one is checked."""
    seen = 0
    for tag in times_of(html):
        if 'id="live-heard"' in tag:
            continue  # written by the page's script when the socket speaks
        seen += 1
        assert 'data-when="' in tag, (page, tag)
        assert re.search(r'datetime="\d{4}-\d\d-\d\dT[\d:.]+Z"', tag), (page, tag)
        assert re.search(r'title="\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"', tag), (page, tag)
    texts = re.findall(r'data-when="(?:datetime|time|minute)"[^>]*>([^<]*)<', html)
    assert all(text.endswith(" UTC") for text in texts), (page, texts)
    return seen


def test_every_time_on_the_pages_follows_the_rule(viewer_client):
    action = submit(action_id="times")
    start(action)
    finish(action)
    Action.objects.filter(pk=action.pk).update(stop_requested_at=django_timezone.now())
    pages = [
        reverse("dashboard:home"),
        reverse("dashboard:actions"),
        reverse("dashboard:action", args=[action.pk]),
        reverse("dashboard:audit"),
    ]
    seen = sum(
        assert_times_follow_the_rule(page, viewer_client.get(page).content.decode())
        for page in pages
    )
    assert seen >= 6


def test_the_tasks_workers_and_history_pages_follow_the_rule_too(viewer_client):
    now = django_timezone.now()
    task = FetchTask.objects.create(
        name="DOCS",
        directory_paths=["/srv/docs"],
        schedule_start_time="now",
        schedule_repeat_secs=600,
        schedule_next_run_at=now,
    )
    DatastoreDocument.objects.create(
        task=task, identifier="id-1", path="/srv/docs/1.txt", size=1, last_ingested_at=now
    )
    action = submit(fetch_action="SYNCHRONIZE", params={"TaskSections": "DOCS"}, tasks=["DOCS"])
    start(action)
    finish(action)
    WorkerProcess.objects.create(
        id="host-1-abc", hostname="host", pid=4242, started_at=now, heartbeat_at=now,
        threads={"fetch": 4},
    )  # fmt: skip
    pages = {
        reverse("dashboard:tasks"): 3,  # next run, last ingested, the Synchronize queued
        reverse("dashboard:task", args=["DOCS"]): 5,  # and its end, with its age
        reverse("dashboard:workers"): 2,  # started, last heartbeat
        reverse("dashboard:history"): 1,
    }
    for page, least in pages.items():
        html = viewer_client.get(page).content.decode()
        assert assert_times_follow_the_rule(page, html) >= least, (page, times_of(html))
