"""The datastore as Synchronize reads and writes it: in bulk, with plain SQL.

Synchronize compares every listed document with its ``DatastoreDocument`` row.
Through the ORM, making and converting a model row per document was most of
a no-change run's time (``bench/README.md``, "Synchronize"), so here rows are
looked up a chunk of identifiers per query and written with one
``executemany`` per committed batch. Values written go through Django's own
adapters (``connection.ops``, the field's ``get_db_prep_save``), so the rows
are the same as the ORM writes everywhere else; the few values read back are
converted here (``_as_datetime``), tested to match what the ORM reads.

Nothing here holds more than one chunk of rows: ``SeenRows`` remembers which
rows a run matched with one bit per row.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import connection
from django.db.models import Count, Field, Max, Min

from connector.fetch.documents import NEVER
from connector.models import DatastoreDocument, FetchTask

#: Identifiers per lookup query: below SQLite's oldest limit of 999 parameters.
LOOKUP_CHUNK = 500
#: Rows per page when looking for the rows a run did not match (one IN list each).
PAGE = LOOKUP_CHUNK

_TABLE = DatastoreDocument._meta.db_table


def _column(name: str) -> str:
    field = DatastoreDocument._meta.get_field(name)
    assert isinstance(field, Field) and field.column
    return connection.ops.quote_name(field.column)


def _modified_column() -> str:
    """``modified`` in a lookup's select list.

    On SQLite it is selected as text: through the column's declared type,
    sqlite3 would run the converter Django registers for it, a regular
    expression per value, which was a large part of a no-change run.
    """
    if connection.vendor == "sqlite":
        return f"CAST({_column('modified')} AS TEXT)"
    return _column("modified")


def _as_datetime(value: datetime | str) -> datetime:
    """A ``DateTimeField`` value as the driver returned it, made aware.

    psycopg returns aware datetimes. SQLite returns the text Django stored,
    always naive UTC (``USE_TZ``), read back exactly by ``fromisoformat``
    with the offset appended (cheaper than ``replace(tzinfo=...)`` afterwards).
    """
    if isinstance(value, str):
        return datetime.fromisoformat(value + "+00:00")
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@dataclass(slots=True)
class Known:
    """A datastore row, as much of it as the comparison needs."""

    pk: int
    size: int
    modified: datetime
    content_hash: str
    #: False for a row another action made (Hold, Update, Insert) before the
    #: document was first sent.
    ingested: bool


@dataclass(slots=True)
class Recorded:
    """What the datastore keeps of a document once its batch is committed."""

    identifier: str
    path: str
    size: int
    modified: datetime
    content_hash: str


@dataclass(frozen=True)
class Extent:
    """The task's rows when a run starts: how many, and their lowest and highest id."""

    rows: int
    low: int
    high: int


def extent(task: FetchTask) -> Extent:
    found = DatastoreDocument.objects.filter(task=task).aggregate(
        rows=Count("pk"), low=Min("pk"), high=Max("pk")
    )
    return Extent(found["rows"], found["low"] or 0, found["high"] or 0)


class SeenRows:
    """The rows of an ``Extent`` that a run matched to a listed document.

    One bit per row id from the lowest to the highest, so remembering a
    million documents costs 125 KB; rows made after the extent was taken
    are never counted.
    """

    def __init__(self, rows: Extent) -> None:
        self.low = rows.low
        self.high = rows.high
        self.count = 0
        self._bits = bytearray((rows.high - rows.low) // 8 + 1 if rows.rows else 0)

    def add(self, pk: int) -> None:
        if self.low <= pk <= self.high:
            index, bit = divmod(pk - self.low, 8)
            if not self._bits[index] & (1 << bit):
                self._bits[index] |= 1 << bit
                self.count += 1

    def __contains__(self, pk: int) -> bool:
        if not self.low <= pk <= self.high:
            return False
        index, bit = divmod(pk - self.low, 8)
        return bool(self._bits[index] & (1 << bit))


def lookup(task: FetchTask, identifiers: Sequence[str]) -> dict[str, Known]:
    """The rows of ``identifiers`` (at most ``LOOKUP_CHUNK``) that the task's datastore has."""
    if not identifiers:
        return {}
    never = connection.ops.adapt_datetimefield_value(NEVER)
    # Only quoted column names and placeholders go into the text; values are parameters.
    sql = (
        f"SELECT {_column('identifier')}, {_column('id')}, {_column('size')},"  # noqa: S608
        f" {_modified_column()}, {_column('content_hash')},"
        f" CASE WHEN {_column('last_ingested_at')} > %s THEN 1 ELSE 0 END"
        f" FROM {connection.ops.quote_name(_TABLE)}"
        f" WHERE {_column('task')} = %s"
        f" AND {_column('identifier')} IN ({', '.join(['%s'] * len(identifiers))})"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [never, task.pk, *identifiers])
        return {
            identifier: Known(pk, size, _as_datetime(modified), content_hash, bool(ingested))
            for identifier, pk, size, modified, content_hash, ingested in cursor.fetchall()
        }


def metadata(pks: Sequence[int]) -> dict[int, dict[str, object]]:
    """Custom metadata (FetchAction=Update) of rows, for the documents about to be sent."""
    if not pks:
        return {}
    rows = DatastoreDocument.objects.filter(pk__in=pks).values_list("pk", "metadata")
    return {pk: value for pk, value in rows if value}


def record(task: FetchTask, documents: Sequence[Recorded], ingested_at: datetime) -> None:
    """Insert or update the rows of committed documents (custom metadata and holds stay)."""
    if not documents:
        return
    ops = connection.ops
    columns = ("task", "identifier", "path", "size", "modified", "content_hash", "metadata",
               "held", "last_ingested_at")  # fmt: skip
    updated = ("path", "size", "modified", "content_hash", "last_ingested_at")
    # Only quoted column names and placeholders go into the text; values are parameters.
    sql = (
        f"INSERT INTO {ops.quote_name(_TABLE)} ({', '.join(_column(c) for c in columns)})"  # noqa: S608
        f" VALUES ({', '.join(['%s'] * len(columns))})"
        f" ON CONFLICT ({_column('task')}, {_column('identifier')}) DO UPDATE SET "
        + ", ".join(f"{_column(c)} = EXCLUDED.{_column(c)}" for c in updated)
    )
    no_metadata = DatastoreDocument._meta.get_field("metadata").get_db_prep_save({}, connection)
    at = ops.adapt_datetimefield_value(ingested_at)
    with connection.cursor() as cursor:
        cursor.executemany(
            sql,
            [
                (
                    task.pk,
                    document.identifier,
                    document.path,
                    document.size,
                    ops.adapt_datetimefield_value(document.modified),
                    document.content_hash,
                    no_metadata,
                    False,
                    at,
                )
                for document in documents
            ],
        )


@dataclass(frozen=True)
class Unseen:
    pk: int
    identifier: str
    path: str
    ingested: bool


def unseen(task: FetchTask, seen: SeenRows) -> Iterator[Unseen]:
    """The rows of the run's extent that it did not match, a page at a time, by id.

    Each page is read whole before it is used, so the caller may write to the
    datastore between pages.
    """
    after = seen.low - 1
    while True:
        page = list(
            DatastoreDocument.objects.filter(task=task, pk__gt=after, pk__lte=seen.high)
            .order_by("pk")
            .values_list("pk", flat=True)[:PAGE]
        )
        if not page:
            return
        after = page[-1]
        missing = [pk for pk in page if pk not in seen]
        rows = DatastoreDocument.objects.filter(pk__in=missing).order_by("pk")
        for pk, identifier, path, ingested_at in rows.values_list(
            "pk", "identifier", "path", "last_ingested_at"
        ):
            yield Unseen(pk, identifier, path, ingested_at > NEVER)
