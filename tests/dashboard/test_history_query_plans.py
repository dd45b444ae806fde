"""The history reads the rollup's key, not the action table; the list's "finished
between" filter (which every bar links to) reads the finished_at index for a bar of
few actions and walks the list's order from the bar's end for one of many. These
check SQLite's plan, not a time (bench/dashboard.py times them at 1,000,000 actions).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from dashboard import outcome_history, queries
from dashboard.queries import ActionFilters

pytestmark = [
    pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's EXPLAIN QUERY PLAN wording"),
    pytest.mark.django_db,
]

END = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def plan(queryset) -> str:
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
        return "; ".join(str(row[-1]) for row in cursor.fetchall())


def bar_page(**filters):
    wanted = ActionFilters(finished_from=END - timedelta(minutes=1), finished_to=END, **filters)
    return queries.filtered_actions(wanted).order_by("-queued_at", "-id")[:51]


def test_a_bar_of_few_actions_is_read_from_the_finished_index():
    found = plan(bar_page(status="Error", queue="fetch", task="DOCS"))
    assert "action_finished (finished_at>? AND finished_at<?)" in found
    assert "SCAN connector_action " not in found + " "


def test_a_bar_of_many_actions_walks_the_list_order_from_the_bars_end(monkeypatch):
    monkeypatch.setattr(queries, "FEW_MATCHES", -1)
    # Every bar's link names a status (and a queue, on a queue's chart).
    for filters in ({"status": "Finished"}, {"status": "Finished", "queue": "fetch"}):
        found = plan(bar_page(**filters))
        assert "action_status_queued (status=? AND queued_at<?)" in found
        assert "TEMP B-TREE FOR ORDER BY" not in found


@pytest.mark.parametrize("name", list(outcome_history.RANGES))
@pytest.mark.parametrize("task", ["", "DOCS"])
def test_a_range_reads_its_minutes_from_the_rollup_key(name, task):
    chosen = outcome_history.RANGES[name]
    start, end = outcome_history.window(chosen, END)
    captured = []
    with connection.execute_wrapper(
        lambda execute, sql, params, many, context: (
            captured.append((sql, params)) or execute(sql, params, many, context)
        )
    ):
        outcome_history._rows(chosen, start, end, queues=None, task=task)
    ((sql, params),) = captured
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
        found = "; ".join(str(row[-1]) for row in cursor.fetchall())
    # The upsert key (task, span_minutes, minute, queue, status); SQLite names a unique
    # constraint's index sqlite_autoindex_...
    assert "SEARCH connector_outcomeminute USING INDEX" in found
    assert "(task=? AND span_minutes=? AND minute>? AND minute<?)" in found
    assert "connector_action" not in sql
