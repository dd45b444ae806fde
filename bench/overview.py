"""Benchmark of the dashboard's overview with many actions: the per-minute chart query.

Makes a fresh database (SQLite in a temporary folder, or a new PostgreSQL
database next to the one ``DATABASE_URL`` names, dropped at the end), fills it
with ``--actions`` actions queued over the last 30 days (about 23 a minute, so
about 1,400 in the last hour; mostly Finished, as on a real server) with one
INSERT ... SELECT, and measures, each as the median of ``--repeats`` runs:

- the chart query (``dashboard.charts.counts_per_minute``: one grouped query
  over the last hour, every queue);
- the whole overview read (``dashboard.queries.queue_overview``: counts by
  status, oldest queued, workers, the chart), and the counts by status and
  the oldest queued action alone;
- rendering the overview's card partial from it (what the websocket sends).

It also prints the database's query plan of the chart query, to show the index
it uses.

    python bench/overview.py [--actions 1000000] [--repeats 20]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python bench/overview.py
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--actions", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=20)
    options = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "connector.settings")
    os.environ.setdefault("CONNECTOR_VAR_DIR", tempfile.mkdtemp(prefix="bench-overview-"))
    import django

    django.setup()
    from django.db import connection
    from django.test.utils import setup_databases, teardown_databases

    print(f"Machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs,")
    print(f"Python {platform.python_version()}, {connection.vendor}, {options.actions:,} actions")
    databases = setup_databases(verbosity=0, interactive=False)
    try:
        started = time.perf_counter()
        fill(options.actions)
        print(f"Filled in {time.perf_counter() - started:.1f} s")
        measure(options.repeats)
    finally:
        teardown_databases(databases, verbosity=0)


def fill(count: int) -> None:
    """One INSERT ... SELECT over a generated series; other columns get their defaults."""
    from django.db import connection
    from django.utils import timezone

    from connector.models import Action

    now = timezone.now()
    span = timedelta(days=30).total_seconds()
    table = connection.ops.quote_name(Action._meta.db_table)
    postgres = connection.vendor == "postgresql"
    # Expressions over n = 1..count; the newest action is n = 1.
    if postgres:
        at = "%s::timestamptz - make_interval(secs => n * %s)"
        special = {
            "token": "'bench-' || n",
            "queued_at": at,
            "started_at": at,
            "finished_at": at,
            "status": "CASE WHEN n <= 20 THEN 'Queued' ELSE 'Finished' END",
        }
        series = "generate_series(1, %s) AS s(n)"
    else:
        at = "strftime('%%Y-%%m-%%d %%H:%%M:%%f', %s, '-' || (n * %s) || ' seconds')"
        special = {
            "token": "'bench-' || n",
            "queued_at": at,
            "started_at": at,
            "finished_at": at,
            "status": "CASE WHEN n <= 20 THEN 'Queued' ELSE 'Finished' END",
        }
        series = (
            "(WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < %s)"
            " SELECT n FROM s)"
        )
    columns, values, params = [], [], []
    stamp: Any = now if postgres else now.strftime("%Y-%m-%d %H:%M:%S.%f")
    step = span / count
    for field in Action._meta.concrete_fields:
        if field.primary_key:
            continue
        columns.append(connection.ops.quote_name(field.column))
        if field.name in special:
            values.append(special[field.name])
            if field.name.endswith("_at"):
                params += [stamp, step]
        else:
            values.append("%s")
            params.append(field.get_db_prep_save(field.get_default(), connection))
    sql = f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(values)} FROM {series}"
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, count])
        if postgres:
            cursor.execute(f"ANALYZE {table}")
        else:
            cursor.execute("ANALYZE")


def timed(function: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000, result


def measure(repeats: int) -> None:
    from django.db import connection
    from django.template.loader import render_to_string

    from connector import queue
    from dashboard import charts, queries

    names = queue.queue_names()
    chart_ms, counts = timed(lambda: charts.counts_per_minute(names), repeats)
    overview_ms, cards = timed(queries.queue_overview, repeats)
    # Parts of the overview that are not the chart (connector.queue's reads).
    counts_ms, _ = timed(lambda: [queue.queue_counts(name) for name in names], repeats)
    oldest_ms, _ = timed(lambda: [queue.oldest_queued_at(name) for name in names], repeats)
    render_ms, _ = timed(
        lambda: "".join(
            render_to_string("dashboard/home.html#queue-card", {"q": card, "oob": True})
            for card in queries.queue_overview()
        ),
        repeats,
    )
    in_hour = sum(sum(minutes.values()) for minutes in counts.values())
    print(f"Actions in the last hour: {in_hour:,}")
    print(f"Chart query (median of {repeats}):           {chart_ms:8.2f} ms")
    print(f"Whole overview read (median of {repeats}):   {overview_ms:8.2f} ms")
    print(f"  of which counts by status (queue.queue_counts): {counts_ms:8.2f} ms")
    print(f"  of which oldest queued (queue.oldest_queued_at): {oldest_ms:8.2f} ms")
    print(f"Overview read + card render (median):  {render_ms:8.2f} ms")

    query = charts.Action.objects.filter(queue__in=names)
    start, end = charts.hour_window(charts.timezone.now())
    plan_query = (
        query.filter(queued_at__gte=start, queued_at__lt=end)
        .annotate(minute=charts.TruncMinute("queued_at", tzinfo=charts.UTC))
        .values("queue", "minute")
        .annotate(n=charts.Count("id"))
        .order_by()
    )
    print(f"Plan of the chart query ({connection.vendor}):")
    print("  " + plan_query.explain().replace("\n", "\n  "))
    del cards


if __name__ == "__main__":
    main()
