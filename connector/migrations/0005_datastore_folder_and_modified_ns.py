"""The datastore keeps each document's folder and its exact modification time.

Synchronize reads a folder's rows with one query (``folder``, indexed with the
task) and compares ``st_mtime_ns`` exactly (``modified_ns``). Existing rows get
their folder from their identifier; their time is unknown (-1), so the first
Synchronize after the upgrade reads each document once and compares its
content hash: nothing unchanged is sent again.
"""

import base64
import binascii

import django.db.models.deletion
from django.db import migrations, models


def folder_of(identifier: str) -> str:
    """The identifier of the folder of an ``FS1`` identifier (the format of
    connector/repositories/filesystem.py, frozen here); '' if it does not decode."""
    try:
        raw = base64.urlsafe_b64decode(identifier + "=" * (-len(identifier) % 4))
    except (binascii.Error, ValueError):
        return ""
    head, _, path = raw.rpartition(b"\0")
    if not head.startswith(b"FS1\0") or not path:
        return ""
    folder = path.rpartition(b"/")[0]
    return base64.urlsafe_b64encode(head + b"\0" + folder).rstrip(b"=").decode("ascii")


def fill_folders(apps, schema_editor):  # type: ignore[no-untyped-def]
    Document = apps.get_model("connector", "DatastoreDocument")
    batch = []
    for row in Document.objects.only("pk", "identifier").iterator(chunk_size=2000):
        row.folder = folder_of(row.identifier)
        batch.append(row)
        if len(batch) >= 1000:
            Document.objects.bulk_update(batch, ["folder"])
            batch = []
    Document.objects.bulk_update(batch, ["folder"])


class Migration(migrations.Migration):
    dependencies = [
        ("connector", "0004_audit_and_history"),
    ]

    operations = [
        migrations.RemoveField(
            model_name="datastoredocument",
            name="modified",
        ),
        migrations.AddField(
            model_name="datastoredocument",
            name="folder",
            field=models.CharField(blank=True, default="", max_length=8192),
        ),
        migrations.AddField(
            model_name="datastoredocument",
            name="modified_ns",
            field=models.BigIntegerField(default=-1),
        ),
        migrations.RunPython(fill_folders, migrations.RunPython.noop, elidable=True),
        migrations.AddIndex(
            model_name="datastoredocument",
            index=models.Index(fields=["task", "folder"], name="datastore_task_folder"),
        ),
        # Both indexes start with the task: one of its own was one more to write per row.
        migrations.AlterField(
            model_name="datastoredocument",
            name="task",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="documents",
                to="connector.fetchtask",
            ),
        ),
    ]
