"""Reads for the Workers page: each worker process, its heartbeat, its slots and actions.

A worker renews its actions' leases at every heartbeat
(``CONNECTOR_HEARTBEAT_SECONDS``); recovery takes them from it once a lease
(``CONNECTOR_LEASE_SECONDS``) has run out. So the page calls a worker *late*
once its last heartbeat is older than ``LATE_HEARTBEATS`` intervals - a whole
heartbeat was missed, the lease still holds - and *lost* once it is older than
a lease: its actions are then due for recovery by any other worker. Late never
comes after lost: it starts by half-way between a heartbeat and a lease at the
latest (a heartbeat must be shorter than a lease, ``connector.settings``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from connector.models import Action, Status, WorkerProcess
from dashboard import queries

#: Heartbeat intervals without one before a worker is shown late. One and a
#: half flagged a busy but healthy worker (its heartbeat also recovers and
#: schedules, and runs late under load); two means one was really missed.
LATE_HEARTBEATS = 2.0
#: Rows the page shows at most (rows of dead workers are forgotten after an hour).
WORKERS_SHOWN = 200

ALIVE = "alive"
LATE = "late"
LOST = "lost"
STOPPING = "stopping"


@dataclass
class QueueSlots:
    queue: str
    busy: int
    threads: int


@dataclass
class WorkerRow:
    process: WorkerProcess
    heartbeat_age: timedelta
    state: str
    slots: list[QueueSlots]
    actions: list[Action] = field(default_factory=list)

    @property
    def lease_left(self) -> timedelta:
        """How long until the leases of its actions run out, if no heartbeat comes."""
        lease = timedelta(seconds=float(settings.CONNECTOR_LEASE_SECONDS))
        return max(lease - self.heartbeat_age, timedelta(0))

    @property
    def busy(self) -> int:
        return sum(slot.busy for slot in self.slots)

    @property
    def threads(self) -> int:
        return sum(slot.threads for slot in self.slots)


@dataclass
class WorkersView:
    rows: list[WorkerRow]
    heartbeat_seconds: float
    lease_seconds: float
    late_after: float
    now: datetime


def late_after() -> float:
    """Seconds since the last heartbeat after which a worker is late."""
    heartbeat = float(settings.CONNECTOR_HEARTBEAT_SECONDS)
    lease = float(settings.CONNECTOR_LEASE_SECONDS)
    return min(LATE_HEARTBEATS * heartbeat, (heartbeat + lease) / 2)


def state_of(age: timedelta, *, stopping: bool) -> str:
    """alive, late (a heartbeat missed, the lease still holds), lost (past a lease), stopping."""
    seconds = age.total_seconds()
    if seconds > float(settings.CONNECTOR_LEASE_SECONDS):
        return LOST
    if seconds > late_after():
        return LATE
    return STOPPING if stopping else ALIVE


def workers_view(*, now: datetime | None = None) -> WorkersView:
    now = now or timezone.now()
    processes = list(WorkerProcess.objects.order_by("hostname", "started_at", "id")[:WORKERS_SHOWN])
    # One read of every Processing action: as many as the workers' slots, no more.
    running: dict[str, list[Action]] = {}
    for action in (
        Action.objects.filter(status=Status.PROCESSING)
        .order_by("started_at", "id")
        .only(*queries.ROW_FIELDS, "worker")
    ):
        running.setdefault(action.worker, []).append(action)
    rows = []
    for process in processes:
        age = max(now - process.heartbeat_at, timedelta(0))
        mine = running.get(process.id, [])
        threads = process.threads if isinstance(process.threads, dict) else {}
        slots = [
            QueueSlots(
                queue=name,
                busy=sum(1 for action in mine if action.queue == name),
                threads=int(count),
            )
            for name, count in sorted(threads.items())
        ]
        rows.append(
            WorkerRow(
                process=process,
                heartbeat_age=age,
                state=state_of(age, stopping=process.stopping),
                slots=slots,
                actions=mine,
            )
        )
    return WorkersView(
        rows=rows,
        heartbeat_seconds=float(settings.CONNECTOR_HEARTBEAT_SECONDS),
        lease_seconds=float(settings.CONNECTOR_LEASE_SECONDS),
        late_after=late_after(),
        now=now,
    )
