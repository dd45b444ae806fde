"""Read-only queries the ACI actions need (the queue module owns every write)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from connector.models import Action, WorkerProcess

#: Sort-By values and the fields they sort on.
SORT_FIELDS = {
    "queue-time": "queued_at",
    "start-time": "started_at",
    "finish-time": "finished_at",
}


@dataclass(frozen=True)
class ActionFilter:
    statuses: tuple[str, ...] = ()
    max_results: int = 1000
    sort_by: str = "queue-time"
    descending: bool = True
    queued_after: datetime | None = None
    queued_before: datetime | None = None
    finished_after: datetime | None = None
    finished_before: datetime | None = None
    min_priority: int | None = None
    max_priority: int | None = None


def find_action(*, queue: str, token: str) -> Action | None:
    """The action of ``queue`` with that (canonical) token."""
    return Action.objects.filter(queue=queue, token=token).first()


def list_actions(*, queue: str, filters: ActionFilter) -> list[Action]:
    """Actions of a queue; "after" bounds are inclusive, "before" bounds exclusive."""
    actions = Action.objects.filter(queue=queue)
    if filters.statuses:
        actions = actions.filter(status__in=filters.statuses)
    if filters.queued_after:
        actions = actions.filter(queued_at__gte=filters.queued_after)
    if filters.queued_before:
        actions = actions.filter(queued_at__lt=filters.queued_before)
    if filters.finished_after:
        actions = actions.filter(finished_at__gte=filters.finished_after)
    if filters.finished_before:
        actions = actions.filter(finished_at__lt=filters.finished_before)
    if filters.min_priority is not None:
        actions = actions.filter(priority__gte=filters.min_priority)
    if filters.max_priority is not None:
        actions = actions.filter(priority__lte=filters.max_priority)
    field = F(SORT_FIELDS[filters.sort_by])
    # Actions that have not started (or finished) yet go last either way.
    if filters.descending:
        order = [field.desc(nulls_last=True), F("id").desc()]
    else:
        order = [field.asc(nulls_last=True), F("id").asc()]
    return list(actions.order_by(*order)[: filters.max_results])


@dataclass(frozen=True)
class WorkerThreads:
    #: Worker processes heard from within a lease time.
    processes: int
    #: Their MaximumThreads for the queue, added up.
    threads: int
    #: Actions of the queue they were running at their last heartbeat.
    running: int


def live_workers(queue: str, *, now: datetime | None = None) -> WorkerThreads:
    now = now or timezone.now()
    recent = now - timedelta(seconds=settings.CONNECTOR_LEASE_SECONDS)
    rows = WorkerProcess.objects.filter(heartbeat_at__gte=recent, stopping=False)
    processes = threads = running = 0
    for row in rows.only("threads", "running"):
        processes += 1
        threads += _number(row.threads, queue)
        running += _number(row.running, queue)
    return WorkerThreads(processes=processes, threads=threads, running=running)


def _number(values: object, queue: str) -> int:
    if isinstance(values, dict):
        try:
            return int(values.get(queue, 0))
        except (TypeError, ValueError):
            return 0
    return 0
