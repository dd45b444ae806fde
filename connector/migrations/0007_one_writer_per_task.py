"""One writer per task: an action's ``writes`` and its ``TaskWrite`` rows, and the
trigger that holds a task while its writer is Processing (``connector.writers``).

Actions already queued when this runs get their rows too, so a writer queued
before the upgrade waits like one queued after it. Actions already Processing
hold nothing: they were claimed under the old rule.
"""

import django.db.models.deletion
from django.db import migrations, models

#: The fetch actions that write their tasks when this migration was written
#: (``FetchAction.writes_tasks``), frozen here; names and aliases, upper case.
WRITERS = ("SYNCHRONIZE", "UPDATE", "DELETE", "REMOVE", "HOLD", "RELEASEHOLD", "INSERT")


def queued_writers(apps, schema_editor):
    Action = apps.get_model("connector", "Action")
    TaskWrite = apps.get_model("connector", "TaskWrite")
    rows = []
    queued = Action.objects.filter(status="Queued", fetch_action__in=WRITERS).exclude(tasks="")
    for action in queued.only("pk", "tasks").iterator():
        tasks = list(dict.fromkeys(task for task in action.tasks.split(",") if task))
        Action.objects.filter(pk=action.pk).update(writes=",".join(tasks))
        rows += [TaskWrite(action_id=action.pk, task=task) for task in tasks]
    TaskWrite.objects.bulk_create(rows, batch_size=500)


# The trigger as this migration made it, frozen here: ``connector.writers``
# installs today's (migration 0011 replaced the ``holding`` column with the
# ``TaskHold`` table), which would refer to a table that does not exist yet.
TRIGGER = "connector_action_holds_tasks"
SQLITE = [
    f"DROP TRIGGER IF EXISTS {TRIGGER}",
    f"CREATE TRIGGER {TRIGGER} AFTER UPDATE OF status ON connector_action FOR EACH ROW"
    " WHEN OLD.status <> NEW.status AND NEW.writes <> ''"
    " BEGIN UPDATE connector_taskwrite SET holding = (NEW.status = 'Processing')"
    " WHERE action_id = NEW.id; END",
]
POSTGRESQL = [
    f"CREATE OR REPLACE FUNCTION {TRIGGER}() RETURNS trigger LANGUAGE plpgsql AS $$"
    " BEGIN UPDATE connector_taskwrite SET holding = (NEW.status = 'Processing')"
    " WHERE action_id = NEW.id; RETURN NULL; END $$",
    f"DROP TRIGGER IF EXISTS {TRIGGER} ON connector_action",
    f"CREATE TRIGGER {TRIGGER} AFTER UPDATE OF status ON connector_action FOR EACH ROW"
    " WHEN (OLD.status IS DISTINCT FROM NEW.status AND NEW.writes <> '')"
    f" EXECUTE FUNCTION {TRIGGER}()",
]


def install_trigger(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        for statement in POSTGRESQL if connection.vendor == "postgresql" else SQLITE:
            cursor.execute(statement)


def uninstall_trigger(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"DROP TRIGGER IF EXISTS {TRIGGER} ON connector_action")
            cursor.execute(f"DROP FUNCTION IF EXISTS {TRIGGER}()")
        else:
            cursor.execute(f"DROP TRIGGER IF EXISTS {TRIGGER}")


class Migration(migrations.Migration):
    dependencies = [
        ("connector", "0006_worker_processes_plural"),
    ]

    operations = [
        migrations.AddField(
            model_name="action",
            name="writes",
            field=models.CharField(blank=True, default="", max_length=400),
        ),
        migrations.CreateModel(
            name="TaskWrite",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("task", models.CharField(max_length=100)),
                ("holding", models.BooleanField(default=False)),
                (
                    "action",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="task_writes",
                        to="connector.action",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        condition=models.Q(("holding", True)),
                        fields=("task",),
                        name="one_writer_per_task",
                    )
                ],
            },
        ),
        migrations.RunPython(queued_writers, migrations.RunPython.noop),
        migrations.RunPython(install_trigger, uninstall_trigger),
    ]
