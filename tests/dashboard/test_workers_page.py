"""The Workers page (issue 16 item 3): each worker process, its heartbeat (late before its
lease runs out, then lost), its slots of MaximumThreads, its actions and reader processes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from dashboard_helpers import start, submit
from django.urls import reverse
from django.utils import timezone

from connector import __version__
from connector.models import WorkerProcess
from connector.worker.engine import WorkerEngine
from dashboard import workers

pytestmark = pytest.mark.django_db


def worker(name: str = "host-1-abc", *, age: float = 0.0, **fields: object) -> WorkerProcess:
    now = timezone.now()
    fields.setdefault("threads", {"fetch": 4})
    return WorkerProcess.objects.create(
        id=name,
        hostname="host",
        pid=4242,
        started_at=now - timedelta(hours=2),
        heartbeat_at=now - timedelta(seconds=age),
        **fields,
    )


@pytest.fixture
def timing(settings):
    settings.CONNECTOR_HEARTBEAT_SECONDS = 10
    settings.CONNECTOR_LEASE_SECONDS = 30
    return settings


def test_a_worker_shows_host_pid_started_version_and_heartbeat(viewer_client, timing):
    worker(version="9.9.9", readers=[101, 102])
    html = viewer_client.get(reverse("dashboard:workers")).content.decode()
    assert "host-1-abc" in html and "host · 4242" in html
    assert "9.9.9" in html
    assert "&#10003; alive" in html or "✓ alive" in html
    assert "2 <span" in html and "101, 102" in html  # reader processes
    assert "ago</time>" in html


@pytest.mark.parametrize(
    ("age", "state"),
    [(0, "alive"), (19, "alive"), (21, "late"), (29, "late"), (31, "lost"), (3000, "lost")],
)
def test_the_state_follows_the_heartbeat_interval_and_the_lease(timing, age, state):
    assert workers.state_of(timedelta(seconds=age), stopping=False) == state


def test_late_comes_before_lost_even_when_heartbeat_and_lease_are_close(settings):
    settings.CONNECTOR_HEARTBEAT_SECONDS = 20
    settings.CONNECTOR_LEASE_SECONDS = 30
    assert workers.state_of(timedelta(seconds=26), stopping=False) == "late"
    assert workers.state_of(timedelta(seconds=24), stopping=False) == "alive"


def test_a_stopping_worker_says_so_until_it_is_late(timing):
    assert workers.state_of(timedelta(seconds=1), stopping=True) == "stopping"
    assert workers.state_of(timedelta(seconds=25), stopping=True) == "late"


def test_a_late_worker_is_shown_late_before_its_lease_runs_out(viewer_client, timing):
    worker(age=25)
    html = viewer_client.get(reverse("dashboard:workers")).content.decode()
    assert "worker-late" in html
    assert "late</span>" in html  # a text, not only a colour
    assert "a heartbeat was missed; its leases run out in" in html


def test_a_worker_past_its_lease_is_shown_lost(viewer_client, timing):
    worker(age=45)
    html = viewer_client.get(reverse("dashboard:workers")).content.decode()
    assert "worker-lost" in html and "lost</span>" in html


def test_slots_busy_count_the_actions_the_worker_runs_and_link_them(viewer_client, timing):
    worker("w")
    mine = start(submit(), worker="w")
    start(submit(), worker="other")
    html = viewer_client.get(reverse("dashboard:workers")).content.decode()
    assert "1 of 4 MaximumThreads" in html
    assert reverse("dashboard:action", args=[mine.pk]) in html
    view = workers.workers_view()
    assert [a.pk for a in view.rows[0].actions] == [mine.pk]


def test_no_worker_says_what_to_start(viewer_client):
    html = viewer_client.get(reverse("dashboard:workers")).content.decode()
    assert "No worker process has sent a heartbeat" in html


def test_worker_names_are_escaped(viewer_client):
    worker("<b>w</b>")
    html = viewer_client.get(reverse("dashboard:workers")).content.decode()
    assert "<b>w</b>" not in html and "&lt;b&gt;w&lt;/b&gt;" in html


def test_the_page_needs_the_view_permission(client, nobody):
    assert client.get(reverse("dashboard:workers")).status_code == 302
    client.force_login(nobody)
    assert client.get(reverse("dashboard:workers")).status_code == 403


def test_the_htmx_refresh_returns_only_the_list(viewer_client):
    worker()
    html = viewer_client.get(reverse("dashboard:workers"), HTTP_HX_REQUEST="true").content.decode()
    assert html.lstrip().startswith('<div id="worker-list"')


def test_the_engine_records_its_version_and_reader_processes(monkeypatch):
    from connector.ingest import readers

    monkeypatch.setattr(readers, "process_ids", lambda: [7, 8])
    engine = WorkerEngine(worker_id="recorded")
    engine._save_process()
    row = WorkerProcess.objects.get(pk="recorded")
    assert row.version == __version__
    assert row.readers == [7, 8]
