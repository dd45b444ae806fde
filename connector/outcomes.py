"""The history of actions' endings: counts per minute, queue, task and final status,
with histograms of queue wait and run time (``OutcomeMinute``).

Kept by a trigger on the action table, not by Python: an action reaches a final
status along many paths (the worker's finish, a single statement that also claims
the next action; Cancel, one or many; a Stop honoured at shutdown; a lease
recovery's Stopped or Error), some of them raw SQL. The trigger fires on every
change of ``status`` from a non-final to a final one, in the same transaction as
the change, so each action is counted exactly once whatever the path, and an
update that changes nothing (a guard that lost a race) counts nothing.

One SQL statement (``_rollup_sql``) both feeds the trigger (the one changed row)
and backfills existing actions (a range of ids, grouped), so the two cannot
disagree about a minute or a bucket. As in ``connector.writers``, SQLite drops
the trigger when a migration rebuilds the action table, so ``install`` runs
again after every ``migrate`` (``connector.apps``).

Each ending is added twice: to its minute's row and to its hour's
(``span_minutes`` 60), so a day's or a week's chart reads at most 24 or 168 rows a
series. Minutes and hours are of ``finished_at`` in UTC; the wait is ``queued_at`` to
``started_at`` (the last start, for an action that was re-queued), the run
``started_at`` to ``finished_at``; an action that never started (Cancelled)
has neither and adds to no histogram.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import pairwise

from django.db import connection as default_connection
from django.db.backends.base.base import BaseDatabaseWrapper

from connector import triggers
from connector.models import (
    FINAL_STATUSES,
    HISTOGRAM_EDGES_MS,
    Action,
    ActionTask,
    OutcomeMinute,
    histogram_columns,
)

TRIGGER = "connector_action_outcomes"
FUNCTION = "connector_action_outcomes"
#: The history shows at most a week; older minutes are kept only while
#: retention keeps their actions, and never longer than this.
KEPT = timedelta(days=8)
BACKFILL_BATCH = 20_000

_FINAL = ", ".join(f"'{status.value}'" for status in sorted(FINAL_STATUSES))
_COLUMNS = histogram_columns("wait") + histogram_columns("run")
#: What the rollup reads of an action.
_ROW = ("id", "queue", "status", "queued_at", "started_at", "finished_at")


def _buckets(value: str) -> list[str]:
    """One 0-or-1 expression per bucket column: is ``value`` (milliseconds) in it?"""
    edges = HISTOGRAM_EDGES_MS
    tests = [f"{value} < {edges[0]!r}"]
    tests += [f"{value} >= {low!r} AND {value} < {high!r}" for low, high in pairwise(edges)]
    tests.append(f"{value} >= {edges[-1]!r}")
    return [f"SUM(CASE WHEN {test} THEN 1 ELSE 0 END)" for test in tests]


def _rollup_sql(vendor: str, source: str) -> str:
    """Add the final actions of ``source`` (rows with the action's id, queue, status and
    times) to the minutes' and hours' rows."""
    table = OutcomeMinute._meta.db_table
    if vendor == "postgresql":
        minute = "date_trunc('minute', COALESCE(a.finished_at, now()), 'UTC')"
        hour = "date_trunc('hour', COALESCE(a.finished_at, now()), 'UTC')"
        wait = "EXTRACT(EPOCH FROM (a.started_at - a.queued_at)) * 1000"
        run = "EXTRACT(EPOCH FROM (COALESCE(a.finished_at, now()) - a.started_at)) * 1000"
    else:
        minute = "strftime('%Y-%m-%d %H:%M:00', COALESCE(a.finished_at, CURRENT_TIMESTAMP))"
        hour = "strftime('%Y-%m-%d %H:00:00', COALESCE(a.finished_at, CURRENT_TIMESTAMP))"
        wait = "(julianday(a.started_at) - julianday(a.queued_at)) * 86400000.0"
        run = (
            "(julianday(COALESCE(a.finished_at, CURRENT_TIMESTAMP))"
            " - julianday(a.started_at)) * 86400000.0"
        )
    sums = _buckets("a.wait_ms") + _buckets("a.run_ms")
    columns = ", ".join(_COLUMNS)
    updates = ", ".join(
        f"{name} = {table}.{name} + excluded.{name}" for name in ["ended", *_COLUMNS]
    )
    # Names and numbers of this module only; no value from outside reaches the text.
    # Each action twice: in its minute's row and in its hour's.
    periods = " UNION ALL ".join(
        f"SELECT id, queue, status, {start} AS minute, {span} AS span_minutes,"  # noqa: S608
        f" {wait} AS wait_ms, {run} AS run_ms"
        f" FROM {source} a"
        for start, span in ((minute, 1), (hour, 60))
    )
    return (
        f"INSERT INTO {table} (minute, span_minutes, queue, task, status, ended, {columns})"  # noqa: S608
        f" SELECT a.minute, a.span_minutes, a.queue, t.task, a.status, COUNT(*), {', '.join(sums)}"
        f" FROM ({periods}) a"
        f" JOIN (SELECT id AS action_id, '' AS task FROM {source} a"
        f" UNION ALL SELECT action_id, task FROM {ActionTask._meta.db_table}"
        f" WHERE action_id IN (SELECT id FROM {source} a)) t"
        " ON t.action_id = a.id"
        " GROUP BY a.minute, a.span_minutes, a.queue, t.task, a.status"
        " ON CONFLICT (task, span_minutes, minute, queue, status) DO UPDATE SET "
        f"{updates}"
    )


def _trigger_statements(vendor: str) -> list[str]:
    action = Action._meta.db_table
    # The changed row itself, not a read of it.
    rollup = _rollup_sql(vendor, f"(SELECT {', '.join(f'NEW.{c} AS {c}' for c in _ROW)})")
    when = f"OLD.status NOT IN ({_FINAL}) AND NEW.status IN ({_FINAL})"
    if vendor == "postgresql":
        return [
            f"CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$"
            f" BEGIN {rollup}; RETURN NULL; END $$",
            f"DROP TRIGGER IF EXISTS {TRIGGER} ON {action}",
            f"CREATE TRIGGER {TRIGGER} AFTER UPDATE OF status ON {action} FOR EACH ROW"
            f" WHEN ({when}) EXECUTE FUNCTION {FUNCTION}()",
        ]
    return [
        f"DROP TRIGGER IF EXISTS {TRIGGER}",
        f"CREATE TRIGGER {TRIGGER} AFTER UPDATE OF status ON {action} FOR EACH ROW"
        f" WHEN {when} BEGIN {rollup}; END",
    ]


def install(connection: BaseDatabaseWrapper) -> None:
    """Create (or re-create) the trigger that counts every action's ending."""
    with connection.cursor() as cursor:
        for statement in _trigger_statements(connection.vendor):
            cursor.execute(statement)


def uninstall(connection: BaseDatabaseWrapper) -> None:
    triggers.drop(connection, trigger=TRIGGER, table=Action._meta.db_table, function=FUNCTION)


def installed(connection: BaseDatabaseWrapper) -> bool:
    """Whether the trigger is there (a check for tests and operators)."""
    return triggers.exists(connection, TRIGGER)


def backfill(connection: BaseDatabaseWrapper | None = None, *, batch: int = BACKFILL_BATCH) -> None:
    """Count the final actions already there, a range of ids at a time (the migration's
    backfill, and the benchmark's after it fills a table directly). Run it once on
    actions the trigger did not count: it adds, it does not replace."""
    connection = connection or default_connection
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT MIN(id), MAX(id) FROM {Action._meta.db_table}")  # noqa: S608
        low, high = cursor.fetchone()
        if low is None:
            return
        for start in range(int(low), int(high) + 1, batch):
            where = f"id >= {start} AND id < {start + batch} AND status IN ({_FINAL})"
            source = f"(SELECT {', '.join(_ROW)} FROM {Action._meta.db_table} WHERE {where})"  # noqa: S608
            cursor.execute(_rollup_sql(connection.vendor, source))


def delete_old_minutes(*, cutoff: datetime | None, now: datetime) -> int:
    """Forget the minutes before the later of retention's ``cutoff`` (None: retention is
    off) and ``KEPT`` ago: the actions a bar would link to are gone, or no page shows it."""
    oldest_shown = now - KEPT
    before = max(cutoff, oldest_shown) if cutoff is not None else oldest_shown
    deleted, _ = OutcomeMinute.objects.filter(minute__lt=before).delete()
    return deleted
