"""The worker engine with real threads: claims, pools, stops, pause, heartbeat, shutdown."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone
from worker_helpers import FINAL, noop_action, sleep_action, status_of, wait_for, wait_for_status

from connector import queue
from connector.models import Action, ActionLogLine, ActionTransition, Status, WorkerProcess
from connector.worker.engine import WorkerEngine, current_engine

threads = pytest.mark.django_db(transaction=True)


@threads
def test_engine_runs_actions_to_completion_in_its_threads(start_engine):
    actions = [noop_action() for _ in range(5)] + [sleep_action(0.05, steps=5)]
    engine = start_engine()
    for action in actions:
        assert wait_for_status(action.pk, *FINAL) == Status.FINISHED
    sleep = Action.objects.get(pk=actions[-1].pk)
    assert sleep.worker == engine.id
    assert sleep.counts == {"SLEEP": {"seen": 5}}
    assert sleep.progress == 100


@threads
def test_engine_is_the_current_engine_of_the_process_until_shut_down(start_engine):
    engine = start_engine()
    assert current_engine() is engine
    engine.shutdown(grace=0)
    assert current_engine() is None


@threads
def test_engine_registers_its_process_and_removes_it_at_shutdown(start_engine):
    engine = start_engine(channel_name="specific.test!abc")
    row = WorkerProcess.objects.get(pk=engine.id)
    assert row.channel_name == "specific.test!abc"
    assert row.threads == {"fetch": engine.queues["fetch"]}
    assert row.pid == engine.pid
    assert not row.stopping
    engine.shutdown(grace=0)
    assert not WorkerProcess.objects.filter(pk=engine.id).exists()


@threads
@override_settings(CONNECTOR_QUEUES={"fetch": {"MaximumThreads": 2}})
def test_maximum_threads_bounds_how_many_actions_run_at_once(start_engine):
    actions = [sleep_action(0.15, steps=3) for _ in range(6)]
    engine = start_engine()
    most = 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        processing = Action.objects.filter(status=Status.PROCESSING).count()
        most = max(most, processing, engine.running_counts()["fetch"])
        if all(status_of(a.pk) == Status.FINISHED for a in actions):
            break
        time.sleep(0.01)
    assert most == 2
    assert all(status_of(a.pk) == Status.FINISHED for a in actions)


@threads
def test_stop_local_ends_a_sleep_as_stopped_with_counts_kept(start_engine):
    engine = start_engine()
    action = sleep_action(20, steps=2000)
    engine.wake()
    wait_for(lambda: (c := Action.objects.get(pk=action.pk).counts) and c["SLEEP"]["seen"] >= 5)
    queue.request_stop(pk=action.pk, stopped_by="ops")
    assert engine.stop_local(action.pk)
    assert wait_for_status(action.pk, *FINAL, timeout=2) == Status.STOPPED
    stopped = Action.objects.get(pk=action.pk)
    assert stopped.counts["SLEEP"]["seen"] >= 5
    assert 0 < stopped.progress < 100


@threads
@override_settings(CONNECTOR_HEARTBEAT_SECONDS=0.05)
def test_stop_pending_at_the_heartbeat_ends_the_action_stopped(start_engine):
    engine = start_engine()
    action = sleep_action(20, steps=2000)
    engine.wake()
    wait_for_status(action.pk, Status.PROCESSING)
    # No message reaches the engine: only the heartbeat can tell it.
    queue.request_stop(pk=action.pk)
    assert wait_for_status(action.pk, *FINAL, timeout=2) == Status.STOPPED


@threads
def test_stop_message_that_overtakes_the_claim_stops_the_action_when_claimed(start_engine):
    engine = start_engine()
    queue.set_paused(queue="fetch", paused=True)
    action = sleep_action(20, steps=2000)
    assert not engine.stop_local(action.pk)
    queue.set_paused(queue="fetch", paused=False)
    engine.wake()
    assert wait_for_status(action.pk, *FINAL, timeout=2) == Status.STOPPED


@threads
@override_settings(CONNECTOR_QUEUES={"fetch": {"MaximumThreads": 1}}, CONNECTOR_POLL_SECONDS=0.05)
def test_pause_keeps_actions_queued_while_running_ones_finish(start_engine):
    running = sleep_action(0.3, steps=10)
    waiting = [noop_action() for _ in range(3)]
    start_engine()
    wait_for_status(running.pk, Status.PROCESSING)
    queue.set_paused(queue="fetch", paused=True)
    assert wait_for_status(running.pk, *FINAL) == Status.FINISHED
    # Several polls later, nothing more was claimed.
    time.sleep(0.3)
    assert all(status_of(a.pk) == Status.QUEUED for a in waiting)
    queue.set_paused(queue="fetch", paused=False)
    for action in waiting:
        assert wait_for_status(action.pk, *FINAL) == Status.FINISHED


@threads
@override_settings(CONNECTOR_POLL_SECONDS=60)
def test_wake_claims_at_once_without_waiting_for_the_poll(start_engine):
    engine = start_engine()
    action = noop_action()
    time.sleep(0.1)
    assert status_of(action.pk) == Status.QUEUED
    engine.wake()
    assert wait_for_status(action.pk, *FINAL, timeout=2) == Status.FINISHED


@threads
@override_settings(CONNECTOR_POLL_SECONDS=0.05)
def test_poll_claims_actions_whose_wake_up_was_lost(start_engine):
    start_engine()
    # The submit's wake-up goes to a channel layer nobody listens to here.
    action = noop_action()
    assert wait_for_status(action.pk, *FINAL, timeout=2) == Status.FINISHED


@threads
@override_settings(CONNECTOR_HEARTBEAT_SECONDS=0.05)
def test_heartbeat_recovers_actions_of_a_dead_worker_and_runs_them(start_engine):
    action = noop_action()
    queue.claim_actions(queue="fetch", worker="dead-worker", limit=1)
    Action.objects.filter(pk=action.pk).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    engine = start_engine()
    assert wait_for_status(action.pk, *FINAL) == Status.FINISHED
    recovered = Action.objects.get(pk=action.pk)
    assert recovered.worker == engine.id
    assert recovered.attempts == 2


@threads
@override_settings(CONNECTOR_HEARTBEAT_SECONDS=0.05, CONNECTOR_LEASE_SECONDS=1)
def test_heartbeat_renews_the_lease_of_a_long_action(start_engine):
    action = sleep_action(1.5, steps=150)
    start_engine()
    wait_for_status(action.pk, Status.PROCESSING)
    first = Action.objects.get(pk=action.pk).lease_expires_at
    wait_for(lambda: Action.objects.get(pk=action.pk).lease_expires_at > first)
    # Outlives its first lease without being recovered.
    assert wait_for_status(action.pk, *FINAL, timeout=5) == Status.FINISHED
    assert Action.objects.get(pk=action.pk).attempts == 1


def shutdown_notes(pk: int) -> list[str]:
    return list(
        ActionTransition.objects.filter(action=pk, note__contains="shut down").values_list(
            "note", flat=True
        )
    )


def log_lines(pk: int) -> list[str]:
    return list(ActionLogLine.objects.filter(action=pk).values_list("message", flat=True))


@threads
@override_settings(CONNECTOR_QUEUES={"fetch": {"MaximumThreads": 1}})
def test_shutdown_asks_a_running_action_to_stop_and_queues_it_again_unspent(start_engine):
    """DESIGN: a graceful shutdown asks running actions to stop at their next
    checkpoint and puts them back in the queue unspent; it does not wait for
    them to finish (issue 14, 2: Ctrl-C took the whole 30 s grace)."""
    engine = start_engine()
    action = sleep_action(20, steps=2000)
    waiting = noop_action(priority=-1)
    engine.wake()
    # Running, not only claimed: an action claimed as the shutdown begins goes
    # back to the queue (tested apart), and on PostgreSQL the claim's commit
    # can be seen a moment before the slot starts the action.
    wait_for(lambda: action.pk in engine.running_pks())
    wait_for(lambda: (c := Action.objects.get(pk=action.pk).counts) and c["SLEEP"]["seen"] >= 1)
    started = time.monotonic()
    engine.shutdown(grace=30)
    assert time.monotonic() - started < 2
    interrupted = Action.objects.get(pk=action.pk)
    # Not Stopped (nobody asked for a Stop), and the claim's attempt given back.
    assert (interrupted.status, interrupted.worker, interrupted.attempts) == (
        Status.QUEUED,
        "",
        0,
    )
    assert interrupted.lease_expires_at is None
    assert shutdown_notes(action.pk) == [
        f"Worker {engine.id} shut down; action queued again (attempt not spent)"
    ]
    lines = log_lines(action.pk)
    assert any("Interrupted at" in line and "by the worker's shutdown" in line for line in lines)
    assert any("queued again (attempt not spent)" in line for line in lines)
    # One slot, busy until the shutdown: the other action was never claimed,
    # not even claimed with the finish and given back (that leaves a step in
    # its history).
    left = Action.objects.get(pk=waiting.pk)
    assert (left.status, left.worker, left.attempts) == (Status.QUEUED, "", 0)
    assert not ActionTransition.objects.filter(action=waiting.pk).exists()


@threads
@override_settings(CONNECTOR_MAX_ATTEMPTS=2)
def test_restarts_never_spend_an_attempt_and_the_action_runs_after_them(start_engine):
    """Issue 14, 2: two Ctrl-Cs in the middle of a Synchronize left it Error
    ("no attempts left") at the third start."""
    action = sleep_action(20, steps=2000)
    for _ in range(3):
        engine = start_engine()
        engine.wake()
        wait_for(lambda e=engine: action.pk in e.running_pks())
        engine.shutdown(grace=5)
        assert Action.objects.get(pk=action.pk).attempts == 0
        assert status_of(action.pk) == Status.QUEUED
    assert len(shutdown_notes(action.pk)) == 3
    Action.objects.filter(pk=action.pk).update(params={"Seconds": "0.01", "Steps": "1"})
    start_engine()
    assert wait_for_status(action.pk, *FINAL) == Status.FINISHED
    assert Action.objects.get(pk=action.pk).attempts == 1


@threads
def test_shutdown_queues_again_an_action_that_misses_its_checkpoint_within_the_grace(
    start_engine,
):
    engine = start_engine()
    # One step: its only checkpoint comes before a 1 s sleep.
    action = sleep_action(1, steps=1)
    engine.wake()
    wait_for(lambda: action.pk in engine.running_pks())
    started = time.monotonic()
    engine.shutdown(grace=0.1)
    # The grace, then up to 1 s for the slot threads to end (this one will not).
    assert time.monotonic() - started < 2
    interrupted = Action.objects.get(pk=action.pk)
    assert (interrupted.status, interrupted.attempts) == (Status.QUEUED, 0)
    assert shutdown_notes(action.pk) == [
        f"Worker {engine.id} shut down; action queued again (attempt not spent);"
        " it did not reach a checkpoint within 0.1 s"
    ]
    # Its thread ends later; its finish is refused (the action is no longer its).
    wait_for(lambda: not engine.running_pks(), timeout=3)
    assert status_of(action.pk) == Status.QUEUED


@threads
def test_a_stop_that_comes_with_the_shutdown_ends_the_action_stopped(start_engine):
    engine = start_engine()
    action = sleep_action(20, steps=2000)
    engine.wake()
    wait_for(lambda: action.pk in engine.running_pks())
    queue.request_stop(pk=action.pk)
    engine.shutdown(grace=5)
    assert status_of(action.pk) == Status.STOPPED


@pytest.mark.django_db
def test_run_until_idle_runs_queued_actions_in_the_calling_thread():
    actions = [noop_action(), sleep_action(0.01, steps=2), noop_action()]
    engine = WorkerEngine()
    assert engine.run_until_idle() == 3
    assert all(status_of(a.pk) == Status.FINISHED for a in actions)
    assert engine.run_until_idle() == 0


@pytest.mark.django_db
def test_run_until_idle_runs_higher_priority_first():
    low = noop_action(priority=0)
    high = noop_action(priority=5)
    WorkerEngine().run_until_idle()
    low.refresh_from_db()
    high.refresh_from_db()
    assert high.started_at < low.started_at


@pytest.mark.django_db
def test_run_until_idle_respects_pause():
    action = noop_action()
    queue.set_paused(queue="fetch", paused=True)
    assert WorkerEngine().run_until_idle() == 0
    assert status_of(action.pk) == Status.QUEUED
    queue.set_paused(queue="fetch", paused=False)
    assert WorkerEngine().run_until_idle() == 1
    assert status_of(action.pk) == Status.FINISHED


@pytest.mark.django_db
def test_run_until_idle_records_a_failing_action_as_error():
    action = queue.submit_action(fetch_action="NoSuchAction", params={})
    WorkerEngine().run_until_idle()
    failed = Action.objects.get(pk=action.pk)
    assert failed.status == Status.ERROR
    assert "NOSUCHACTION" in failed.error


@threads
@override_settings(CONNECTOR_POLL_SECONDS=30)
def test_a_wake_up_rouses_one_idle_slot_not_all(start_engine, monkeypatch):
    engine = start_engine()
    assert sum(engine.queues.values()) > 1
    claims = []
    real_claim = queue.claim_actions

    def counting_claim(**kwargs):
        claims.append(kwargs)
        return real_claim(**kwargs)

    monkeypatch.setattr(queue, "claim_actions", counting_claim)
    engine.wake()
    wait_for(lambda: len(claims) >= 1)
    time.sleep(0.2)
    assert len(claims) == 1


@threads
@override_settings(CONNECTOR_POLL_SECONDS=30, CONNECTOR_QUEUES={"fetch": {"MaximumThreads": 3}})
def test_a_slot_that_finds_work_rouses_another_so_a_backlog_fans_out(start_engine):
    engine = start_engine()
    queue.set_paused(queue="fetch", paused=True)
    actions = [sleep_action(10, steps=1000) for _ in range(3)]
    # One wake-up only; the slots must bring each other in (the poll is 30 s away).
    queue.set_paused(queue="fetch", paused=False)
    engine.wake()
    wait_for(lambda: Action.objects.filter(status=Status.PROCESSING).count() == 3, timeout=5)
    for action in actions:
        queue.request_stop(pk=action.pk)
        engine.stop_local(action.pk)


@threads
@override_settings(CONNECTOR_POLL_SECONDS=30, CONNECTOR_QUEUES={"fetch": {"MaximumThreads": 1}})
def test_a_busy_slot_finishes_each_action_and_claims_the_next_in_one_call(
    start_engine, monkeypatch
):
    engine = start_engine()
    queue.set_paused(queue="fetch", paused=True)
    actions = [noop_action() for _ in range(4)]
    calls: list[str] = []
    for name in ("claim_actions", "end_action", "finish_and_claim"):
        real = getattr(queue, name)
        monkeypatch.setattr(
            queue, name, lambda _real=real, _name=name, **kw: calls.append(_name) or _real(**kw)
        )
    queue.set_paused(queue="fetch", paused=False)
    engine.wake()
    for action in actions:
        assert wait_for_status(action.pk, *FINAL) == Status.FINISHED
    wait_for(lambda: len(calls) >= 5)
    time.sleep(0.1)
    # One claim after the wake-up, then one call per action: its end and the
    # next claim (the last one finds nothing and the slot waits).
    assert calls == ["claim_actions"] + ["finish_and_claim"] * 4
