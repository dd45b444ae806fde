"""The queue: every state transition, every refused one, and races with real threads."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.db import IntegrityError, connection, connections, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from connector import queue, signals, writers
from connector.models import Action, ActionLogLine, Status, TaskHold

pytestmark = pytest.mark.django_db

WORKER = "test-worker"


def submit(priority: int = 0, **kwargs: Any) -> Action:
    return queue.submit_action(fetch_action="NoOp", params={}, priority=priority, **kwargs)


def claim_one(worker: str = WORKER) -> Action:
    (action,) = queue.claim_actions(queue="fetch", worker=worker, limit=1)
    return action


def finish(action: Action, worker: str = WORKER, **kwargs: Any) -> bool:
    return queue.end_action(
        pk=action.pk, worker=worker, ending=queue.Ending(counts={}, result={}, progress=0, **kwargs)
    )


def status_of(action: Action) -> str:
    return Action.objects.values_list("status", flat=True).get(pk=action.pk)


def expire(action: Action) -> None:
    Action.objects.filter(pk=action.pk).update(
        lease_expires_at=timezone.now() - timedelta(seconds=5)
    )


# --- Transitions -----------------------------------------------------------------------


def test_submitted_action_is_queued_with_a_token():
    action = submit(submitted_by="ops", submitted_from="127.0.0.1")
    assert action.status == Status.QUEUED
    assert action.token
    assert action.fetch_action == "NOOP"
    assert action.queued_at is not None


def test_claim_makes_action_processing_for_the_worker_with_a_lease():
    submit()
    action = claim_one()
    assert action.status == Status.PROCESSING
    assert action.worker == WORKER
    assert action.started_at is not None
    assert action.lease_expires_at > timezone.now()
    assert action.attempts == 1


def test_claim_stores_times_in_the_same_form_as_the_orm():
    submit()
    action = claim_one()
    # The claim is raw SQL; its times must read back like ORM-written ones.
    assert action.started_at.tzinfo is not None
    assert Action.objects.filter(pk=action.pk, started_at__lte=timezone.now()).exists()
    assert Action.objects.filter(pk=action.pk, lease_expires_at__gt=timezone.now()).exists()


def test_claimed_action_reads_like_one_loaded_by_the_orm():
    submit(priority=3, action_id="a-1", submitted_by="ops")
    Action.objects.update(params={"Seconds": "0.5", "Steps": 2}, tasks="ONE,TWO")
    claimed = claim_one()
    loaded = Action.objects.get(pk=claimed.pk)
    for name in [
        "id", "token", "queue", "fetch_action", "params", "tasks", "action_id", "priority",
        "status", "queued_at", "started_at", "worker", "lease_expires_at", "attempts",
        "stop_requested",
    ]:  # fmt: skip
        assert getattr(claimed, name) == getattr(loaded, name), name
        assert type(getattr(claimed, name)) is type(getattr(loaded, name)), name
    assert claimed.get_deferred_fields() >= {"submitted_by", "counts"}
    assert claimed.submitted_by == "ops"  # a field not read by the claim loads when asked for
    assert not claimed._state.adding


@pytest.mark.django_db(transaction=True)
def test_claim_and_finish_tell_listeners_once_committed():
    heard: list[list[int]] = []

    def listener(*, pks: list[int], **kwargs: Any) -> None:
        # Told after the commit: another connection sees the change already.
        with connections.create_connection("default").cursor() as other:
            other.execute("SELECT status FROM connector_action WHERE id = %s", [pks[0]])
            heard.append([*pks, other.fetchone()[0]])

    action = submit()
    signals.action_changed.connect(listener)
    try:
        claim_one()
        finish(action)
    finally:
        signals.action_changed.disconnect(listener)
    assert heard == [[action.pk, Status.PROCESSING], [action.pk, Status.FINISHED]]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL only")
@pytest.mark.django_db(transaction=True)
def test_finish_after_a_claim_waits_for_the_wal_flush():
    # The claim commits without waiting for its flush; that must end with the
    # claim, or the finish on the same connection would not be durable.
    submit()
    action = claim_one()
    seen: list[str] = []

    def before_finish(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if sql.startswith("UPDATE"):
            context["cursor"].cursor.execute("SHOW synchronous_commit")
            seen.append(context["cursor"].cursor.fetchone()[0])
        return execute(sql, params, many, context)

    with connection.execute_wrapper(before_finish):
        assert finish(action)
    assert seen == ["on"]


def finish_and_claim(action: Action, worker: str = WORKER, **kwargs: Any) -> list[Action]:
    ending = queue.Ending(**{"counts": {}, "result": {}, "progress": 0, **kwargs})
    return queue.finish_and_claim(queue="fetch", pk=action.pk, worker=worker, ending=ending)


@pytest.mark.django_db(transaction=True)
def test_finish_and_claim_ends_one_action_and_claims_the_next_in_one_commit():
    first, second, third = submit(), submit(), submit()
    assert claim_one().pk == first.pk
    heard: list[list[Any]] = []

    def listener(*, pks: list[int], **kwargs: Any) -> None:
        with connections.create_connection("default").cursor() as other:
            other.execute("SELECT status FROM connector_action WHERE id = %s", [pks[0]])
            heard.append([*pks, other.fetchone()[0]])

    signals.action_changed.connect(listener)
    try:
        (claimed,) = finish_and_claim(first, counts={"T": {"seen": 1}})
    finally:
        signals.action_changed.disconnect(listener)
    assert claimed.pk == second.pk
    assert claimed.status == Status.PROCESSING and claimed.worker == WORKER
    first.refresh_from_db()
    assert first.status == Status.FINISHED
    assert first.counts == {"T": {"seen": 1}} and first.progress == 100
    assert status_of(second) == Status.PROCESSING
    assert status_of(third) == Status.QUEUED
    # Told of both, each after the commit.
    assert heard == [[first.pk, Status.FINISHED], [second.pk, Status.PROCESSING]]


def test_finish_and_claim_records_errors_and_stops_as_end_action_does():
    for _ in range(3):
        submit()
    failing = claim_one()
    (stopping,) = finish_and_claim(failing, error="the repository is gone")
    finish_and_claim(stopping, stopped=True, progress=40)
    failing.refresh_from_db()
    stopping.refresh_from_db()
    assert (failing.status, failing.error) == (Status.ERROR, "the repository is gone")
    assert (stopping.status, stopping.progress) == (Status.STOPPED, 40)


def test_finish_and_claim_claims_nothing_from_a_paused_or_empty_queue():
    action, waiting = submit(), submit()
    claim_one()
    queue.set_paused(queue="fetch", paused=True)
    assert finish_and_claim(action) == []
    assert status_of(action) == Status.FINISHED
    assert status_of(waiting) == Status.QUEUED
    queue.set_paused(queue="fetch", paused=False)
    (claimed,) = queue.claim_actions(queue="fetch", worker=WORKER, limit=1)
    assert finish_and_claim(claimed) == []
    assert status_of(waiting) == Status.FINISHED


def test_finish_and_claim_by_a_worker_that_lost_the_action_still_claims(caplog):
    lost, waiting = submit(), submit()
    claim_one(worker="old-worker")
    expire(lost)
    queue.recover_expired()
    assert claim_one(worker="new-worker").pk == lost.pk
    (claimed,) = finish_and_claim(lost, worker="old-worker")
    assert claimed.pk == waiting.pk and claimed.worker == "old-worker"
    lost.refresh_from_db()
    assert (lost.status, lost.worker) == (Status.PROCESSING, "new-worker")
    assert "which no longer holds it" in caplog.text


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL only")
@pytest.mark.django_db(transaction=True)
def test_finish_and_claim_is_one_durable_round_trip_on_postgresql():
    action, _ = submit(), submit()
    claim_one()
    sent: list[tuple[str, str]] = []

    def spy(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        context["cursor"].cursor.execute("SHOW synchronous_commit")
        sent.append((sql, context["cursor"].cursor.fetchone()[0]))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(spy):
        assert len(finish_and_claim(action)) == 1
    ((sql, synchronous_commit),) = sent
    assert sql.startswith("UPDATE") and "RETURNING" in sql
    # The claim's SET LOCAL is not in it: the commit waits for the WAL flush.
    assert "synchronous_commit" not in sql and synchronous_commit == "on"


def test_finish_makes_action_finished_at_full_progress():
    submit()
    action = claim_one()
    assert queue.end_action(
        pk=action.pk,
        worker=WORKER,
        ending=queue.Ending(counts={"T": {"seen": 2}}, result={"x": 1}, progress=40),
    )
    action.refresh_from_db()
    assert action.status == Status.FINISHED
    assert action.progress == 100
    assert action.counts == {"T": {"seen": 2}}
    assert action.finished_at is not None
    assert action.lease_expires_at is None


def test_finish_with_an_error_makes_action_error():
    submit()
    action = claim_one()
    assert finish(action, error="the repository is gone")
    action.refresh_from_db()
    assert action.status == Status.ERROR
    assert action.error == "the repository is gone"


def test_finish_after_a_checkpoint_stop_makes_action_stopped_with_counts_kept():
    submit()
    action = claim_one()
    queue.request_stop(pk=action.pk, stopped_by="ops")
    assert queue.end_action(
        pk=action.pk,
        worker=WORKER,
        ending=queue.Ending(counts={"T": {"seen": 3}}, result={}, progress=30, stopped=True),
    )
    action.refresh_from_db()
    assert action.status == Status.STOPPED
    assert action.counts == {"T": {"seen": 3}}
    assert action.progress == 30
    assert action.stopped_by == "ops"


def test_completion_after_an_accepted_stop_is_recorded_stopped():
    submit()
    action = claim_one()
    queue.request_stop(pk=action.pk)
    # The action completed before it reached a checkpoint.
    assert finish(action)
    assert status_of(action) == Status.STOPPED


def test_cancel_makes_queued_action_cancelled_and_never_claimed():
    action = submit()
    queue.cancel_action(pk=action.pk, cancelled_by="ops", cancelled_from="10.0.0.1")
    action.refresh_from_db()
    assert action.status == Status.CANCELLED
    assert action.cancelled_by == "ops"
    assert action.finished_at is not None
    assert queue.claim_actions(queue="fetch", worker=WORKER, limit=10) == []


def test_cancel_of_processing_action_is_refused():
    submit()
    action = claim_one()
    with pytest.raises(queue.ActionNotQueued) as refused:
        queue.cancel_action(pk=action.pk)
    assert refused.value.status == Status.PROCESSING
    assert status_of(action) == Status.PROCESSING


@pytest.mark.parametrize("ending", ["finish", "error", "cancel", "stop"])
def test_cancel_of_final_action_is_refused(ending):
    action = final_action(ending)
    before = status_of(action)
    with pytest.raises(queue.ActionNotQueued):
        queue.cancel_action(pk=action.pk)
    assert status_of(action) == before


def test_stop_of_queued_action_is_refused():
    action = submit()
    with pytest.raises(queue.ActionNotRunning) as refused:
        queue.request_stop(pk=action.pk)
    assert refused.value.status == Status.QUEUED
    action.refresh_from_db()
    assert action.status == Status.QUEUED
    assert not action.stop_requested


@pytest.mark.parametrize("ending", ["finish", "error", "cancel", "stop"])
def test_stop_of_final_action_is_refused(ending):
    action = final_action(ending)
    before = status_of(action)
    with pytest.raises(queue.ActionNotRunning):
        queue.request_stop(pk=action.pk)
    assert status_of(action) == before


def final_action(ending: str) -> Action:
    action = submit()
    if ending == "cancel":
        queue.cancel_action(pk=action.pk)
        return action
    claim_one()
    if ending == "stop":
        queue.request_stop(pk=action.pk)
    finish(action, error="failed" if ending == "error" else "", stopped=ending == "stop")
    return action


def test_change_priority_of_queued_action_changes_its_place():
    low = submit(priority=0)
    high = submit(priority=0)
    queue.change_priority(pk=high.pk, priority=5)
    assert claim_one().pk == high.pk
    assert claim_one().pk == low.pk


def test_change_priority_of_running_action_is_refused():
    submit()
    action = claim_one()
    with pytest.raises(queue.ActionNotQueued):
        queue.change_priority(pk=action.pk, priority=9)
    action.refresh_from_db()
    assert action.priority == 0


def test_finish_by_a_worker_that_no_longer_holds_the_action_is_refused():
    submit()
    action = claim_one(worker="old-worker")
    expire(action)
    queue.recover_expired()
    claim_one(worker="new-worker")
    assert not finish(action, worker="old-worker")
    action.refresh_from_db()
    assert action.status == Status.PROCESSING
    assert action.worker == "new-worker"


def test_finish_of_a_cancelled_action_is_refused():
    action = submit()
    queue.cancel_action(pk=action.pk)
    assert not finish(action)
    assert status_of(action) == Status.CANCELLED


def test_progress_is_recorded_only_for_the_holding_worker():
    submit()
    action = claim_one()
    queue.record_progress(pk=action.pk, worker="other", percent=50, stage="x", counts={})
    queue.record_progress(pk=action.pk, worker=WORKER, percent=150, stage="reading", counts={})
    action.refresh_from_db()
    assert action.progress == 100
    assert action.stage == "reading"


# --- Order, pause, MaximumThreads-sized claims -----------------------------------------


def test_claim_takes_higher_priority_first_then_oldest():
    old_low = submit(priority=0)
    old_high = submit(priority=3)
    new_high = submit(priority=3)
    new_low = submit(priority=0)
    order = [a.pk for a in queue.claim_actions(queue="fetch", worker=WORKER, limit=10)]
    assert order == [old_high.pk, new_high.pk, old_low.pk, new_low.pk]


def test_claim_takes_no_more_than_the_limit():
    for _ in range(5):
        submit()
    assert len(queue.claim_actions(queue="fetch", worker=WORKER, limit=2)) == 2
    assert Action.objects.filter(status=Status.QUEUED).count() == 3
    assert queue.claim_actions(queue="fetch", worker=WORKER, limit=0) == []


def test_pause_blocks_claims_and_resume_allows_them():
    action = submit()
    queue.set_paused(queue="fetch", paused=True, changed_by="ops")
    assert queue.is_paused("fetch")
    assert queue.claim_actions(queue="fetch", worker=WORKER, limit=10) == []
    assert status_of(action) == Status.QUEUED
    queue.set_paused(queue="FETCH", paused=False)
    assert not queue.is_paused("fetch")
    assert claim_one().pk == action.pk


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's one write lock")
def test_a_claim_of_a_paused_queue_takes_no_write_lock_on_sqlite():
    action = submit()
    queue.set_paused(queue="fetch", paused=True)
    with CaptureQueriesContext(connection) as ran:
        assert queue.claim_actions(queue="fetch", worker=WORKER, limit=1) == []
    statements = [q["sql"].split()[0] for q in ran.captured_queries]
    assert set(statements) <= {"SELECT", "SAVEPOINT", "RELEASE"}, statements
    queue.set_paused(queue="fetch", paused=False)
    assert claim_one().pk == action.pk


def test_pause_of_an_unknown_queue_is_refused():
    with pytest.raises(queue.UnknownQueue):
        queue.set_paused(queue="nosuch", paused=True)


# --- Leases and recovery -----------------------------------------------------------------


def test_renew_leases_extends_leases_and_returns_stop_pending_actions():
    submit()
    submit()
    first, second = queue.claim_actions(queue="fetch", worker=WORKER, limit=2)
    Action.objects.update(lease_expires_at=timezone.now() + timedelta(seconds=1))
    queue.request_stop(pk=second.pk)
    assert queue.renew_leases(worker=WORKER) == {second.pk}
    for action in (first, second):
        action.refresh_from_db()
        assert action.lease_expires_at > timezone.now() + timedelta(seconds=5)


def test_renew_leases_of_given_actions_leaves_the_others_to_expire():
    submit()
    submit()
    kept, orphan = queue.claim_actions(queue="fetch", worker=WORKER, limit=2)
    expire(orphan)
    queue.renew_leases(worker=WORKER, pks=[kept.pk])
    assert queue.recover_expired().requeued == [orphan.pk]
    assert status_of(kept) == Status.PROCESSING


def test_recovery_requeues_an_expired_action_under_max_attempts():
    submit()
    action = claim_one()
    queue.record_progress(pk=action.pk, worker=WORKER, percent=50, stage="x", counts={"T": {}})
    expire(action)
    recovered = queue.recover_expired()
    assert recovered.requeued == [action.pk]
    action.refresh_from_db()
    assert action.status == Status.QUEUED
    assert action.worker == ""
    assert action.progress == 0
    assert action.lease_expires_at is None
    assert ActionLogLine.objects.filter(action=action, message__contains="queued again").exists()
    assert claim_one().attempts == 2


@override_settings(CONNECTOR_MAX_ATTEMPTS=2)
def test_recovery_makes_an_action_error_at_max_attempts():
    submit()
    action = claim_one()
    expire(action)
    queue.recover_expired()
    claim_one()
    expire(action)
    recovered = queue.recover_expired()
    assert recovered.failed == [action.pk]
    action.refresh_from_db()
    assert action.status == Status.ERROR
    assert "tried 2 times" in action.error


def test_recovery_makes_an_expired_action_with_a_stop_pending_stopped():
    submit()
    action = claim_one()
    queue.request_stop(pk=action.pk)
    expire(action)
    assert queue.recover_expired().stopped == [action.pk]
    assert status_of(action) == Status.STOPPED


def test_recovery_leaves_actions_with_a_live_lease_alone():
    submit()
    action = claim_one()
    assert queue.recover_expired() == queue.Recovered([], [], [])
    assert status_of(action) == Status.PROCESSING


def test_an_action_released_at_shutdown_is_queued_again_with_its_attempt_given_back():
    """DESIGN: an attempt is spent only when a worker is lost; a graceful
    shutdown puts its actions back unspent (issue 14, 2). This pins the change
    from "released for recovery", which spent one."""
    submit()
    action = claim_one()
    assert action.attempts == 1
    queue.record_progress(pk=action.pk, worker=WORKER, percent=50, stage="x", counts={"T": {}})
    released = queue.release_actions(worker=WORKER, pks=[action.pk])
    assert released == queue.Released(requeued=[action.pk], stopped=[])
    action.refresh_from_db()
    assert (action.status, action.worker, action.attempts, action.progress) == (
        Status.QUEUED, "", 0, 0,
    )  # fmt: skip
    note = f"Worker {WORKER} shut down; action queued again (attempt not spent)"
    assert ActionLogLine.objects.filter(action=action, message=note).exists()
    assert queue.recover_expired() == queue.Recovered([], [], [])
    assert claim_one().attempts == 1


@override_settings(CONNECTOR_MAX_ATTEMPTS=2)
def test_shutdowns_never_make_an_action_error_only_lost_leases_do():
    submit()
    for _ in range(5):
        action = claim_one()
        queue.release_actions(worker=WORKER, pks=[action.pk])
    action = claim_one()
    expire(action)
    assert queue.recover_expired().requeued == [action.pk]
    claim_one()
    expire(action)
    assert queue.recover_expired().failed == [action.pk]
    action.refresh_from_db()
    assert "stopped responding (its lease ran out with no heartbeat)" in action.error
    assert "tried 2 times" in action.error


def test_an_action_released_with_a_stop_pending_ends_stopped():
    submit()
    action = claim_one()
    queue.request_stop(pk=action.pk)
    assert queue.release_actions(worker=WORKER, pks=[action.pk]).stopped == [action.pk]
    assert status_of(action) == Status.STOPPED


def test_release_changes_only_actions_the_worker_still_holds():
    submit()
    action = claim_one()
    assert queue.release_actions(worker="another", pks=[action.pk]) == queue.Released([], [])
    assert status_of(action) == Status.PROCESSING


# --- Races with real threads -------------------------------------------------------------


class Racers:
    """Threads that run one function each, released together by a barrier, per round.

    The threads live for the whole test, so each keeps one database connection,
    which it closes when the test ends.
    """

    def __init__(self, count: int) -> None:
        self._count = count
        self._work: list[Callable[[], Any] | None] = [None] * count
        self._results: list[Any] = [None] * count
        self._start = threading.Barrier(count + 1)
        self._done = threading.Barrier(count + 1)
        self._closing = False
        self._ready = threading.Barrier(count)
        self._threads = [
            threading.Thread(target=self._loop, args=(n,), daemon=True) for n in range(count)
        ]
        for thread in self._threads:
            thread.start()

    def _loop(self, n: int) -> None:
        try:
            while True:
                self._start.wait()
                if self._closing:
                    return
                fn = self._work[n]
                assert fn is not None
                # Line up once more so both calls start as close together as possible.
                self._ready.wait()
                try:
                    self._results[n] = ("ok", fn())
                except Exception as error:
                    self._results[n] = ("error", error)
                self._done.wait()
        finally:
            connection.close()

    def race(self, *fns: Callable[[], Any]) -> list[tuple[str, Any]]:
        assert len(fns) == self._count
        self._work = list(fns)
        self._ready = threading.Barrier(self._count)
        self._start.wait()
        self._done.wait()
        return list(self._results)

    def close(self) -> None:
        self._closing = True
        self._start.wait()
        for thread in self._threads:
            thread.join(5)


@pytest.fixture
def racers() -> Iterator[Callable[[int], Racers]]:
    made: list[Racers] = []

    def make(count: int) -> Racers:
        made.append(Racers(count))
        return made[-1]

    yield make
    for group in made:
        group.close()


ROUNDS = 100


@pytest.mark.django_db(transaction=True)
def test_cancel_racing_the_claim_has_exactly_one_winner(racers):
    pair = racers(2)
    cancelled = claimed = 0
    for _ in range(ROUNDS):
        action = submit()
        cancel, claim = pair.race(
            lambda pk=action.pk: queue.cancel_action(pk=pk),
            lambda: queue.claim_actions(queue="fetch", worker=WORKER, limit=1),
        )
        assert claim[0] == "ok", claim
        final = status_of(action)
        if cancel[0] == "ok":
            assert claim[1] == []
            assert final == Status.CANCELLED
            cancelled += 1
        else:
            assert isinstance(cancel[1], queue.ActionNotQueued), cancel
            assert [a.pk for a in claim[1]] == [action.pk]
            assert final == Status.PROCESSING
            claimed += 1
            finish(action)
    assert cancelled + claimed == ROUNDS


@pytest.mark.django_db(transaction=True)
def test_stop_racing_the_finish_has_exactly_one_winner(racers):
    pair = racers(2)
    stopped = finished = 0
    for _ in range(ROUNDS):
        submit()
        action = claim_one()
        stop, done = pair.race(
            lambda pk=action.pk: queue.request_stop(pk=pk),
            lambda a=action: finish(a),
        )
        assert done == ("ok", True), done
        final = status_of(action)
        if stop[0] == "ok":
            # The Stop was accepted: the client must see Stopped.
            assert final == Status.STOPPED
            stopped += 1
        else:
            assert isinstance(stop[1], queue.ActionNotRunning), stop
            assert stop[1].status == Status.FINISHED
            assert final == Status.FINISHED
            finished += 1
    assert stopped + finished == ROUNDS


@pytest.mark.django_db(transaction=True)
def test_workers_claiming_concurrently_never_claim_an_action_twice(racers):
    workers = 4
    group = racers(workers)
    for _ in range(20):
        pks = {submit().pk for _ in range(12)}

        def drain(name: str) -> list[int]:
            taken: list[int] = []
            while batch := queue.claim_actions(queue="fetch", worker=name, limit=2):
                taken += [a.pk for a in batch]
            return taken

        results = group.race(*(lambda n=n: drain(f"w{n}") for n in range(workers)))
        assert all(kind == "ok" for kind, _ in results), results
        taken = [pk for _, pks_of_worker in results for pk in pks_of_worker]
        assert sorted(taken) == sorted(pks)
        by_worker = dict(
            Action.objects.filter(pk__in=pks).values_list("pk", "worker").order_by("pk")
        )
        for n, (_, pks_of_worker) in enumerate(results):
            assert all(by_worker[pk] == f"w{n}" for pk in pks_of_worker)
        Action.objects.filter(pk__in=pks).update(status=Status.FINISHED)


def test_unclaimed_action_is_queued_again_as_if_never_claimed():
    action = queue.submit_action(fetch_action="NoOp", params={})
    (claimed,) = queue.claim_actions(queue="fetch", worker="w1", limit=1)
    assert queue.unclaim_action(pk=claimed.pk, worker="w1")
    again = Action.objects.get(pk=action.pk)
    assert again.status == Status.QUEUED
    assert (again.worker, again.started_at, again.attempts) == ("", None, 0)
    assert not queue.unclaim_action(pk=claimed.pk, worker="w1")


# --- One writer per task -----------------------------------------------------------------


def submit_writer(fetch_action: str = "Synchronize", tasks: str = "DOCS", **kwargs: Any) -> Action:
    return queue.submit_action(
        fetch_action=fetch_action, params={}, tasks=tasks.split(","), **kwargs
    )


def claimed_pks(worker: str = WORKER, limit: int = 1) -> list[int]:
    return [a.pk for a in queue.claim_actions(queue="fetch", worker=worker, limit=limit)]


def held_tasks() -> dict[str, int]:
    return dict(TaskHold.objects.values_list("task", "action_id"))


@pytest.mark.parametrize(
    "name", ["Synchronize", "Update", "Delete", "Remove", "Hold", "ReleaseHold", "Insert"]
)
def test_actions_that_write_a_task_record_the_tasks_they_write(name):
    action = submit_writer(name, "DOCS,OTHER,DOCS")
    assert action.writes == "DOCS,OTHER"
    assert sorted(action.task_writes.values_list("task", flat=True)) == ["DOCS", "OTHER"]
    assert held_tasks() == {}


@pytest.mark.parametrize("name", ["Identifiers", "Collect", "NoOp", "Sleep", "NotAnAction"])
def test_actions_that_only_read_write_no_task(name):
    action = submit_writer(name, "DOCS")
    assert action.writes == ""
    assert not action.task_writes.exists()


def test_the_hold_trigger_is_installed_after_all_migrations():
    # A later migration that rebuilds the action table on SQLite drops it;
    # connector.apps puts it back after every migrate.
    assert writers.installed(connection)


def test_a_second_writer_of_a_task_waits_queued_until_the_first_ends():
    first = submit_writer()
    second = submit_writer()
    assert claimed_pks() == [first.pk]
    assert held_tasks() == {"DOCS": first.pk}
    assert claimed_pks() == []
    assert status_of(second) == Status.QUEUED
    assert writers.waits([second.pk]) == {
        second.pk: [writers.Wait(task="DOCS", pk=first.pk, token=first.token)]
    }
    finish(first)
    assert held_tasks() == {}
    assert writers.waits([second.pk]) == {}
    assert claimed_pks() == [second.pk]
    assert held_tasks() == {"DOCS": second.pk}


def test_update_and_hold_wait_for_a_running_synchronize_of_their_task():
    sync = submit_writer("Synchronize", "DOCS,OTHER")
    update = submit_writer("Update", "OTHER")
    hold = submit_writer("Hold", "DOCS")
    elsewhere = submit_writer("Update", "THIRD")
    assert claimed_pks() == [sync.pk]
    assert claimed_pks() == [elsewhere.pk]  # another task: runs at once
    assert claimed_pks() == []
    assert set(writers.waits([update.pk, hold.pk, elsewhere.pk])) == {update.pk, hold.pk}
    finish(sync)
    assert claimed_pks() == [update.pk]
    assert claimed_pks() == [hold.pk]  # OTHER and DOCS: different tasks


def test_an_action_that_writes_no_task_passes_a_waiting_writer():
    submit_writer()
    claim_one()
    waiting = submit_writer()
    reader = submit()
    assert claimed_pks() == [reader.pk]
    assert status_of(waiting) == Status.QUEUED


def test_a_claim_of_several_takes_at_most_one_writer_of_a_task():
    second = submit_writer(priority=1, tasks="DOCS,ONE")
    first = submit_writer(priority=2)
    other = submit_writer(tasks="OTHER")
    third = submit_writer(tasks="ONE")
    reader = submit()
    assert sorted(claimed_pks(limit=5)) == sorted([first.pk, other.pk, reader.pk])
    assert held_tasks() == {"DOCS": first.pk, "OTHER": other.pk}
    # ``third`` shares ONE with ``second``, picked before it: it is left for the
    # next claim, which passes over ``second`` (DOCS is held) and takes it.
    assert (status_of(second), status_of(third)) == (Status.QUEUED, Status.QUEUED)
    assert claimed_pks(limit=5) == [third.pk]
    assert status_of(second) == Status.QUEUED


def _end_by_finish(action: Action) -> None:
    finish(action)


def _end_by_stop(action: Action) -> None:
    queue.request_stop(pk=action.pk)
    finish(action, stopped=True)


def _end_by_error(action: Action) -> None:
    finish(action, error="broken")


def _end_by_unclaim(action: Action) -> None:
    assert queue.unclaim_action(pk=action.pk, worker=WORKER)


def _end_by_recovery_requeue(action: Action) -> None:
    expire(action)
    assert queue.recover_expired().requeued == [action.pk]


def _end_by_recovery_error(action: Action) -> None:
    Action.objects.filter(pk=action.pk).update(attempts=99)
    expire(action)
    assert queue.recover_expired().failed == [action.pk]


def _end_by_recovery_stop(action: Action) -> None:
    queue.request_stop(pk=action.pk)
    expire(action)
    assert queue.recover_expired().stopped == [action.pk]


@pytest.mark.parametrize(
    "end",
    [
        _end_by_finish,
        _end_by_stop,
        _end_by_error,
        _end_by_unclaim,
        _end_by_recovery_requeue,
        _end_by_recovery_error,
        _end_by_recovery_stop,
    ],
)
def test_a_task_is_freed_whenever_its_writer_leaves_processing(end):
    first = submit_writer()
    second = submit_writer()
    assert claimed_pks() == [first.pk]
    end(Action.objects.get(pk=first.pk))
    assert held_tasks() == {}
    # The waiting writer (the older one, if the first was queued again) runs next.
    assert claimed_pks() in ([second.pk], [first.pk])
    assert len(held_tasks()) == 1


def test_finish_and_claim_hands_the_task_to_the_waiting_writer():
    first = submit_writer()
    second = submit_writer()
    claim_one()
    assert [a.pk for a in finish_and_claim(Action.objects.get(pk=first.pk))] == [second.pk]
    assert held_tasks() == {"DOCS": second.pk}


def test_the_database_refuses_a_second_writer_processing_whatever_the_code_does():
    first = submit_writer()
    second = submit_writer()
    assert claim_one().pk == first.pk
    with pytest.raises(IntegrityError), transaction.atomic():
        Action.objects.filter(pk=second.pk).update(status=Status.PROCESSING)
    assert status_of(second) == Status.QUEUED


def test_a_claim_that_loses_a_task_to_a_simultaneous_claim_tries_again(monkeypatch):
    # What a concurrent claimer sees on PostgreSQL: its statement picked a
    # writer whose task another claim took meanwhile, and the database refused.
    first = submit_writer()
    reader = submit()
    real = queue._claim_once
    calls: list[int] = []

    def losing_once(*args: Any) -> list[Action]:
        calls.append(1)
        if len(calls) == 1:
            raise IntegrityError("duplicate key value violates unique constraint")
        return real(*args)

    monkeypatch.setattr(queue, "_claim_once", losing_once)
    assert claimed_pks() == [first.pk]
    assert len(calls) == 2
    assert claimed_pks() == [reader.pk]


def test_a_claim_that_keeps_losing_gives_up_with_nothing(monkeypatch):
    submit_writer()

    def losing(*args: Any) -> list[Action]:
        raise IntegrityError("duplicate key value violates unique constraint")

    monkeypatch.setattr(queue, "_claim_once", losing)
    assert claimed_pks() == []


def test_finish_and_claim_that_keeps_losing_still_records_the_end(monkeypatch):
    first = submit_writer("Synchronize", "ONE")
    claim_one()

    def losing(*args: Any) -> list[Action]:
        raise IntegrityError("duplicate key value violates unique constraint")

    monkeypatch.setattr(queue, "_finish_and_claim_once", losing)
    assert finish_and_claim(Action.objects.get(pk=first.pk)) == []
    assert status_of(first) == Status.FINISHED


@pytest.mark.django_db(transaction=True)
def test_claims_racing_for_two_writers_of_one_task_have_exactly_one_winner(racers):
    pair = racers(2)
    for _ in range(ROUNDS // 2):
        first, second = submit_writer(), submit_writer()
        results = pair.race(
            lambda: claimed_pks(worker="w1"),
            lambda: claimed_pks(worker="w2"),
        )
        assert all(kind == "ok" for kind, _ in results), results
        taken = [pk for _, pks in results for pk in pks]
        assert len(taken) == 1, results
        assert held_tasks() == {"DOCS": taken[0]}
        assert Action.objects.filter(status=Status.PROCESSING).count() == 1
        Action.objects.filter(pk__in=[first.pk, second.pk]).update(status=Status.FINISHED)
        assert held_tasks() == {}
