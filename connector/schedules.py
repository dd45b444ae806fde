"""Scheduled Synchronizes: every worker's heartbeat queues the ones that are due.

A task's schedule (``ScheduleStartTime``, ``ScheduleRepeatSecs``,
``ScheduleCycles``) is turned into ``FetchTask.schedule_next_run_at`` when the
task is loaded or edited (``reset_schedule``); ``queue_due_synchronizes``
then takes each due run with a guarded update
(``UPDATE ... SET next = <new> WHERE next = <expected>``), so of several
workers (threads, engines or processes) that see the same due run exactly
one moves it on and queues the Synchronize; the others update nothing.

A run is skipped, not queued, while a Synchronize of the task is still
Queued or Processing: that one brings the task up to date anyway, and
queuing behind it would pile runs up when a Synchronize takes longer than the
interval. Skipped runs do not count towards ``ScheduleCycles``. Runs missed
while no worker was up are not caught up one by one: the schedule moves on to
its next slot after now.

An operator may pause a task's schedule (``set_schedule_paused``, the
dashboard's Tasks page): while paused no scheduled run is queued. The next run
stays where it was, so a resume after a missed slot queues that run at the next
heartbeat and moves on from there, as after a time with no worker up.
"""

from __future__ import annotations

import logging
import zoneinfo
from datetime import datetime, time, timedelta

from django.conf import settings
from django.db import transaction

from connector import audit, queue
from connector.models import (
    SCHEDULE_DATE_TIME,
    SCHEDULE_TIME_OF_DAY,
    Action,
    AuditVerb,
    AuditVia,
    FetchTask,
    Status,
)

logger = logging.getLogger(__name__)

#: The fields a schedule is made of: a change of any of them starts it afresh.
SCHEDULE_FIELDS = ("schedule_start_time", "schedule_repeat_secs", "schedule_cycles")
SUBMITTED_BY = "schedule"


def _zone() -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(settings.TIME_ZONE)


def _clock(text: str) -> time:
    hours, minutes, *seconds = (int(part) for part in text.split(":"))
    return time(hours, minutes, seconds[0] if seconds else 0)


def first_run_at(start_time: str, *, now: datetime) -> datetime | None:
    """When a schedule starting at ``start_time`` first runs; None for no schedule.

    A time of day is the next one to come in ``TIME_ZONE`` (today if it is
    still ahead, else tomorrow); a date and time in the past is due at once.
    """
    if not start_time:
        return None
    if start_time == "now":
        return now
    zone = _zone()
    if SCHEDULE_TIME_OF_DAY.fullmatch(start_time):
        today = now.astimezone(zone).date()
        at = datetime.combine(today, _clock(start_time), tzinfo=zone)
        if at < now:
            at = datetime.combine(today + timedelta(days=1), _clock(start_time), tzinfo=zone)
        return at
    if SCHEDULE_DATE_TIME.fullmatch(start_time):
        day, clock = start_time.split(" ")
        return datetime.combine(datetime.strptime(day, "%Y-%m-%d").date(), _clock(clock), zone)
    raise ValueError(f"Not a schedule start time: {start_time!r}")


def reset_schedule(task: FetchTask, *, now: datetime) -> None:
    """Start the task's schedule afresh (not saved: the caller saves the task)."""
    task.schedule_next_run_at = first_run_at(task.schedule_start_time, now=now)
    task.schedule_runs_done = 0


def schedule_changed(task: FetchTask, wanted: dict[str, object]) -> bool:
    """Whether ``wanted`` (field values) changes the task's schedule."""
    return any(name in wanted and getattr(task, name) != wanted[name] for name in SCHEDULE_FIELDS)


def next_run_after(
    slot: datetime, *, now: datetime, repeat_secs: int | None, cycles: int, runs_done: int
) -> datetime | None:
    """The run after ``slot``: the first slot of the interval later than ``now``."""
    if repeat_secs is None or (cycles != -1 and runs_done >= cycles):
        return None
    interval = timedelta(seconds=repeat_secs)
    following = slot + interval
    if following <= now:
        # Down for a while: skip to the next slot to come rather than run
        # every missed one in a burst.
        following += interval * ((now - following) // interval + 1)
    return following


def synchronize_active(task_name: str) -> bool:
    """Whether a Synchronize of the task is Queued or Processing: then the schedule
    queues no other. (One queued while another writer of the task, an Update say,
    runs waits for it: ``connector.writers``.)"""
    active = Action.objects.filter(
        fetch_action="SYNCHRONIZE", status__in=[Status.QUEUED, Status.PROCESSING]
    ).values_list("tasks", flat=True)
    return any(task_name in tasks.split(",") for tasks in active)


def queue_due_synchronizes(*, now: datetime) -> list[Action]:
    """Queue the Synchronize of every task whose scheduled run is due; return them."""
    due = FetchTask.objects.filter(
        schedule_next_run_at__lte=now, schedule_paused=False
    ).values_list(
        "pk",
        "name",
        "schedule_next_run_at",
        "schedule_repeat_secs",
        "schedule_cycles",
        "schedule_runs_done",
    )
    queued = []
    for pk, name, slot, repeat_secs, cycles, runs_done in due:
        if slot is None:  # the filter leaves none out; for the type checker
            continue
        try:
            action = _run(
                pk=pk,
                name=name,
                slot=slot,
                now=now,
                repeat_secs=repeat_secs,
                cycles=cycles,
                runs_done=runs_done,
            )
        except queue.QueueFull as full:
            # The claim was rolled back with the submission: the run stays due
            # and a later heartbeat queues it once there is room.
            logger.warning("Scheduled Synchronize of %s waits for room: %s", name, full)
            continue
        if action is not None:
            queued.append(action)
    return queued


def _run(
    *,
    pk: int,
    name: str,
    slot: datetime,
    now: datetime,
    repeat_secs: int | None,
    cycles: int,
    runs_done: int,
) -> Action | None:
    """Take the run due at ``slot`` and queue it, unless another worker took it first."""
    mine = FetchTask.objects.filter(pk=pk, schedule_next_run_at=slot)
    with transaction.atomic():
        # The claim comes first: on PostgreSQL it locks the row, so the check
        # for an active Synchronize below runs for one worker at a time; on
        # SQLite the IMMEDIATE transaction already does that.
        ran = runs_done + 1
        claimed = mine.update(
            schedule_next_run_at=next_run_after(
                slot, now=now, repeat_secs=repeat_secs, cycles=cycles, runs_done=ran
            ),
            schedule_runs_done=ran,
        )
        if not claimed:
            return None
        if synchronize_active(name):
            FetchTask.objects.filter(pk=pk).update(
                schedule_next_run_at=next_run_after(
                    slot, now=now, repeat_secs=repeat_secs, cycles=cycles, runs_done=runs_done
                ),
                schedule_runs_done=runs_done,
            )
            logger.info(
                "Scheduled Synchronize of %s skipped: the last one is still queued or running",
                name,
            )
            return None
        action = queue.submit_action(
            fetch_action="SYNCHRONIZE",
            params={"TaskSections": name},
            tasks=[name],
            submitted_by=SUBMITTED_BY,
            via=AuditVia.SCHEDULE,
        )
    logger.info("Scheduled Synchronize of %s queued as %s", name, action.token)
    return action


def set_schedule_paused(
    *,
    name: str,
    paused: bool,
    changed_by: str = "",
    changed_from: str = "",
    via: AuditVia = AuditVia.DASHBOARD,
) -> FetchTask:
    """Pause or resume a task's schedule, audited; raises FetchTask.DoesNotExist.

    Pausing a task without a schedule is allowed (and recorded): it keeps a
    schedule added to the INI file later from running until resumed.
    """
    who = audit.Who(via=via, user=changed_by, client=changed_from)
    with transaction.atomic():
        task = FetchTask.objects.select_for_update().get(name=name.upper())
        was = task.schedule_paused
        if was != paused:
            FetchTask.objects.filter(pk=task.pk).update(schedule_paused=paused)
            task.schedule_paused = paused
        audit.record_done(
            verb=AuditVerb.PAUSE if paused else AuditVerb.RESUME,
            who=who,
            detail=f"schedule of task {task.name}"
            + ((" (already paused)" if paused else " (was not paused)") if was == paused else ""),
        )
    logger.info(
        "Schedule of task %s %s by %s", task.name, "paused" if paused else "resumed", changed_by
    )
    return task
