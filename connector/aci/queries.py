"""Read-only queries the ACI actions need (the queue module owns every write)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import F, Func, IntegerField, QuerySet
from django.db.models.sql.compiler import SQLCompiler
from django.utils import timezone

from connector.models import Action, WorkerProcess
from connector.prepared import PreparedRead

#: Sort-By values and the fields they sort on.
SORT_FIELDS = {
    "queue-time": "queued_at",
    "start-time": "started_at",
    "finish-time": "finished_at",
}


@dataclass(frozen=True)
class ActionFilter:
    statuses: tuple[str, ...] = ()
    max_results: int = 1000
    sort_by: str = "queue-time"
    descending: bool = True
    queued_after: datetime | None = None
    queued_before: datetime | None = None
    finished_after: datetime | None = None
    finished_before: datetime | None = None
    min_priority: int | None = None
    max_priority: int | None = None


#: The lists an action's result may hold that GetStatus shows in pages.
RESULT_LISTS = ("identifiers", "success", "failed")

#: What GetStatus and the QueueInfo actions read of an action. Not ``result``,
#: which can hold 100000 identifiers (megabytes of JSON): its lists are counted
#: and paged in the database instead (``result_sizes``, ``result_slice``). Not
#: ``params`` either, which can be megabytes (InsertXML): the two QueueActions
#: that show or copy them load them for their one action when they read them.
STATUS_FIELDS = (
    "id",
    "token",
    "queue",
    "fetch_action",
    "action_id",
    "priority",
    "status",
    "queued_at",
    "started_at",
    "finished_at",
    "stop_requested",
    "progress",
    "progress_basis",
    "progress_total",
    "stage",
    "counts",
    "error",
    # A Queued writer's held tasks are looked up (``<waitingfor>``).
    "writes",
)


class ResultListLength(Func):
    """The length of the list ``result[key]``, NULL when the result has no such list."""

    output_field = IntegerField()

    def __init__(self, key: str) -> None:
        if key not in RESULT_LISTS:
            raise ValueError(key)
        self.key = key
        super().__init__(F("result"))

    def as_sqlite(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra_context: Any
    ) -> tuple[str, tuple[str | int, ...]]:
        sql, params = compiler.compile(self.source_expressions[0])
        # One call, so SQLite parses the result once per list (a result of 100000
        # identifiers is about 24 MB of JSON, 65 MiB once parsed): NULL without
        # the list, and the connector never stores one that is not an array.
        return f"json_array_length({sql}, %s)", (*params, f"$.{self.key}")

    def as_postgresql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra_context: Any
    ) -> tuple[str, tuple[str | int, ...]]:
        sql, params = compiler.compile(self.source_expressions[0])
        return (
            f"(CASE WHEN jsonb_typeof({sql} -> %s) = 'array' "
            f"THEN jsonb_array_length({sql} -> %s) END)",
            (*params, self.key, *params, self.key),
        )


def _status_rows(rows: QuerySet[Action]) -> QuerySet[Action]:
    return rows.only(*STATUS_FIELDS).annotate(
        **{f"{key}_total": ResultListLength(key) for key in RESULT_LISTS}
    )


def result_sizes(action: Action) -> dict[str, int]:
    """The lengths of the result's lists an action has (annotated by ``_status_rows``)."""
    sizes = {}
    for key in RESULT_LISTS:
        total = getattr(action, f"{key}_total", None)
        if total is not None:
            sizes[key] = int(total)
    return sizes


def result_slice(action_pk: int, key: str, offset: int, limit: int) -> list[Any]:
    """``result[key][offset:offset + limit]``, read in the database: the rest never loads."""
    if key not in RESULT_LISTS:
        raise ValueError(key)
    if limit <= 0:
        return []
    # The table's name comes from the model, never from a request; values are parameters.
    table = connection.ops.quote_name(Action._meta.db_table)
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(
                f"SELECT item.type, item.value FROM {table} AS a, json_each(a.result, %s) AS item "  # noqa: S608
                "WHERE a.id = %s LIMIT %s OFFSET %s",
                # One parse of the result (no type check beside it): the lists are arrays.
                [f"$.{key}", action_pk, limit, offset],
            )
            # Objects and arrays come back as JSON text, strings and numbers as values.
            return [
                json.loads(value) if kind in ("object", "array") else value
                for kind, value in cursor.fetchall()
            ]
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT item.value FROM "  # noqa: S608
                f"{table} AS a, jsonb_array_elements(a.result -> %s) WITH ORDINALITY "
                "AS item(value, n) WHERE a.id = %s AND jsonb_typeof(a.result -> %s) = 'array' "
                "ORDER BY item.n LIMIT %s OFFSET %s",
                [key, action_pk, key, limit, offset],
            )
            return [_json_value(value) for (value,) in cursor.fetchall()]
    # Another database: correct, but loads the whole result.
    result = Action.objects.filter(pk=action_pk).values_list("result", flat=True).first()
    items = result.get(key) if isinstance(result, dict) else None
    return items[offset : offset + limit] if isinstance(items, list) else []


def _json_value(value: Any) -> Any:
    # Django reads jsonb as text (it decodes JSONField values itself).
    return json.loads(value) if isinstance(value, str | bytes) else value


#: ``find_action``'s query, compiled once (connector/prepared.py): GetStatus's hot path.
_BY_TOKEN: PreparedRead[Action] = PreparedRead(
    lambda queue, token: _status_rows(Action.objects.filter(queue=queue, token=token)).order_by(
        "pk"
    )[:1]
)


def find_action(*, queue: str, token: str) -> Action | None:
    """The action of ``queue`` with that (canonical) token, without its result."""
    return _BY_TOKEN.first(queue=queue, token=token)


@dataclass(frozen=True)
class ActionPage:
    #: Actions matching the filters, in all.
    total: int
    #: The page's actions, read one by one (``result`` left in the database).
    actions: Iterator[Action]


def list_actions(*, queue: str, filters: ActionFilter, start: int = 1) -> ActionPage:
    """Actions of a queue from position ``start`` (1-based); "after" bounds are
    inclusive, "before" bounds exclusive."""
    actions = Action.objects.filter(queue=queue)
    if filters.statuses:
        actions = actions.filter(status__in=filters.statuses)
    if filters.queued_after:
        actions = actions.filter(queued_at__gte=filters.queued_after)
    if filters.queued_before:
        actions = actions.filter(queued_at__lt=filters.queued_before)
    if filters.finished_after:
        actions = actions.filter(finished_at__gte=filters.finished_after)
    if filters.finished_before:
        actions = actions.filter(finished_at__lt=filters.finished_before)
    if filters.min_priority is not None:
        actions = actions.filter(priority__gte=filters.min_priority)
    if filters.max_priority is not None:
        actions = actions.filter(priority__lte=filters.max_priority)
    field = F(SORT_FIELDS[filters.sort_by])
    # Actions that have not started (or finished) yet go last either way.
    if filters.descending:
        order = [field.desc(nulls_last=True), F("id").desc()]
    else:
        order = [field.asc(nulls_last=True), F("id").asc()]
    total = actions.count()
    offset = start - 1
    page = _status_rows(actions.order_by(*order))[offset : offset + filters.max_results]
    return ActionPage(total=total, actions=page.iterator(chunk_size=100))


@dataclass(frozen=True)
class WorkerThreads:
    #: Worker processes heard from within a lease time.
    processes: int
    #: Their MaximumThreads for the queue, added up.
    threads: int
    #: Actions of the queue they were running at their last heartbeat.
    running: int


def live_workers(queue: str, *, now: datetime | None = None) -> WorkerThreads:
    now = now or timezone.now()
    recent = now - timedelta(seconds=settings.CONNECTOR_LEASE_SECONDS)
    rows = WorkerProcess.objects.filter(heartbeat_at__gte=recent, stopping=False)
    processes = threads = running = 0
    for row in rows.only("threads", "running"):
        processes += 1
        threads += _number(row.threads, queue)
        running += _number(row.running, queue)
    return WorkerThreads(processes=processes, threads=threads, running=running)


def _number(values: object, queue: str) -> int:
    if isinstance(values, dict):
        try:
            return int(values.get(queue, 0))
        except (TypeError, ValueError):
            return 0
    return 0
