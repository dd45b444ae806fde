"""Prometheus metrics at /metrics, read from the database at scrape time.

The database is the one truth that every web and worker process shares, so
each scrape reads it: any process answers for the whole installation, with no
per-process counters to add up and no prometheus_client multiprocess mode.
Scrape one process (or all, and de-duplicate by ``instance``).

The run time, wait time and stop latency are ``gaugehistogram``\\ s of the
actions queued in the last ``CONNECTOR_METRICS_WINDOW_SECONDS`` (at most
``CONNECTOR_METRICS_MAX_ROWS`` of them, newest first): a picture of the recent
past that may go down as well as up, for ``histogram_quantile()`` over the
``_bucket`` series, not for ``rate()``. Counters incremented in-process would
be lost at every restart and would split over processes; the rows are not.

Every query is bounded and served by an index of ``Action``: counts by queue
and status (``action_claim`` starts with both), the oldest Queued action of
each queue (the same index), the recent rows (``action_queued``), and the
worker rows (one per live process).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Min
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import (
    CollectorRegistry,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from connector.addresses import client_address
from connector.models import Action, QueueState, Status, WorkerProcess

logger = logging.getLogger(__name__)

#: Bucket bounds in seconds: from a no-op's milliseconds to an hour-long Synchronize.
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600)
#: A Stop is meant to take effect within a second or two.
STOP_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)


def metrics_allowed(address: str) -> bool:
    """Whether a client at ``address`` may read the metrics (CONNECTOR_METRICS_ALLOWED_IPS)."""
    allowed: list[str] = settings.CONNECTOR_METRICS_ALLOWED_IPS
    if "*" in allowed:
        return True
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return any(ip in ipaddress.ip_network(network, strict=False) for network in allowed)


#: Headers a proxy adds. Behind a proxy on the same host every client would
#: seem to come from loopback, so a forwarded request is never trusted by
#: address: scrapers reach the processes directly (docs/deployment.md).
FORWARDING_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP")


def _forwarded(request: HttpRequest) -> bool:
    return any(header in request.META for header in FORWARDING_HEADERS)


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    address = client_address(request)
    wildcard = "*" in settings.CONNECTOR_METRICS_ALLOWED_IPS
    if not metrics_allowed(address) or (_forwarded(request) and not wildcard):
        logger.warning("Metrics refused to %s (not in CONNECTOR_METRICS_ALLOWED_IPS)", address)
        return HttpResponse(
            "Metrics are not served to this address.\n", status=403, content_type="text/plain"
        )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


class DatabaseCollector(Collector):
    """The connector's metrics, read from the database at each ``collect()``."""

    def __init__(self, *, now: datetime | None = None) -> None:
        self._now = now

    def collect(self) -> Iterator[Metric]:
        now = self._now or timezone.now()
        queues = list(settings.CONNECTOR_QUEUES)
        yield from self._queues(queues, now)
        yield from self._workers(now)
        yield from self._durations(queues, now)

    def _queues(self, queues: list[str], now: datetime) -> Iterator[Metric]:
        counts = {(q, s.value): 0 for q in queues for s in Status}
        for row in Action.objects.values("queue", "status").annotate(n=Count("id")).order_by():
            counts[(row["queue"], row["status"])] = row["n"]
        actions = GaugeMetricFamily(
            "connector_actions",
            "Actions in the database, by queue and status.",
            labels=["queue", "status"],
        )
        for (queue, status), n in sorted(counts.items()):
            actions.add_metric([queue, status], n)
        yield actions

        depth = GaugeMetricFamily(
            "connector_queue_depth", "Queued actions waiting for a worker.", labels=["queue"]
        )
        for queue in queues:
            depth.add_metric([queue], counts.get((queue, Status.QUEUED.value), 0))
        yield depth

        oldest = dict(
            Action.objects.filter(status=Status.QUEUED)
            .values("queue")
            .annotate(t=Min("queued_at"))
            .order_by()
            .values_list("queue", "t")
        )
        age = GaugeMetricFamily(
            "connector_queue_oldest_queued_age_seconds",
            "How long the oldest Queued action of the queue has waited (0: none waits).",
            labels=["queue"],
        )
        for queue in queues:
            since = oldest.get(queue)
            age.add_metric([queue], max(0.0, (now - since).total_seconds()) if since else 0.0)
        yield age

        paused = set(QueueState.objects.filter(paused=True).values_list("name", flat=True))
        pause = GaugeMetricFamily(
            "connector_queue_paused", "1 while the queue is paused.", labels=["queue"]
        )
        for queue in queues:
            pause.add_metric([queue], 1 if queue in paused else 0)
        yield pause

    def _workers(self, now: datetime) -> Iterator[Metric]:
        heartbeat = GaugeMetricFamily(
            "connector_worker_heartbeat_age_seconds",
            "Seconds since each worker process's last heartbeat.",
            labels=["worker", "hostname"],
        )
        running = GaugeMetricFamily(
            "connector_worker_running_actions",
            "Actions each worker process ran at its last heartbeat, by queue.",
            labels=["worker", "queue"],
        )
        stopping = GaugeMetricFamily(
            "connector_worker_stopping", "1 while the worker process shuts down.", labels=["worker"]
        )
        rows = WorkerProcess.objects.order_by("id").values_list(
            "id", "hostname", "heartbeat_at", "running", "stopping"
        )
        for worker, hostname, beat, per_queue, is_stopping in rows:
            heartbeat.add_metric([worker, hostname], max(0.0, (now - beat).total_seconds()))
            for queue, n in sorted((per_queue or {}).items()):
                running.add_metric([worker, queue], n)
            stopping.add_metric([worker], 1 if is_stopping else 0)
        yield heartbeat
        yield running
        yield stopping

    def _durations(self, queues: list[str], now: datetime) -> Iterator[Metric]:
        window = float(settings.CONNECTOR_METRICS_WINDOW_SECONDS)
        rows = (
            Action.objects.filter(queued_at__gte=now - timedelta(seconds=window))
            .order_by("-queued_at")
            .values_list(
                "queue", "status", "queued_at", "started_at", "finished_at", "stop_requested_at"
            )[: int(settings.CONNECTOR_METRICS_MAX_ROWS)]
        )
        waits: dict[tuple[str, ...], list[float]] = {(q,): [] for q in queues}
        runs: dict[tuple[str, ...], list[float]] = {}
        stops: dict[tuple[str, ...], list[float]] = {(q,): [] for q in queues}
        for queue, status, queued, started, finished, stop_asked in rows:
            if started:
                waits.setdefault((queue,), []).append((started - queued).total_seconds())
                if finished and status in (Status.FINISHED, Status.ERROR, Status.STOPPED):
                    runs.setdefault((queue, status), []).append(
                        (finished - started).total_seconds()
                    )
            if status == Status.STOPPED and stop_asked and finished:
                stops.setdefault((queue,), []).append((finished - stop_asked).total_seconds())
        yield _histogram(
            "connector_action_wait_seconds",
            "Time from Queued to Processing of the actions queued in the window.",
            ["queue"],
            waits,
            DURATION_BUCKETS,
        )
        yield _histogram(
            "connector_action_run_seconds",
            "Time from Processing to the end of the actions queued in the window, by final status.",
            ["queue", "status"],
            runs,
            DURATION_BUCKETS,
        )
        yield _histogram(
            "connector_action_stop_latency_seconds",
            "Time from the Stop request to Stopped of the actions queued in the window.",
            ["queue"],
            stops,
            STOP_BUCKETS,
        )
        yield GaugeMetricFamily(
            "connector_metrics_window_seconds",
            "How far back the duration histograms look (CONNECTOR_METRICS_WINDOW_SECONDS).",
            value=window,
        )


def _histogram(
    name: str,
    documentation: str,
    labels: list[str],
    samples: dict[tuple[str, ...], list[float]],
    bounds: Iterable[float],
) -> GaugeHistogramMetricFamily:
    family = GaugeHistogramMetricFamily(name, documentation, labels=labels)
    bounds = list(bounds)
    for key in sorted(samples):
        values = [max(0.0, v) for v in samples[key]]
        buckets = [(_bound(b), float(sum(1 for v in values if v <= b))) for b in bounds]
        buckets.append(("+Inf", float(len(values))))
        family.add_metric(list(key), buckets, gsum_value=sum(values))
    return family


def _bound(value: float) -> str:
    return repr(float(value))
