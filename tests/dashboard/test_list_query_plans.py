"""The list's keyset pages walk an index from the cursor instead of sorting.

With 1,000,000 actions a page read by sorting every older row took half a
second (bench/dashboard.py); these check SQLite's plan, not a time.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection

from dashboard import queries
from dashboard.queries import ActionFilters, Cursor

pytestmark = pytest.mark.skipif(
    connection.vendor != "sqlite", reason="SQLite's EXPLAIN QUERY PLAN wording"
)

CURSOR = Cursor(datetime(2026, 11, 1, tzinfo=UTC), 500)


def plan(queryset) -> str:
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
        return "; ".join(str(row[-1]) for row in cursor.fetchall())


def page_query(after: Cursor, filters: ActionFilters | None = None):
    actions = queries.filtered_actions(filters or ActionFilters()).filter(after.older())
    return actions.order_by("-queued_at", "-id")[:51]


@pytest.mark.django_db
def test_a_later_page_walks_the_queued_at_index_without_sorting():
    found = plan(page_query(CURSOR))
    assert "USING INDEX action_queued (queued_at<?)" in found
    assert "TEMP B-TREE FOR ORDER BY" not in found
    assert "MULTI-INDEX OR" not in found


@pytest.mark.django_db
def test_a_later_page_of_one_status_walks_the_status_index_without_sorting():
    found = plan(page_query(CURSOR, ActionFilters(status="Error")))
    assert "USING INDEX action_status_queued (status=? AND queued_at<?)" in found
    assert "TEMP B-TREE FOR ORDER BY" not in found


@pytest.mark.django_db
def test_counting_newer_actions_reads_only_the_newer_range():
    found = plan(queries.filtered_actions(ActionFilters()).filter(CURSOR.newer()).order_by())
    assert "(queued_at>?)" in found
    assert "MULTI-INDEX OR" not in found
