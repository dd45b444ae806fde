"""/metrics: Prometheus text read from the database at scrape time, for allowed addresses."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from connector import queue
from connector.models import Action, Status, WorkerProcess
from connector.ops.metrics import metrics_allowed

pytestmark = pytest.mark.django_db


def scrape(client, **extra) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics: (name, sorted labels) -> value."""
    response = client.get("/metrics", **extra)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def action(status: str, *, queued_ago: float, wait: float | None = None, run: float | None = None,
           stop_latency: float | None = None) -> Action:  # fmt: skip
    """An action row with times relative to now (seconds)."""
    now = timezone.now()
    queued = now - timedelta(seconds=queued_ago)
    started = queued + timedelta(seconds=wait) if wait is not None else None
    finished = started + timedelta(seconds=run) if started and run is not None else None
    if status == Status.CANCELLED:
        finished = queued + timedelta(seconds=1)
    stop_at = finished - timedelta(seconds=stop_latency) if stop_latency is not None else None
    return Action.objects.create(
        token=f"t{Action.objects.count()}",
        fetch_action="NOOP",
        status=status,
        queued_at=queued,
        started_at=started,
        finished_at=finished,
        stop_requested=stop_at is not None,
        stop_requested_at=stop_at,
    )


def test_actions_are_counted_by_queue_and_status_with_zeros_for_the_rest(client):
    action(Status.QUEUED, queued_ago=5)
    action(Status.QUEUED, queued_ago=30)
    action(Status.PROCESSING, queued_ago=10, wait=1)
    action(Status.FINISHED, queued_ago=20, wait=1, run=2)
    samples = scrape(client)
    count = {
        status.value: samples[("connector_actions", (("queue", "fetch"), ("status", status.value)))]
        for status in Status
    }
    assert count == {
        "Queued": 2, "Processing": 1, "Finished": 1, "Error": 0, "Cancelled": 0, "Stopped": 0,
    }  # fmt: skip
    assert samples[("connector_queue_depth", (("queue", "fetch"),))] == 2
    assert samples[("connector_queue_paused", (("queue", "fetch"),))] == 0


def test_oldest_queued_age_is_that_of_the_longest_waiting_action(client):
    assert scrape(client)[("connector_queue_oldest_queued_age_seconds", (("queue", "fetch"),))] == 0
    action(Status.QUEUED, queued_ago=5)
    action(Status.QUEUED, queued_ago=42)
    action(Status.FINISHED, queued_ago=500, wait=1, run=1)
    age = scrape(client)[("connector_queue_oldest_queued_age_seconds", (("queue", "fetch"),))]
    assert 42 <= age < 52


def test_a_paused_queue_is_shown(client):
    queue.set_paused(queue="fetch", paused=True)
    assert scrape(client)[("connector_queue_paused", (("queue", "fetch"),))] == 1


def test_worker_heartbeat_age_and_running_actions_per_worker(client):
    now = timezone.now()
    WorkerProcess.objects.create(
        id="host-1-abc", hostname="host", pid=1, started_at=now - timedelta(minutes=5),
        heartbeat_at=now - timedelta(seconds=90), running={"fetch": 3},
    )  # fmt: skip
    samples = scrape(client)
    heartbeat = samples[
        ("connector_worker_heartbeat_age_seconds", (("hostname", "host"), ("worker", "host-1-abc")))
    ]
    assert 90 <= heartbeat < 100
    assert samples[
        ("connector_worker_running_actions", (("queue", "fetch"), ("worker", "host-1-abc")))
    ] == 3  # fmt: skip
    assert samples[("connector_worker_stopping", (("worker", "host-1-abc"),))] == 0


def test_wait_and_run_histograms_count_recent_actions_into_buckets(client):
    action(Status.FINISHED, queued_ago=100, wait=0.02, run=0.3)
    action(Status.FINISHED, queued_ago=100, wait=3, run=45)
    action(Status.ERROR, queued_ago=100, wait=0.2, run=7)
    action(Status.PROCESSING, queued_ago=100, wait=20)  # waited, runs still
    action(Status.QUEUED, queued_ago=100)  # has not waited to the end yet
    samples = scrape(client)

    def bucket(name: str, le: str, **labels: str) -> float:
        key = tuple(sorted({"le": le, "queue": "fetch", **labels}.items()))
        return samples[(f"{name}_bucket", key)]

    wait = "connector_action_wait_seconds"
    assert bucket(wait, "0.05") == 1
    assert bucket(wait, "0.5") == 2
    assert bucket(wait, "5.0") == 3
    assert bucket(wait, "30.0") == 4
    assert bucket(wait, "+Inf") == 4
    assert samples[(f"{wait}_gcount", (("queue", "fetch"),))] == 4
    assert samples[(f"{wait}_gsum", (("queue", "fetch"),))] == pytest.approx(23.22)

    run = "connector_action_run_seconds"
    assert bucket(run, "0.5", status="Finished") == 1
    assert bucket(run, "30.0", status="Finished") == 1
    assert bucket(run, "60.0", status="Finished") == 2
    assert bucket(run, "5.0", status="Error") == 0
    assert bucket(run, "10.0", status="Error") == 1
    assert ("connector_action_run_seconds_bucket", (("le", "+Inf"), ("queue", "fetch"),
            ("status", "Processing"))) not in samples  # fmt: skip


def test_stop_latency_is_from_the_stop_request_to_stopped(client):
    action(Status.STOPPED, queued_ago=100, wait=1, run=10, stop_latency=0.4)
    action(Status.STOPPED, queued_ago=100, wait=1, run=10, stop_latency=3)
    action(Status.CANCELLED, queued_ago=100)
    samples = scrape(client)
    key = "connector_action_stop_latency_seconds_bucket"
    assert samples[(key, (("le", "0.5"), ("queue", "fetch")))] == 1
    assert samples[(key, (("le", "5.0"), ("queue", "fetch")))] == 2
    assert samples[(key, (("le", "+Inf"), ("queue", "fetch")))] == 2


@override_settings(CONNECTOR_METRICS_WINDOW_SECONDS=60, CONNECTOR_METRICS_MAX_ROWS=2)
def test_histograms_look_only_at_the_window_and_at_most_max_rows(client):
    action(Status.FINISHED, queued_ago=3600, wait=1, run=1)  # before the window
    for ago in (10, 20, 30):
        action(Status.FINISHED, queued_ago=ago, wait=1, run=1)
    samples = scrape(client)
    assert samples[("connector_action_wait_seconds_gcount", (("queue", "fetch"),))] == 2
    assert samples[("connector_metrics_window_seconds", ())] == 60
    # The counts by status are of the whole table, not the window.
    assert samples[("connector_actions", (("queue", "fetch"), ("status", "Finished")))] == 4


def test_metrics_are_refused_to_addresses_not_allowed(client):
    response = client.get("/metrics", REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 403
    assert b"connector_" not in response.content


@override_settings(CONNECTOR_METRICS_ALLOWED_IPS=["10.0.0.0/8"])
def test_metrics_are_served_to_an_allowed_network(client):
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403


def test_metrics_need_no_session(client):
    response = client.get("/metrics")
    assert response.status_code == 200
    assert "sessionid" not in response.cookies


@pytest.mark.parametrize(
    ("allowed", "address", "expected"),
    [
        (["127.0.0.1", "::1"], "127.0.0.1", True),
        (["127.0.0.1", "::1"], "::1", True),
        (["127.0.0.1"], "::ffff:127.0.0.1", True),
        (["127.0.0.1", "::1"], "127.0.0.2", False),
        (["192.168.0.0/16"], "192.168.40.1", True),
        (["192.168.0.0/16"], "", False),
        (["192.168.0.0/16"], "not-an-ip", False),
        (["*"], "203.0.113.9", True),
    ],
)
def test_metrics_allowed_matches_addresses_and_networks(allowed, address, expected):
    with override_settings(CONNECTOR_METRICS_ALLOWED_IPS=allowed):
        assert metrics_allowed(address) is expected


@pytest.mark.parametrize("header", ["HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP"])
def test_metrics_are_refused_through_a_proxy_even_from_loopback(client, header):
    """A proxy on the same host makes every client look like 127.0.0.1."""
    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1", **{header: "203.0.113.9"})
    assert response.status_code == 403


@override_settings(CONNECTOR_METRICS_ALLOWED_IPS=["*"])
def test_metrics_open_to_anyone_are_served_through_a_proxy_too(client):
    response = client.get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert response.status_code == 200
