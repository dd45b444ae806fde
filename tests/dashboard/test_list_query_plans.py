"""The list's keyset pages walk an index from the cursor instead of sorting.

With 1,000,000 actions a page read by sorting every older row took half a
second (bench/dashboard.py); these check SQLite's plan, not a time.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from dashboard_helpers import submit
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


# --- Issue 16: filters that match almost nothing, and the sorts -------------------------


def first_page(filters: ActionFilters):
    return queries.filtered_actions(filters).order_by("-queued_at", "-id")[:51]


@pytest.mark.django_db
def test_a_rare_task_is_read_from_the_task_index(monkeypatch):
    # task=NOSUCH used to read every action's comma-separated tasks (0.8 s at 1M).
    found = plan(first_page(ActionFilters(task="NOSUCH")))
    assert "SEARCH U0 USING COVERING INDEX actiontask_task (task=?)" in found
    assert "SCAN connector_action" not in found


@pytest.mark.django_db
def test_a_common_task_walks_the_list_order_and_checks_each_row(monkeypatch):
    monkeypatch.setattr(queries, "FEW_MATCHES", -1)
    found = plan(first_page(ActionFilters(task="DOCS")))
    assert "SCAN connector_action USING INDEX action_queued" in found
    # The probe: the (action, task) unique constraint's index.
    assert "(action_id=? AND task=?)" in found
    assert "TEMP B-TREE FOR ORDER BY" not in found


@pytest.mark.django_db
def test_a_queue_filter_reads_the_queue_index(monkeypatch):
    assert "USING COVERING INDEX action_claim (queue=?)" in plan(
        first_page(ActionFilters(queue="fetch"))
    )
    monkeypatch.setattr(queries, "FEW_MATCHES", -1)
    found = plan(first_page(ActionFilters(queue="fetch")))
    assert "USING INDEX action_queued" in found
    assert "TEMP B-TREE FOR ORDER BY" not in found


@pytest.mark.django_db
def test_a_search_reads_the_action_id_index_and_only_the_newest_window(monkeypatch):
    submit()
    monkeypatch.setattr(queries, "SEARCH_WINDOW", 1)
    found = plan(first_page(ActionFilters(search="nightly-123456")))
    assert "MULTI-INDEX OR" in found
    assert "USING INDEX action_action_id (action_id=?)" in found
    assert "USING INDEX action_queued (queued_at>?)" in found
    assert "SCAN" not in found


SORT_INDEXES = {
    "-queued": "action_queued",
    "queued": "action_queued",
    "-priority": "action_priority",
    "priority": "action_priority",
    "-started": "action_started",
    "started": "action_started",
    "-duration": "action_duration",
    "duration": "action_duration",
}


@pytest.mark.django_db
@pytest.mark.parametrize("sort", SORT_INDEXES)
@pytest.mark.parametrize("direction", ["older", "newer"])
def test_each_sort_pages_both_ways_on_its_own_index_without_sorting(sort, direction):
    chosen, descending = queries.read_sort(sort)
    position = queries.Position(
        tuple(CURSOR.queued_at if name.endswith("_at") else 3 for name in chosen.fields), 500
    )
    walk = descending if direction == "older" else not descending
    actions = queries.sortable(queries.filtered_actions(ActionFilters()))
    if chosen.needs:
        actions = actions.filter(**{f"{chosen.needs}__isnull": False})
    actions = actions.filter(position.beyond(chosen, descending=walk))
    found = plan(actions.order_by(*chosen.order_by(descending=walk))[:51])
    assert f"USING INDEX {SORT_INDEXES[sort]} (" in found
    assert "TEMP B-TREE FOR ORDER BY" not in found
    assert "MULTI-INDEX OR" not in found


@pytest.mark.django_db
def test_a_common_status_in_another_sort_walks_that_sorts_index(monkeypatch):
    # status=Error sorted by priority read every Error action from the status index
    # and sorted them (137 ms at 1M, bench/dashboard.py); now it walks action_priority.
    monkeypatch.setattr(queries, "FEW_MATCHES", -1)
    chosen, _ = queries.read_sort("-priority")
    actions = queries.filtered_actions(ActionFilters(status="Error"), sort=chosen)
    found = plan(actions.order_by(*chosen.order_by(descending=True))[:51])
    assert "USING INDEX action_priority" in found
    assert "action_status_queued" not in found
    assert "TEMP B-TREE FOR ORDER BY" not in found


@pytest.mark.django_db
def test_a_rare_status_in_another_sort_is_read_from_the_status_index():
    chosen, _ = queries.read_sort("-priority")
    actions = queries.filtered_actions(ActionFilters(status="Queued"), sort=chosen)
    found = plan(actions.order_by(*chosen.order_by(descending=True))[:51])
    # A status index (action_lease covers status too), the few rows then sorted.
    assert "LIST SUBQUERY" in found and "INDEX action_" in found and "(status=?)" in found


@pytest.mark.django_db
def test_the_list_indexes_leave_the_overview_counts_on_the_status_index():
    # An index (queue, queued_at) for the queue filter made SQLite count the
    # overview's final statuses through it, reading each row: 500 ms at 1M.
    actions = queries.Action.objects.filter(
        queue="fetch", status="Finished", queued_at__gte=CURSOR.queued_at
    )
    found = plan(actions.order_by().values("pk"))
    assert "action_status_queued (status=? AND queued_at>?)" in found or "action_claim" in found
    assert "action_queued" not in found
