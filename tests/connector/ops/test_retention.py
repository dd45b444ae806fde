"""Retention: old final actions are deleted in batches with what depends on them."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.apps import apps
from django.db import connection, models
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from connector import queue, retention
from connector.models import FINAL_STATUSES, Action, ActionLogLine, Status

DAY = timedelta(days=1)


def make(status: str, *, ended_ago: timedelta, token: str = "") -> Action:
    now = timezone.now()
    finished = now - ended_ago if status in FINAL_STATUSES else None
    made = Action.objects.create(
        token=token or f"tok-{Action.objects.count()}-{status}",
        fetch_action="NOOP",
        status=status,
        queued_at=now - ended_ago - timedelta(minutes=5),
        finished_at=finished,
    )
    queue.add_log_lines(pk=made.pk, lines=[(now, "INFO", "a line"), (now, "INFO", "another")])
    return made


def left() -> set[int]:
    return set(Action.objects.values_list("pk", flat=True))


@pytest.mark.django_db
@pytest.mark.parametrize("status", sorted(FINAL_STATUSES))
def test_a_final_action_older_than_the_retention_is_deleted_with_its_log(status):
    old = make(status, ended_ago=31 * DAY)
    new = make(status, ended_ago=29 * DAY)
    assert retention.delete_old_actions(days=30) == 1
    assert left() == {new.pk}
    assert not ActionLogLine.objects.filter(action_id=old.pk).exists()
    assert ActionLogLine.objects.filter(action_id=new.pk).count() == 2


@pytest.mark.django_db
@pytest.mark.parametrize("status", [Status.QUEUED, Status.PROCESSING])
def test_queued_and_processing_actions_are_never_deleted_however_old(status):
    waiting = make(status, ended_ago=400 * DAY)
    assert retention.delete_old_actions(days=1) == 0
    assert left() == {waiting.pk}
    assert ActionLogLine.objects.filter(action_id=waiting.pk).count() == 2


@pytest.mark.django_db
def test_zero_days_keeps_everything():
    old = make(Status.FINISHED, ended_ago=4000 * DAY)
    assert retention.delete_old_actions(days=0) == 0
    assert left() == {old.pk}


@pytest.mark.django_db
@override_settings(CONNECTOR_RETENTION_DAYS=7, CONNECTOR_RETENTION_BATCH_SIZE=3)
def test_deletes_go_in_batches_of_the_batch_size_each_its_own_transaction():
    old = [make(Status.FINISHED, ended_ago=8 * DAY) for _ in range(7)]
    kept = make(Status.FINISHED, ended_ago=6 * DAY)
    with CaptureQueriesContext(connection) as queries:
        assert retention.delete_old_actions() == 7
    assert left() == {kept.pk}
    action_table = Action._meta.db_table
    deletes = [q["sql"] for q in queries if q["sql"].startswith(f'DELETE FROM "{action_table}"')]
    assert len(deletes) == 3  # 3 + 3 + 1
    assert len(old) == 7


@pytest.mark.django_db
def test_exactly_a_batch_full_ends_after_one_more_look():
    for _ in range(4):
        make(Status.ERROR, ended_ago=40 * DAY)
    assert retention.delete_old_actions(days=30, batch_size=2) == 4
    assert left() == set()


@pytest.mark.django_db
def test_the_count_is_logged(caplog):
    make(Status.CANCELLED, ended_ago=40 * DAY)
    make(Status.STOPPED, ended_ago=40 * DAY)
    with caplog.at_level(logging.INFO, logger="connector.retention"):
        retention.delete_old_actions(days=30)
    assert "Retention: deleted 2 final actions" in caplog.text
    assert "older than 30 days" in caplog.text


@pytest.mark.django_db
def test_a_set_stop_ends_the_run_between_batches():
    for _ in range(5):
        make(Status.FINISHED, ended_ago=40 * DAY)
    stop = threading.Event()
    stop.set()
    assert retention.delete_old_actions(days=30, batch_size=2, stop=stop) == 0
    assert len(left()) == 5


@pytest.mark.django_db
def test_two_runs_at_once_delete_each_action_once():
    """The second run's batch finds the rows gone and deletes nothing, without error."""
    for _ in range(3):
        make(Status.FINISHED, ended_ago=40 * DAY)
    real = retention._expired
    calls = 0

    def racing(cutoff):
        nonlocal calls
        calls += 1
        if calls == 2:
            # Between this run's choice of primary keys and its delete, the
            # other run deletes them.
            assert retention.delete_old_actions(days=30) == 3
        return real(cutoff)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(retention, "_expired", racing)
        assert retention.delete_old_actions(days=30) == 0
    assert left() == set()


# --- A model added later with a SET_NULL foreign key (e.g. an audit trail) ----------


@pytest.fixture
def audit_model() -> Iterator[type[models.Model]]:
    """A model with ``on_delete=SET_NULL`` to Action, its table made for the test only."""

    class AuditNote(models.Model):
        action = models.ForeignKey(Action, null=True, on_delete=models.SET_NULL, related_name="+")
        text = models.CharField(max_length=50)

        class Meta:
            app_label = "connector"
            db_table = "test_retention_audit_note"

        def __str__(self) -> str:
            return self.text

    with connection.schema_editor() as editor:
        editor.create_model(AuditNote)
    try:
        yield AuditNote
    finally:
        with connection.schema_editor() as editor:
            editor.delete_model(AuditNote)
        del apps.all_models["connector"]["auditnote"]
        apps.clear_cache()


@pytest.mark.django_db(transaction=True)
def test_rows_with_a_set_null_key_to_a_deleted_action_are_kept_with_the_key_cleared(audit_model):
    old = make(Status.FINISHED, ended_ago=40 * DAY)
    new = make(Status.FINISHED, ended_ago=1 * DAY)
    audit_model.objects.create(action=old, text="old")
    audit_model.objects.create(action=new, text="new")
    assert retention.delete_old_actions(days=30) == 1
    notes = dict(audit_model.objects.values_list("text", "action_id"))
    assert notes == {"old": None, "new": new.pk}
    assert not ActionLogLine.objects.filter(action_id=old.pk).exists()


# --- The worker runs it -----------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@override_settings(CONNECTOR_RETENTION_DAYS=30, CONNECTOR_RETENTION_INTERVAL_SECONDS=0.2)
def test_a_worker_deletes_old_actions_when_it_starts_and_at_every_interval():
    from connector.worker.engine import WorkerEngine

    first = make(Status.FINISHED, ended_ago=31 * DAY)
    kept = make(Status.FINISHED, ended_ago=1 * DAY)
    engine = WorkerEngine()
    engine.start()
    try:
        _wait_until(lambda: first.pk not in left())
        # Aged past the retention while the worker runs: the next interval takes it.
        Action.objects.filter(pk=kept.pk).update(
            queued_at=timezone.now() - 32 * DAY, finished_at=timezone.now() - 31 * DAY
        )
        _wait_until(lambda: left() == set())
    finally:
        engine.shutdown(grace=0)


def _wait_until(predicate, timeout: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
