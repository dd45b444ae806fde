"""Reads for the Tasks page: each fetch task, its schedule, last Synchronize and datastore.

Every read is bounded, whatever the number of actions kept: a task's last
Synchronize is looked for among the newest ``SYNCHRONIZE_SCAN`` Synchronizes
(the ``action_fetch_queued`` index, newest first), and a task's latest actions
among the actions queued since the ``ACTION_SCAN``-th newest one. A task found
in neither window says so, with a link to the list filtered by the task, which
searches the whole history.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import OuterRef, QuerySet, Subquery
from django.utils import timezone

from connector.models import FINAL_STATUSES, Action, DatastoreDocument, FetchTask
from dashboard import queries

#: How many of the newest Synchronizes are searched for each task's last one.
SYNCHRONIZE_SCAN = 1000
#: How many of the newest actions are searched for a task's latest ones.
ACTION_SCAN = 5000
#: The Tasks list counts a task's documents up to this many ("more than"); the
#: task's own page counts them all.
DOCUMENTS_COUNTED = 10_000
#: How many of a task's latest actions its page shows (the list links to all).
RECENT_ACTIONS = 10

SYNCHRONIZE = "SYNCHRONIZE"
_SYNC_FIELDS = (
    "token", "queue", "fetch_action", "tasks", "status", "progress", "progress_basis",
    "progress_total", "stage", "queued_at", "started_at", "finished_at", "stop_requested",
    "counts", "error",
)  # fmt: skip


@dataclass
class SyncRun:
    """One Synchronize as the Tasks page shows it, for one of its tasks."""

    action: Action
    #: This task's counts of the action: {"seen": 3, "added": 1, ...}.
    counts: dict[str, object]
    duration: timedelta | None


@dataclass
class Schedule:
    start_time: str
    repeat_secs: int | None
    #: Runs left; None: no limit.
    cycles_left: int | None
    next_run_at: datetime | None
    paused: bool
    runs_done: int

    @property
    def exists(self) -> bool:
        return bool(self.start_time)


@dataclass
class TaskSummary:
    task: FetchTask
    schedule: Schedule
    #: The newest Synchronize naming the task (any status), if in the window.
    latest: SyncRun | None = None
    #: The newest final one, when ``latest`` is still Queued or Processing.
    last_final: SyncRun | None = None
    documents: int = 0
    #: More documents than ``DOCUMENTS_COUNTED`` (the list stops counting there).
    documents_capped: bool = False
    last_ingested_at: datetime | None = None
    recent_actions: list[Action] = field(default_factory=list)
    #: Whether the windows were full: "none found" then means "none lately".
    scan_limited: bool = False


def schedule_of(task: FetchTask) -> Schedule:
    cycles_left = None
    if task.schedule_cycles != -1:
        cycles_left = max(task.schedule_cycles - task.schedule_runs_done, 0)
    return Schedule(
        start_time=task.schedule_start_time,
        repeat_secs=task.schedule_repeat_secs,
        cycles_left=cycles_left,
        next_run_at=task.schedule_next_run_at,
        paused=task.schedule_paused,
        runs_done=task.schedule_runs_done,
    )


def _run(action: Action, task: str) -> SyncRun:
    counts = action.counts.get(task, {}) if isinstance(action.counts, dict) else {}
    duration = None
    if action.started_at and action.finished_at:
        duration = action.finished_at - action.started_at
    elif action.started_at:
        duration = timezone.now() - action.started_at
    return SyncRun(action, counts if isinstance(counts, dict) else {}, duration)


def last_synchronizes(names: list[str]) -> tuple[dict[str, tuple[int | None, int | None]], bool]:
    """Per task: the pk of its newest Synchronize and of its newest final one.

    Reads the newest ``SYNCHRONIZE_SCAN`` Synchronizes' (pk, tasks, status) only;
    returns also whether the window was full (older ones were not looked at).
    """
    wanted = set(names)
    found: dict[str, list[int | None]] = {name: [None, None] for name in names}
    rows = list(
        Action.objects.filter(fetch_action=SYNCHRONIZE)
        .order_by("-queued_at")
        .values_list("pk", "tasks", "status")[:SYNCHRONIZE_SCAN]
    )
    for pk, tasks, status in rows:
        for name in tasks.split(","):
            if name not in wanted:
                continue
            slot = found[name]
            if slot[0] is None:
                slot[0] = pk
            if slot[1] is None and status in FINAL_STATUSES:
                slot[1] = pk
    return {name: (a, b) for name, (a, b) in found.items()}, len(rows) >= SYNCHRONIZE_SCAN


def _summaries(tasks: list[FetchTask]) -> list[TaskSummary]:
    names = [task.name for task in tasks]
    found, limited = last_synchronizes(names)
    pks = {pk for pair in found.values() for pk in pair if pk is not None}
    actions = {a.pk: a for a in Action.objects.filter(pk__in=pks).only(*_SYNC_FIELDS)}
    summaries = []
    for task in tasks:
        latest_pk, final_pk = found[task.name]
        latest = actions.get(latest_pk) if latest_pk else None
        final = actions.get(final_pk) if final_pk else None
        summary = TaskSummary(task=task, schedule=schedule_of(task), scan_limited=limited)
        if latest is not None:
            summary.latest = _run(latest, task.name)
            if final is not None and final.pk != latest.pk:
                summary.last_final = _run(final, task.name)
        documents = DatastoreDocument.objects.filter(task=task)
        # Counting reads every row of the task's index range: bounded on the list.
        cap = None if len(tasks) == 1 else DOCUMENTS_COUNTED
        summary.documents = documents.values("pk")[: cap + 1].count() if cap else documents.count()
        summary.documents_capped = cap is not None and summary.documents > cap
        summary.last_ingested_at = getattr(task, "last_ingested", None)
        summaries.append(summary)
    return summaries


def _with_last_ingestion(tasks: QuerySet[FetchTask]) -> QuerySet[FetchTask]:
    """Each task's last ingestion time, one seek of ``datastore_task_ingested`` per task."""
    newest = DatastoreDocument.objects.filter(task=OuterRef("pk")).order_by("-last_ingested_at")
    return tasks.annotate(last_ingested=Subquery(newest.values("last_ingested_at")[:1]))


def task_summaries() -> list[TaskSummary]:
    """Every fetch task, by name."""
    return _summaries(list(_with_last_ingestion(FetchTask.objects.order_by("name"))))


def _scan_start() -> datetime | None:
    """The queue time of the ``ACTION_SCAN``-th newest action (None: fewer actions)."""
    row = (
        Action.objects.order_by("-queued_at")
        .values_list("queued_at", flat=True)[ACTION_SCAN - 1 : ACTION_SCAN]
        .first()
    )
    return row


def recent_actions(name: str) -> tuple[list[Action], bool]:
    """The task's newest actions among the newest ``ACTION_SCAN``; whether that window is full."""
    start = _scan_start()
    actions = queries.filtered_actions(queries.ActionFilters(task=name))
    if start is not None:
        actions = actions.filter(queued_at__gte=start)
    rows = list(actions.order_by("-queued_at", "-id").only(*queries.ROW_FIELDS)[:RECENT_ACTIONS])
    return rows, start is not None


def task_detail(name: str) -> TaskSummary:
    """One task with its latest actions; raises FetchTask.DoesNotExist."""
    task = _with_last_ingestion(FetchTask.objects.all()).get(name=name.upper())
    summary = _summaries([task])[0]
    summary.recent_actions, limited = recent_actions(task.name)
    summary.scan_limited = summary.scan_limited or limited
    return summary
