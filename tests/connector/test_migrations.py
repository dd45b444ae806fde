"""Data migrations: what they compute for rows that existed before them."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from connector.repositories.filesystem import encode_identifier

datastore_folder = importlib.import_module(
    "connector.migrations.0005_datastore_folder_and_modified_ns"
)


@pytest.mark.parametrize(
    ("path", "folder"),
    [("readme.txt", ""), ("reports/2026/q3.txt", "reports/2026"), ("a/b", "a")],
)
def test_an_existing_row_gets_the_identifier_of_its_folder(path: str, folder: str) -> None:
    # The folder Synchronize and the per-document actions now write for the same document.
    assert datastore_folder.folder_of(encode_identifier("DOCS", 1, path)) == encode_identifier(
        "DOCS", 1, folder
    )


@pytest.mark.parametrize("identifier", ["", "not base64 at all!", "QUJD", "Rk1TMQBEAQA"])
def test_an_identifier_that_does_not_decode_gets_no_folder(identifier: str) -> None:
    assert datastore_folder.folder_of(identifier) == ""


def migrate(connection: Any, targets: list[tuple[str, str]]) -> None:
    """Migrate as ``manage.py migrate`` does, post_migrate included: on SQLite a
    migration that rebuilds the action table drops its triggers, and the
    connector's post_migrate handler puts them back (connector/apps.py)."""
    from django.core.management.sql import emit_post_migrate_signal
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(targets)
    state = executor.migrate(targets, plan=plan)
    emit_post_migrate_signal(0, False, connection.alias, apps=state.apps, plan=plan)


@pytest.mark.django_db(transaction=True)
def test_writers_queued_before_one_writer_per_task_wait_like_the_ones_after() -> None:
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor
    from django.utils import timezone

    from connector import writers

    before = [("connector", "0006_worker_processes_plural")]
    after = [("connector", "0007_one_writer_per_task")]
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()
    try:
        migrate(connection, before)
        old = MigrationExecutor(connection).loader.project_state(before).apps
        action = old.get_model("connector", "Action")
        common = {"queue": "fetch", "params": {}, "queued_at": timezone.now()}
        queued = action.objects.create(
            token="t1",
            fetch_action="SYNCHRONIZE",
            tasks="DOCS,OTHER,DOCS",
            status="Queued",
            **common,
        )
        running = action.objects.create(
            token="t2", fetch_action="UPDATE", tasks="DOCS", status="Processing", **common
        )
        reader = action.objects.create(
            token="t3", fetch_action="IDENTIFIERS", tasks="DOCS", status="Queued", **common
        )
        migrate(connection, after)
        new = MigrationExecutor(connection).loader.project_state(after).apps
        task_write = new.get_model("connector", "TaskWrite")
        rows = sorted(task_write.objects.values_list("action_id", "task", "holding"))
        assert rows == [(queued.pk, "DOCS", False), (queued.pk, "OTHER", False)]
        writes = dict(new.get_model("connector", "Action").objects.values_list("pk", "writes"))
        assert writes == {queued.pk: "DOCS,OTHER", running.pk: "", reader.pk: ""}
        assert writers.installed(connection)
    finally:
        migrate(connection, latest)


@pytest.mark.django_db(transaction=True)
def test_a_writer_processing_during_the_upgrade_to_task_holds_keeps_its_hold() -> None:
    from django.db import IntegrityError, connection, transaction
    from django.db.migrations.executor import MigrationExecutor
    from django.utils import timezone

    from connector import writers
    from connector.models import Action, Status, TaskHold

    before = [("connector", "0010_action_tasks_and_list_indexes")]
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()
    try:
        migrate(connection, before)
        old = MigrationExecutor(connection).loader.project_state(before).apps
        action = old.get_model("connector", "Action")
        task_write = old.get_model("connector", "TaskWrite")
        common = {"queue": "fetch", "params": {}, "queued_at": timezone.now()}
        running = action.objects.create(
            token="t1", fetch_action="SYNCHRONIZE", tasks="DOCS", writes="DOCS", **common
        )
        waiting = action.objects.create(
            token="t2", fetch_action="UPDATE", tasks="DOCS", writes="DOCS", **common
        )
        task_write.objects.create(action_id=running.pk, task="DOCS")
        task_write.objects.create(action_id=waiting.pk, task="DOCS")
        # The 0007 trigger marks the hold.
        action.objects.filter(pk=running.pk).update(status="Processing")
        assert task_write.objects.get(action_id=running.pk).holding
        migrate(connection, latest)
        assert dict(TaskHold.objects.values_list("task", "action_id")) == {"DOCS": running.pk}
        assert writers.installed(connection)
        with pytest.raises(IntegrityError), transaction.atomic():
            Action.objects.filter(pk=waiting.pk).update(status=Status.PROCESSING)
        Action.objects.filter(pk=running.pk).update(status=Status.FINISHED)
        assert not TaskHold.objects.exists()
    finally:
        migrate(connection, latest)
