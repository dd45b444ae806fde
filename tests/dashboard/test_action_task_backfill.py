"""Migration 0008 gives every existing action its task rows, in batches."""

from __future__ import annotations

import importlib

import pytest
from dashboard_helpers import submit
from django.apps import apps

from connector.models import Action, ActionTask

pytestmark = pytest.mark.django_db

migration = importlib.import_module("connector.migrations.0010_action_tasks_and_list_indexes")


def test_backfill_writes_each_task_of_every_action_once(monkeypatch):
    monkeypatch.setattr(migration, "BATCH", 2)
    actions = [
        submit(tasks=["DOCS"]),
        submit(tasks=[]),
        submit(tasks=["MAIL", "DOCS"]),
        submit(tasks=["HR"]),
        submit(tasks=["SALES"]),
    ]
    Action.objects.filter(pk=actions[2].pk).update(tasks="MAIL,DOCS,MAIL")
    ActionTask.objects.all().delete()  # as before the migration
    migration.backfill_tasks(apps, None)
    rows = sorted(ActionTask.objects.values_list("action_id", "task"))
    assert rows == sorted(
        [
            (actions[0].pk, "DOCS"),
            (actions[2].pk, "MAIL"),
            (actions[2].pk, "DOCS"),
            (actions[3].pk, "HR"),
            (actions[4].pk, "SALES"),
        ]
    )
