"""The history's rollup (``connector.outcomes``): every path to a final status is counted
exactly once, in the minute of ``finished_at``, per queue and per task, with its wait
and run time in the right histogram bucket; the backfill agrees with the trigger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.models import Sum
from django.test import override_settings
from django.utils import timezone

import connector.fetch.diagnostics  # noqa: F401  (registers NoOp and Sleep)
from connector import outcomes, queue, retention
from connector.models import (
    HISTOGRAM_EDGES_MS,
    Action,
    OutcomeMinute,
    Status,
    histogram_columns,
)

pytestmark = pytest.mark.django_db
WORKER = "w1"


def submitted(tasks: tuple[str, ...] = ("DOCS",), queue_name: str = "fetch") -> Action:
    return queue.submit_action(fetch_action="NoOp", params={}, tasks=tasks, queue=queue_name)


def started(action: Action) -> Action:
    claimed = queue.claim_actions(queue=action.queue, worker=WORKER, limit=1)
    assert [a.pk for a in claimed] == [action.pk]
    action.refresh_from_db()
    return action


def ending(**kwargs) -> queue.Ending:
    return queue.Ending(counts={}, result={}, progress=kwargs.pop("progress", 50), **kwargs)


def counted() -> dict[tuple[str, str, str], int]:
    """(queue, task, status) -> actions counted, over every minute (and the same over
    every hour: each ending is in its minute's row and its hour's)."""
    found = {}
    for span in (1, 60):
        rows = (
            OutcomeMinute.objects.filter(span_minutes=span)
            .values("queue", "task", "status")
            .annotate(n=Sum("ended"))
        )
        found[span] = {(r["queue"], r["task"], r["status"]): r["n"] for r in rows if r["n"]}
    assert found[60] == found[1]
    return found[1]


def test_the_trigger_is_installed():
    assert outcomes.installed(connection)


def test_a_finish_is_counted_once_for_the_queue_and_once_per_task():
    action = started(submitted(tasks=("DOCS", "HR")))
    assert queue.end_action(pk=action.pk, worker=WORKER, ending=ending())
    assert counted() == {
        ("fetch", "", "Finished"): 1,
        ("fetch", "DOCS", "Finished"): 1,
        ("fetch", "HR", "Finished"): 1,
    }
    # A second finish of the same action is refused by the guard and counts nothing.
    assert not queue.end_action(pk=action.pk, worker=WORKER, ending=ending())
    assert counted()[("fetch", "", "Finished")] == 1


def test_error_stopped_and_a_finish_after_a_stop_each_count_as_what_they_became():
    failed = started(submitted())
    queue.end_action(pk=failed.pk, worker=WORKER, ending=ending(error="boom"))
    stopped = started(submitted())
    queue.end_action(pk=stopped.pk, worker=WORKER, ending=ending(stopped=True))
    asked = started(submitted())
    queue.request_stop(pk=asked.pk)
    queue.end_action(pk=asked.pk, worker=WORKER, ending=ending())  # completes: Stopped
    assert counted() == {
        ("fetch", "", "Error"): 1,
        ("fetch", "DOCS", "Error"): 1,
        ("fetch", "", "Stopped"): 2,
        ("fetch", "DOCS", "Stopped"): 2,
    }


def test_finish_and_claim_counts_the_end_not_the_claim():
    first = started(submitted(tasks=()))
    second = submitted(tasks=())
    claimed = queue.finish_and_claim(queue="fetch", pk=first.pk, worker=WORKER, ending=ending())
    assert [a.pk for a in claimed] == [second.pk]
    assert counted() == {("fetch", "", "Finished"): 1}


def test_cancel_one_and_many_are_counted_and_a_refused_cancel_is_not():
    from dashboard import bulk

    one = submitted()
    queue.cancel_action(pk=one.pk)
    many = [submitted(tasks=()) for _ in range(3)]
    bulk.cancel_many([a.pk for a in many], cancelled_by="op", cancelled_from="test")
    with pytest.raises(queue.ActionNotQueued):
        queue.cancel_action(pk=one.pk)
    assert counted() == {("fetch", "", "Cancelled"): 4, ("fetch", "DOCS", "Cancelled"): 1}
    # Never started: no wait and no run time in any bucket.
    sums = OutcomeMinute.objects.aggregate(
        **{name: Sum(name) for name in histogram_columns("wait") + histogram_columns("run")}
    )
    assert not any(sums.values())


def test_a_stop_honoured_at_shutdown_is_counted_and_a_requeue_is_not():
    stopping = started(submitted())
    queue.request_stop(pk=stopping.pk)
    requeued = started(submitted(tasks=("HR",)))
    queue.release_actions(worker=WORKER, pks=[stopping.pk, requeued.pk])
    assert counted() == {("fetch", "", "Stopped"): 1, ("fetch", "DOCS", "Stopped"): 1}


@override_settings(CONNECTOR_MAX_ATTEMPTS=1)
def test_lease_recovery_counts_its_stopped_and_its_errors():
    stopping = started(submitted())
    queue.request_stop(pk=stopping.pk)
    lost = started(submitted(tasks=()))
    Action.objects.update(lease_expires_at=timezone.now() - timedelta(seconds=5))
    recovered = queue.recover_expired()
    assert recovered.stopped == [stopping.pk] and recovered.failed == [lost.pk]
    assert counted() == {
        ("fetch", "", "Stopped"): 1,
        ("fetch", "DOCS", "Stopped"): 1,
        ("fetch", "", "Error"): 1,
    }


def test_the_minute_is_the_utc_minute_of_finished_at():
    action = started(submitted(tasks=()))
    queue.end_action(pk=action.pk, worker=WORKER, ending=ending())
    action.refresh_from_db()
    row = OutcomeMinute.objects.get(span_minutes=1)
    assert row.minute == action.finished_at.replace(second=0, microsecond=0)
    row = OutcomeMinute.objects.get(span_minutes=60)
    assert row.minute == action.finished_at.replace(minute=0, second=0, microsecond=0)


def _bucket_of(ms: float) -> int:
    return sum(1 for edge in HISTOGRAM_EDGES_MS if ms >= edge)


@pytest.mark.parametrize(("wait_ms", "run_ms"), [(0.4, 3), (250, 1_500), (90_000, 2e8)])
def test_wait_and_run_times_land_in_their_log_buckets(wait_ms, run_ms):
    action = started(submitted(tasks=()))
    base = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
    Action.objects.filter(pk=action.pk).update(
        queued_at=base, started_at=base + timedelta(milliseconds=wait_ms)
    )
    Action.objects.filter(pk=action.pk).update(
        status=Status.ERROR,
        finished_at=base + timedelta(milliseconds=wait_ms + run_ms),
    )
    row = (
        OutcomeMinute.objects.filter(span_minutes=60)
        .values(*histogram_columns("wait"), *histogram_columns("run"))
        .get()
    )
    waits = [row[name] for name in histogram_columns("wait")]
    runs = [row[name] for name in histogram_columns("run")]
    assert waits.index(1) == _bucket_of(wait_ms) and sum(waits) == 1
    assert runs.index(1) == _bucket_of(run_ms) and sum(runs) == 1


def test_a_change_between_final_statuses_or_to_a_non_final_one_counts_nothing():
    action = started(submitted(tasks=()))
    Action.objects.filter(pk=action.pk).update(status=Status.QUEUED, started_at=None)
    queue.cancel_action(pk=action.pk)
    Action.objects.filter(pk=action.pk).update(status=Status.ERROR)
    assert counted() == {("fetch", "", "Cancelled"): 1}


def test_the_backfill_counts_what_the_trigger_would_have():
    for n in range(5):
        action = started(submitted(tasks=("DOCS",) if n % 2 else ("HR", "DOCS")))
        queue.end_action(pk=action.pk, worker=WORKER, ending=ending(error="x" if n == 3 else ""))
    queue.cancel_action(pk=submitted().pk)
    columns = ["minute", "span_minutes", "queue", "task", "status", "ended"]
    columns += histogram_columns("wait") + histogram_columns("run")
    by_trigger = sorted(OutcomeMinute.objects.values_list(*columns))
    OutcomeMinute.objects.all().delete()
    outcomes.backfill(batch=2)
    assert sorted(OutcomeMinute.objects.values_list(*columns)) == by_trigger


def test_retention_deletes_old_minutes_with_the_actions():
    now = timezone.now().replace(second=0, microsecond=0)
    for days in (2, 5, 9):
        OutcomeMinute.objects.create(
            minute=now - timedelta(days=days), queue="fetch", status="Finished", ended=1
        )
    retention.delete_old_actions(days=3, now=now)
    assert OutcomeMinute.objects.count() == 1
    OutcomeMinute.objects.create(
        minute=now - timedelta(days=9), queue="fetch", status="Finished", ended=1
    )
    # Retention kept longer than the history shows, or off: a week and a day is kept.
    retention.delete_old_actions(days=0, now=now)
    assert sorted(OutcomeMinute.objects.values_list("ended", flat=True)) == [1]
