"""Scheduled Synchronizes: due runs, races between workers, cycles, intervals, reloads."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.db import connection

from connector import queue, schedules
from connector.models import Action, FetchTask, Status, WorkerProcess
from connector.tasks_config import load_tasks_file
from connector.worker.engine import WorkerEngine

T0 = datetime(2026, 11, 26, 14, 0, 0, tzinfo=UTC)
db = pytest.mark.django_db
threads = pytest.mark.django_db(transaction=True)


def scheduled_task(
    name: str = "DOCS",
    *,
    next_run_at: datetime | None = T0,
    repeat: int | None = 60,
    cycles: int = -1,
    runs_done: int = 0,
) -> FetchTask:
    return FetchTask.objects.create(
        name=name,
        directory_paths=["/srv/docs"],
        schedule_start_time="now",
        schedule_repeat_secs=repeat,
        schedule_cycles=cycles,
        schedule_next_run_at=next_run_at,
        schedule_runs_done=runs_done,
    )


def state(name: str = "DOCS") -> tuple[datetime | None, int]:
    task = FetchTask.objects.get(name=name)
    return task.schedule_next_run_at, task.schedule_runs_done


def finish_all() -> None:
    """Run every queued action to its end as a worker would."""
    queue.claim_actions(queue="fetch", worker="w1", limit=1000)
    for pk in Action.objects.filter(status=Status.PROCESSING).values_list("pk", flat=True):
        queue.end_action(
            pk=pk, worker="w1", ending=queue.Ending(counts={}, result={}, progress=100)
        )


# --- Queuing a due run ---------------------------------------------------------------


@db
def test_a_due_schedule_queues_one_synchronize_of_its_task():
    scheduled_task()
    (action,) = schedules.queue_due_synchronizes(now=T0)
    stored = Action.objects.get()
    assert stored.pk == action.pk
    assert stored.fetch_action == "SYNCHRONIZE"
    assert stored.params == {"TaskSections": "DOCS"}
    assert stored.tasks == "DOCS"
    assert stored.submitted_by == "schedule"
    assert stored.status == Status.QUEUED
    assert state() == (T0 + timedelta(seconds=60), 1)


@db
def test_a_schedule_not_yet_due_queues_nothing():
    scheduled_task(next_run_at=T0 + timedelta(seconds=1))
    assert schedules.queue_due_synchronizes(now=T0) == []
    assert not Action.objects.exists()
    assert state() == (T0 + timedelta(seconds=1), 0)


@db
def test_tasks_without_a_schedule_never_run():
    scheduled_task(next_run_at=None, repeat=None)
    assert schedules.queue_due_synchronizes(now=T0 + timedelta(days=400)) == []
    assert not Action.objects.exists()


@db
def test_a_due_schedule_queues_once_when_asked_again_at_the_same_time():
    scheduled_task()
    assert len(schedules.queue_due_synchronizes(now=T0)) == 1
    assert schedules.queue_due_synchronizes(now=T0) == []
    assert Action.objects.count() == 1


@pytest.mark.parametrize("status", ["queued", "processing"])
@db
def test_a_queued_or_running_synchronize_of_the_task_blocks_the_next_run(status):
    scheduled_task()
    schedules.queue_due_synchronizes(now=T0)
    if status == "processing":
        queue.claim_actions(queue="fetch", worker="w1", limit=1)
    later = T0 + timedelta(seconds=60)
    assert schedules.queue_due_synchronizes(now=later) == []
    assert Action.objects.count() == 1
    # Skipped, not postponed: the schedule moves to its next slot, and a
    # skipped run does not count.
    assert state() == (later + timedelta(seconds=60), 1)
    finish_all()
    assert len(schedules.queue_due_synchronizes(now=later + timedelta(seconds=60))) == 1
    assert state() == (later + timedelta(seconds=120), 2)


@db
def test_a_synchronize_submitted_by_a_client_blocks_the_scheduled_one_too():
    scheduled_task()
    queue.submit_action(
        fetch_action="Synchronize", params={"TaskSections": "MAIL,DOCS"}, tasks=["MAIL", "DOCS"]
    )
    assert schedules.queue_due_synchronizes(now=T0) == []


@db
def test_a_synchronize_of_another_task_does_not_block():
    scheduled_task()
    queue.submit_action(
        fetch_action="Synchronize", params={"TaskSections": "DOCS2"}, tasks=["DOCS2"]
    )
    assert len(schedules.queue_due_synchronizes(now=T0)) == 1


@db
def test_cycles_stop_the_schedule_after_that_many_runs():
    scheduled_task(cycles=3)
    now = T0
    ran = 0
    for _ in range(6):
        ran += len(schedules.queue_due_synchronizes(now=now))
        finish_all()
        now += timedelta(seconds=60)
    assert ran == 3
    assert state() == (None, 3)


@db
def test_without_a_repeat_interval_the_schedule_runs_once():
    scheduled_task(repeat=None)
    assert len(schedules.queue_due_synchronizes(now=T0)) == 1
    assert state() == (None, 1)
    finish_all()
    assert schedules.queue_due_synchronizes(now=T0 + timedelta(days=1)) == []


@db
def test_repeat_interval_spaces_the_runs():
    scheduled_task(repeat=300)
    times = []
    now = T0
    for _ in range(20):
        if schedules.queue_due_synchronizes(now=now):
            times.append(now)
        finish_all()
        now += timedelta(seconds=60)
    assert times == [T0 + timedelta(seconds=300 * n) for n in range(4)]


@db
def test_runs_missed_while_no_worker_was_up_are_not_caught_up_in_a_burst():
    scheduled_task(repeat=60)
    late = T0 + timedelta(seconds=60 * 10 + 5)
    assert len(schedules.queue_due_synchronizes(now=late)) == 1
    finish_all()
    assert schedules.queue_due_synchronizes(now=late) == []
    assert state() == (T0 + timedelta(seconds=60 * 11), 1)


# --- When a schedule starts -------------------------------------------------------------


def test_start_now_is_now():
    assert schedules.first_run_at("now", now=T0) == T0


def test_no_start_time_is_no_schedule():
    assert schedules.first_run_at("", now=T0) is None


def test_a_time_of_day_still_ahead_is_today_in_the_configured_time_zone(settings):
    settings.TIME_ZONE = "Europe/Paris"  # UTC+1 in November: T0 is 15:00 there
    at = schedules.first_run_at("15:30", now=T0)
    assert at == datetime(2026, 11, 26, 15, 30, tzinfo=ZoneInfo("Europe/Paris"))
    assert at == T0 + timedelta(minutes=30)


def test_a_time_of_day_already_past_is_tomorrow(settings):
    settings.TIME_ZONE = "Europe/Paris"
    at = schedules.first_run_at("14:59:59", now=T0)
    assert at == datetime(2026, 11, 27, 14, 59, 59, tzinfo=ZoneInfo("Europe/Paris"))


def test_a_time_of_day_that_is_now_is_due_now(settings):
    settings.TIME_ZONE = "UTC"
    assert schedules.first_run_at("14:00", now=T0) == T0


def test_a_date_and_time_is_in_the_configured_time_zone(settings):
    settings.TIME_ZONE = "America/New_York"
    at = schedules.first_run_at("2026-12-01 08:00", now=T0)
    assert at == datetime(2026, 12, 1, 13, 0, tzinfo=UTC)


@db
def test_a_time_of_day_start_runs_when_that_time_comes(settings):
    settings.TIME_ZONE = "UTC"
    task = scheduled_task(next_run_at=None, repeat=86400)
    task.schedule_start_time = "14:30"
    schedules.reset_schedule(task, now=T0)
    task.save()
    assert schedules.queue_due_synchronizes(now=T0 + timedelta(minutes=29)) == []
    assert len(schedules.queue_due_synchronizes(now=T0 + timedelta(minutes=30))) == 1
    assert state() == (T0 + timedelta(days=1, minutes=30), 1)


# --- Several workers at once -------------------------------------------------------------


def race(callers: int, now: datetime) -> list[Action]:
    """``callers`` threads call queue_due_synchronizes at the same moment."""
    barrier = threading.Barrier(callers)
    results: list[list[Action]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def call() -> None:
        try:
            barrier.wait()
            queued = schedules.queue_due_synchronizes(now=now)
            with lock:
                results.append(queued)
        except BaseException as error:  # the test fails on it below
            with lock:
                errors.append(error)
        finally:
            connection.close()

    workers = [threading.Thread(target=call) for _ in range(callers)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert not errors, errors
    return [action for queued in results for action in queued]


@threads
def test_racing_workers_queue_each_due_run_exactly_once():
    names = [f"T{n}" for n in range(4)]
    for name in names:
        scheduled_task(name)
    now = T0
    for _ in range(15):
        queued = race(4, now)
        assert sorted(action.tasks for action in queued) == names
        assert (
            sorted(Action.objects.filter(status=Status.QUEUED).values_list("tasks", flat=True))
            == names
        )
        finish_all()
        now += timedelta(seconds=60)
    assert Action.objects.count() == 15 * len(names)
    assert all(state(name)[1] == 15 for name in names)


@threads
def test_racing_engine_heartbeats_queue_a_due_run_once():
    scheduled_task(next_run_at=T0)
    engines = [WorkerEngine(), WorkerEngine()]
    barrier = threading.Barrier(len(engines))

    def beat(engine: WorkerEngine) -> None:
        try:
            barrier.wait()
            engine.heartbeat()
        finally:
            connection.close()

    workers = [threading.Thread(target=beat, args=(engine,)) for engine in engines]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    (action,) = Action.objects.all()
    assert (action.fetch_action, action.tasks, action.submitted_by) == (
        "SYNCHRONIZE", "DOCS", "schedule",
    )  # fmt: skip


@db
def test_a_failing_scheduler_does_not_stop_the_heartbeat(monkeypatch, caplog):
    engine = WorkerEngine()

    def fail(*, now: datetime) -> list[Action]:
        raise RuntimeError("no schedules today")

    monkeypatch.setattr(schedules, "queue_due_synchronizes", fail)
    with caplog.at_level(logging.ERROR, logger="connector.worker.engine"):
        engine.heartbeat()
    assert "could not queue scheduled synchronizes" in caplog.text
    # The rest of the heartbeat was done: the process is recorded.
    assert WorkerProcess.objects.filter(pk=engine.id).exists()


# --- Loading tasks ---------------------------------------------------------------------------


def tasks_file(folders: Path, repeat: str = "60", match: str = "*.txt") -> Path:
    (folders / "docs").mkdir(exist_ok=True)
    path = folders / "tasks.cfg"
    path.write_text(
        f"""
[FetchTasks]
Number=1
0=DOCS

[DOCS]
DirectoryPathCSVs={folders / "docs"}
FileMatch={match}
ScheduleStartTime=now
ScheduleRepeatSecs={repeat}
ScheduleCycles=5
"""
    )
    return path


@db
def test_loading_a_task_with_a_schedule_starts_it(tmp_path):
    before = datetime.now(UTC)
    load_tasks_file(tasks_file(tmp_path))
    next_run_at, runs_done = state()
    assert next_run_at is not None and next_run_at >= before
    assert runs_done == 0


@db
def test_reloading_with_the_same_schedule_keeps_the_next_run(tmp_path):
    path = tasks_file(tmp_path)
    load_tasks_file(path)
    FetchTask.objects.update(schedule_next_run_at=T0, schedule_runs_done=2)
    load_tasks_file(path)
    assert state() == (T0, 2)
    # Another key changes: the schedule is left as it was.
    report = load_tasks_file(tasks_file(tmp_path, match="*.md"))
    assert report.updated == ["DOCS"]
    assert state() == (T0, 2)


@db
def test_reloading_with_a_changed_schedule_starts_it_afresh(tmp_path):
    load_tasks_file(tasks_file(tmp_path))
    FetchTask.objects.update(schedule_next_run_at=T0, schedule_runs_done=2)
    before = datetime.now(UTC)
    load_tasks_file(tasks_file(tmp_path, repeat="120"))
    next_run_at, runs_done = state()
    assert next_run_at is not None and next_run_at >= before
    assert runs_done == 0


@db
def test_a_full_queue_keeps_the_run_due_and_queues_it_once_there_is_room(settings, caplog):
    settings.CONNECTOR_MAX_QUEUED_ACTIONS = 1
    waiting = queue.submit_action(fetch_action="IDENTIFIERS", params={})
    scheduled_task()
    with caplog.at_level(logging.WARNING, logger="connector.schedules"):
        assert schedules.queue_due_synchronizes(now=T0) == []
    assert "waits for room" in caplog.text
    assert not any(record.exc_info for record in caplog.records)  # a warning, not a traceback
    assert state() == (T0, 0)  # still due, no run counted
    assert list(Action.objects.values_list("pk", flat=True)) == [waiting.pk]

    queue.cancel_action(pk=waiting.pk)
    (action,) = schedules.queue_due_synchronizes(now=T0 + timedelta(seconds=5))
    assert action.fetch_action == "SYNCHRONIZE"
    assert state() == (T0 + timedelta(seconds=60), 1)
