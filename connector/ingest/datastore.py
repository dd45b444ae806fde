"""The datastore as Synchronize reads and writes it: a folder at a time, with plain SQL.

Synchronize compares every listed document with its ``DatastoreDocument``
row. Through the ORM, making and converting a model row per document was most
of a no-change run's time (``bench/README.md``, "Synchronize"), so here a
folder's rows are read with one query on ``(task, folder)`` and written with
a few statements per committed batch (``INSERT_ROWS`` rows each). Values written go through Django's
own adapters (``connection.ops``, the field's ``get_db_prep_save``), so the
rows are the same as the ORM writes everywhere else.

Nothing here holds more than one folder's rows (at most ``FOLDER_ROWS``; a
larger folder is read a slice of identifiers at a time).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import Count, Field, Max

from connector.fetch.documents import NEVER, NOT_INGESTED_SIZE
from connector.ingest.scan import Known, Record
from connector.models import DatastoreDocument, FetchTask

#: Rows of one folder sent with a job; a folder with more is done in slices.
FOLDER_ROWS = 500
#: Identifiers per lookup query: below SQLite's oldest limit of 999 parameters.
LOOKUP_CHUNK = 500
#: Rows per INSERT of ``record``: seven parameters each and four more, below that limit too.
INSERT_ROWS = 140
#: Rows per page when reading the rows of a folder a run did not list.
PAGE = 1000

_TABLE = DatastoreDocument._meta.db_table


def _column(name: str) -> str:
    field = DatastoreDocument._meta.get_field(name)
    assert isinstance(field, Field) and field.column
    return connection.ops.quote_name(field.column)


def _known_columns() -> str:
    """The select list of a ``Known``, after the identifier; its two parameters are
    ``NEVER`` and an empty metadata, as the database stores them."""
    return (
        f"{_column('id')}, {_column('size')}, {_column('modified_ns')},"
        f" {_column('content_hash')},"
        f" CASE WHEN {_column('last_ingested_at')} > %s THEN 1 ELSE 0 END,"
        f" CASE WHEN {_column('metadata')} = %s THEN NULL ELSE {_column('metadata')} END"
    )


def _known_parameters() -> list[Any]:
    never = connection.ops.adapt_datetimefield_value(NEVER)
    return [never, DatastoreDocument._meta.get_field("metadata").get_db_prep_save({}, connection)]


def _known_rows(rows: list[tuple[Any, ...]]) -> dict[str, Known]:
    """Rows of (identifier, *Known) by identifier; metadata parsed where there is some."""
    known: dict[str, Known] = {row[0]: row[1:] for row in rows}  # type: ignore[misc]
    for identifier, row in known.items():
        if row[5] is not None:
            # Text on SQLite and through Django's PostgreSQL loader.
            metadata = json.loads(row[5]) if isinstance(row[5], str) else row[5]
            known[identifier] = (*row[:5], metadata if isinstance(metadata, dict) else None)
    return known


@dataclass(frozen=True)
class Extent:
    """The task's rows when a run starts: how many, and the highest id.

    Rows made later (by another action while the run lists) are never judged
    gone by that run: it did not look for them.
    """

    rows: int
    high: int


def extent(task: FetchTask) -> Extent:
    found = DatastoreDocument.objects.filter(task=task).aggregate(rows=Count("pk"), high=Max("pk"))
    return Extent(found["rows"], found["high"] or 0)


def folder_rows(task: FetchTask, folder: str) -> dict[str, Known] | None:
    """The rows of a folder's documents by identifier; None if it has more than FOLDER_ROWS."""
    # Only quoted column names and placeholders go into the text; values are parameters.
    sql = (
        f"SELECT {_column('identifier')}, {_known_columns()}"  # noqa: S608
        f" FROM {connection.ops.quote_name(_TABLE)}"
        f" WHERE {_column('task')} = %s AND {_column('folder')} = %s LIMIT %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*_known_parameters(), task.pk, folder, FOLDER_ROWS + 1])
        rows = cursor.fetchall()
    if len(rows) > FOLDER_ROWS:
        return None
    return _known_rows(rows)


def rows_by_identifier(task: FetchTask, identifiers: Sequence[str]) -> dict[str, Known]:
    """The rows of ``identifiers`` that the task's datastore has (a slice of a large folder)."""
    found: dict[str, Known] = {}
    for start in range(0, len(identifiers), LOOKUP_CHUNK):
        chunk = identifiers[start : start + LOOKUP_CHUNK]
        sql = (
            f"SELECT {_column('identifier')}, {_known_columns()}"  # noqa: S608
            f" FROM {connection.ops.quote_name(_TABLE)}"
            f" WHERE {_column('task')} = %s"
            f" AND {_column('identifier')} IN ({', '.join(['%s'] * len(chunk))})"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [*_known_parameters(), task.pk, *chunk])
            found.update(_known_rows(cursor.fetchall()))
    return found


def record(task: FetchTask, documents: Sequence[tuple[str, Record]], ingested_at: datetime) -> None:
    """Insert or update the rows of committed documents, each ``(folder, record)``.

    Custom metadata and holds stay as they are: only the columns Synchronize
    owns are written. A row whose metadata is no longer the one the document
    was sent with (an Update or Insert changed it after the folder's rows were
    read) keeps "not ingested as it is" (``NOT_INGESTED_SIZE``), so the next
    run sends the document again with the new metadata; comparing and writing
    is one statement, so no change made in between is overwritten. A new row
    gets the metadata the document was sent with (none).

    INSERT_ROWS rows a statement, the values they share given once: a first
    run records every document it sends, and a statement a row (``executemany``)
    cost SQLite a third more per row (bench/README.md, "Text files"). A batch
    names each document once; were one named twice, its last record is written,
    as a statement a row would have left it (PostgreSQL refuses one statement
    that updates a row twice).
    """
    if not documents:
        return
    documents = list({record[1]: (folder, record) for folder, record in documents}.values())
    ops = connection.ops
    # Each row's own values, then those of every row.
    own = ("identifier", "folder", "path", "size", "modified_ns", "content_hash", "metadata")
    shared = ("task", "held", "last_ingested_at")
    updated = ("folder", "path", "modified_ns", "content_hash", "last_ingested_at")
    table, metadata = ops.quote_name(_TABLE), _column("metadata")
    # Only quoted column names and placeholders go into the text; values are parameters.
    # A VALUES list's columns are column1, column2...; "WHERE true" tells SQLite that
    # ON CONFLICT is not a join's ON.
    head = (
        f"INSERT INTO {table} ({', '.join(_column(c) for c in own + shared)})"  # noqa: S608
        f" SELECT {', '.join(f'column{n}' for n in range(1, len(own) + 1))},"
        f" {', '.join(['%s'] * len(shared))} FROM (VALUES "
    )
    tail = (
        f") AS sent WHERE true ON CONFLICT ({_column('task')}, {_column('identifier')})"
        " DO UPDATE SET "
        + ", ".join(f"{_column(c)} = EXCLUDED.{_column(c)}" for c in updated)
        + f", {_column('size')} = CASE WHEN {table}.{metadata} = EXCLUDED.{metadata}"
        f" THEN EXCLUDED.{_column('size')} ELSE %s END"
    )
    row = f"({','.join(['%s'] * len(own))})"
    prepare = DatastoreDocument._meta.get_field("metadata").get_db_prep_save
    no_metadata = prepare({}, connection)
    values: list[Any] = []
    for folder, (_, identifier, path, size, modified_ns, content_hash, sent) in documents:
        values += (identifier, folder, path, size, modified_ns, content_hash,
                   prepare(sent, connection) if sent else no_metadata)  # fmt: skip
    every = [task.pk, False, ops.adapt_datetimefield_value(ingested_at)]
    step = INSERT_ROWS * len(own)
    with connection.cursor() as cursor:
        for start in range(0, len(values), step):
            part = values[start : start + step]
            rows = ",".join([row] * (len(part) // len(own)))
            cursor.execute(head + rows + tail, [*every, *part, NOT_INGESTED_SIZE])


def touch(changes: Sequence[tuple[int, int]]) -> None:
    """Record the new times ``(row id, modified_ns)`` of documents whose content did not change."""
    if not changes:
        return
    sql = (
        f"UPDATE {connection.ops.quote_name(_TABLE)} SET {_column('modified_ns')} = %s"  # noqa: S608
        f" WHERE {_column('id')} = %s"
    )
    with connection.cursor() as cursor:
        cursor.executemany(sql, [(modified_ns, pk) for pk, modified_ns in changes])


def forget(pks: Sequence[int]) -> None:
    for start in range(0, len(pks), LOOKUP_CHUNK):
        DatastoreDocument.objects.filter(pk__in=pks[start : start + LOOKUP_CHUNK]).delete()


def folders(task: FetchTask, high: int) -> list[str]:
    """The folders of the task's rows up to id ``high``."""
    return list(
        DatastoreDocument.objects.filter(task=task, pk__lte=high)
        .order_by("folder")
        .values_list("folder", flat=True)
        .distinct()
    )


@dataclass(frozen=True)
class Row:
    pk: int
    identifier: str
    ingested: bool
    ingested_at: datetime


def rows_in_folder(task: FetchTask, folder: str, high: int) -> Iterator[Row]:
    """The rows of a folder up to id ``high``, a page at a time by id.

    Each page is read whole before it is used, so the caller may write to the
    datastore between pages.
    """
    after = 0
    while True:
        page = list(
            DatastoreDocument.objects.filter(task=task, folder=folder, pk__gt=after, pk__lte=high)
            .order_by("pk")
            .values_list("pk", "identifier", "last_ingested_at")[:PAGE]
        )
        if not page:
            return
        after = page[-1][0]
        for pk, identifier, ingested_at in page:
            yield Row(pk, identifier, ingested_at > NEVER, ingested_at)


def ingested_at(task: FetchTask, identifier: str) -> datetime | None:
    """When the task's document ``identifier`` was last ingested; None: it has no row."""
    return (
        DatastoreDocument.objects.filter(task=task, identifier=identifier)
        .values_list("last_ingested_at", flat=True)
        .first()
    )
