"""One writer per task, cheaper: the held tasks in a table of their own (``TaskHold``).

Migration 0007 marked a held task with ``TaskWrite.holding`` and a unique
partial index; the claim then checked each queued writer against that table,
which keeps a row for every writer ever submitted. Now a trigger inserts an
action's tasks into ``TaskHold`` (primary key: the task) when it becomes
Processing and deletes them when it leaves Processing, so the claim's check
reads only the running writers' tasks (bench/README.md, one writer).

The holds of actions Processing during the upgrade are carried over.
"""

import importlib

import django.db.models.deletion
from django.db import migrations, models


def carry_holds(apps, schema_editor):
    TaskWrite = apps.get_model("connector", "TaskWrite")
    TaskHold = apps.get_model("connector", "TaskHold")
    held = TaskWrite.objects.filter(holding=True).values_list("task", "action_id")
    TaskHold.objects.bulk_create(TaskHold(task=task, action_id=pk) for task, pk in held)


def mark_holds(apps, schema_editor):
    TaskWrite = apps.get_model("connector", "TaskWrite")
    TaskHold = apps.get_model("connector", "TaskHold")
    for task, pk in TaskHold.objects.values_list("task", "action_id"):
        TaskWrite.objects.filter(task=task, action_id=pk).update(holding=True)


def _old_trigger(apps, schema_editor, how):
    old = importlib.import_module("connector.migrations.0007_one_writer_per_task")
    getattr(old, how)(apps, schema_editor)


def uninstall_old_trigger(apps, schema_editor):
    _old_trigger(apps, schema_editor, "uninstall_trigger")


def install_old_trigger(apps, schema_editor):
    _old_trigger(apps, schema_editor, "install_trigger")


def install_trigger(apps, schema_editor):
    from connector import writers

    writers.install(schema_editor.connection)


def uninstall_trigger(apps, schema_editor):
    from connector import writers

    writers.uninstall(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [
        ("connector", "0010_action_tasks_and_list_indexes"),
    ]

    operations = [
        migrations.CreateModel(
            name="TaskHold",
            fields=[
                ("task", models.CharField(max_length=100, primary_key=True, serialize=False)),
                (
                    "action",
                    models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="task_holds",
                        to="connector.action",
                    ),
                ),
            ],
        ),
        migrations.RunPython(carry_holds, mark_holds),
        # Dropped before the column goes: on SQLite, removing it rebuilds the
        # table, and a trigger still naming the column would fail the rebuild.
        migrations.RunPython(uninstall_old_trigger, install_old_trigger),
        migrations.RemoveConstraint(model_name="taskwrite", name="one_writer_per_task"),
        migrations.RemoveField(model_name="taskwrite", name="holding"),
        migrations.RunPython(install_trigger, uninstall_trigger),
    ]
