"""A prepared read answers what its queryset answers, a prepared insert stores what
save() stores, each compiled once (issue 17).

These run on the test database of the run (SQLite, and PostgreSQL under
``make test-postgres``), so both backends' SQL and converters are covered.
"""

from __future__ import annotations

from datetime import UTC, datetime
from unittest import mock

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.db.models import F, Value
from django.db.models.signals import post_save, pre_save
from django.db.models.sql.compiler import SQLCompiler, SQLInsertCompiler

from connector.models import Action, ActionTask, AuditEntry, FetchTask, Status, TaskWrite
from connector.prepared import LONGEST_LIST, PreparedInsert, PreparedRead

pytestmark = pytest.mark.django_db


@pytest.fixture
def actions():
    made = []
    for number, queue in enumerate(["fetch", "fetch", "other"]):
        made.append(
            Action.objects.create(
                token=f"T{number}",
                queue=queue,
                fetch_action="SYNCHRONIZE",
                params={"TaskSections": f"TASK{number}", "n": number},
                tasks=f"TASK{number}",
                status=Status.QUEUED,
                priority=number,
                queued_at=datetime(2026, 12, 7, 4, number, tzinfo=UTC),
            )
        )
    return made


BY_QUEUE = PreparedRead(
    lambda queue: (
        Action.objects.filter(queue=queue)
        .order_by("pk")
        .values_list("token", "params", "queued_at")
    )
)


def test_rows_are_the_querysets_rows_converted_as_it_converts_them(actions):
    expected = list(
        Action.objects.filter(queue="fetch")
        .order_by("pk")
        .values_list("token", "params", "queued_at")
    )
    assert BY_QUEUE.rows(queue="fetch") == expected
    assert expected[1] == ("T1", {"TaskSections": "TASK1", "n": 1}, actions[1].queued_at)
    # The same SQL with other values.
    assert BY_QUEUE.rows(queue="other") == [("T2", actions[2].params, actions[2].queued_at)]
    assert BY_QUEUE.rows(queue="none") == []


ONLY_AND_COUNT = PreparedRead(
    lambda token: (
        Action.objects.filter(token=token)
        .only("token", "status", "queued_at")
        .annotate(steps=F("priority") * 10 + 7)
        .order_by("pk")[:1]
    )
)


def test_models_keep_only_and_annotations(actions):
    found = ONLY_AND_COUNT.first(token="T1")
    expected = (
        Action.objects.filter(token="T1")
        .only("token", "status", "queued_at")
        .annotate(steps=F("priority") * 10 + 7)
        .get()
    )
    assert found is not None
    assert (found.pk, found.token, found.status, found.queued_at, found.steps) == (
        expected.pk, expected.token, expected.status, expected.queued_at, expected.steps,
    )  # fmt: skip
    assert found.steps == 17
    assert found.get_deferred_fields() == expected.get_deferred_fields()
    assert "params" in found.get_deferred_fields()
    assert found._state.adding is False and found._state.db == "default"
    assert ONLY_AND_COUNT.first(token="nothing") is None


IN_TOKENS = PreparedRead(
    lambda tokens: Action.objects.filter(token__in=tokens).order_by("pk").values_list("token")
)


def test_a_list_slot_compiles_once_per_length(actions):
    with mock.patch.object(
        SQLCompiler, "as_sql", autospec=True, side_effect=SQLCompiler.as_sql
    ) as spy:
        assert IN_TOKENS.rows(tokens=["T0", "T2"]) == [("T0",), ("T2",)]
        assert IN_TOKENS.rows(tokens=["T1", "nothing"]) == [("T1",)]
        assert IN_TOKENS.rows(tokens=["T2"]) == [("T2",)]
        assert IN_TOKENS.rows(tokens=["T0", "T1", "T2"]) == [("T0",), ("T1",), ("T2",)]
        assert IN_TOKENS.rows(tokens=["T1"]) == [("T1",)]
    assert spy.call_count == 3  # lengths 2, 1 and 3


def test_each_connection_compiles_its_own_copy_once(actions):
    prepared = PreparedRead(lambda token: Action.objects.filter(token=token).values_list("pk"))
    with mock.patch.object(
        SQLCompiler, "as_sql", autospec=True, side_effect=SQLCompiler.as_sql
    ) as spy:
        for _ in range(3):
            assert prepared.rows(token="T0") == [(actions[0].pk,)]
    assert spy.call_count == 1
    assert list(prepared._compiled) == [connection]


def test_a_queryset_that_changes_its_values_cannot_be_prepared(actions):
    prepared = PreparedRead(lambda text: Action.objects.filter(token__contains=text))
    with pytest.raises(ImproperlyConfigured, match="cannot be prepared"):
        prepared.rows(text="T")


def test_constants_of_the_queryset_stay_in_place(actions):
    prepared = PreparedRead(
        lambda queue: (
            Action.objects.filter(priority__gte=1, queue=queue, status=Status.QUEUED)
            .order_by("pk")
            .values_list("token")
        )
    )
    assert prepared.rows(queue="fetch") == [("T1",)]
    assert prepared.rows(queue="other") == [("T2",)]


# --- PreparedInsert ----------------------------------------------------------------


NEW_ACTIONS = PreparedInsert(Action)


def new_action(**fields):
    values = {
        "token": "NEW",
        "fetch_action": "SYNCHRONIZE",
        "params": {"TaskSections": "A", "nested": [1, {"x": None}]},
        "tasks": "A",
        "queued_at": datetime(2026, 12, 7, 4, 30, 1, 123456, tzinfo=UTC),
    }
    return Action(**{**values, **fields})


def test_an_insert_stores_what_save_stores():
    saved = new_action(token="SAVED")
    saved.save()
    prepared = NEW_ACTIONS.save(new_action(token="PREPARED"))
    assert isinstance(prepared.pk, int) and prepared.pk > saved.pk
    assert prepared._state.adding is False and prepared._state.db == "default"
    columns = [f.attname for f in Action._meta.concrete_fields if f.attname not in ("id", "token")]
    assert Action.objects.filter(pk=prepared.pk).values(*columns).get() == (
        Action.objects.filter(pk=saved.pk).values(*columns).get()
    )
    # And the instance is the row, as save() leaves it.
    assert Action.objects.get(pk=prepared.pk).params == prepared.params


def test_inserts_compile_once_per_connection():
    inserts = PreparedInsert(Action)
    with mock.patch.object(
        SQLInsertCompiler, "as_sql", autospec=True, side_effect=SQLInsertCompiler.as_sql
    ) as spy:
        for number in range(3):
            inserts.save(new_action(token=f"N{number}"))
    assert spy.call_count == 1
    assert sorted(Action.objects.values_list("token", flat=True)) == ["N0", "N1", "N2"]


def test_an_expression_value_is_saved_by_the_model():
    action = NEW_ACTIONS.save(new_action(priority=Value(4) + Value(3)))
    assert Action.objects.get(pk=action.pk).priority == 7


def test_only_new_rows_are_inserted(actions):
    with pytest.raises(ValueError, match="not a new row"):
        NEW_ACTIONS.save(actions[0])
    assert Action.objects.count() == 3


ENTRY = {
    "at": datetime(2026, 12, 7, 13, 30, 5, 654321, tzinfo=UTC),
    "verb": "submit",
    "outcome": "done",
    "token": "TOKEN",
    "queue": "fetch",
    "user": "ann",
    "client": "127.0.0.1",
    "via": "endpoint",
    "detail": "détail <&>",
}
ENTRY_COLUMNS = [f.attname for f in AuditEntry._meta.concrete_fields if f.attname != "id"]


def test_an_added_row_is_what_save_stores(actions):
    AuditEntry(**ENTRY, action_id=actions[0].pk).save()
    PreparedInsert(AuditEntry).add(**ENTRY, action_id=actions[0].pk)
    saved, added = AuditEntry.objects.order_by("pk").values(*ENTRY_COLUMNS)
    assert added == saved
    assert added["action_id"] == actions[0].pk and added["detail"] == "détail <&>"


def test_a_field_left_out_of_an_added_row_takes_its_default():
    PreparedInsert(AuditEntry).add(at=ENTRY["at"], verb="submit", outcome="done", via="endpoint")
    entry = AuditEntry.objects.get()
    assert (entry.reason, entry.token, entry.action_id) == ("", "", None)


def test_rows_added_compile_once_per_connection_and_return_nothing(actions):
    adds = PreparedInsert(ActionTask)
    with mock.patch.object(
        SQLInsertCompiler, "as_sql", autospec=True, side_effect=SQLInsertCompiler.as_sql
    ) as spy:
        results = [adds.add(action_id=action.pk, task="T") for action in actions]
    assert spy.call_count == 1
    assert results == [None, None, None]
    assert sorted(ActionTask.objects.values_list("action_id", "task")) == [
        (action.pk, "T") for action in actions
    ]


def test_an_unknown_field_is_refused_and_nothing_is_added(actions):
    with pytest.raises(TypeError, match=r"\['action'\]"):
        PreparedInsert(ActionTask).add(action=actions[0], task="T")
    assert not ActionTask.objects.exists()


def test_a_value_made_at_save_cannot_be_added():
    # FetchTask.updated_at is auto_now: save() makes its value, add() would not.
    with pytest.raises(ImproperlyConfigured, match="updated_at"):
        PreparedInsert(FetchTask).add(name="T", directory_paths=[])
    assert not FetchTask.objects.exists()


@pytest.mark.parametrize("model", [Action, TaskWrite, ActionTask, AuditEntry])
def test_the_models_inserted_so_have_no_save_receivers(model):
    # PreparedInsert sends no pre_save/post_save: a receiver added for one of these
    # models would never hear of the endpoint's inserts.
    assert not pre_save.has_listeners(model)
    assert not post_save.has_listeners(model)


def test_a_long_or_empty_list_runs_the_queryset_itself(actions):
    def shapes():
        return {shape for cache in IN_TOKENS._compiled.values() for shape in cache}

    before = shapes()
    tokens = ["T2", *[f"none{i}" for i in range(LONGEST_LIST)], "T0"]
    assert IN_TOKENS.rows(tokens=tokens) == [("T0",), ("T2",)]
    assert IN_TOKENS.rows(tokens=[]) == []
    assert shapes() == before  # nothing kept for them
    assert IN_TOKENS.rows(tokens=tokens[:LONGEST_LIST]) == [("T2",)]
    assert shapes() == before | {(("tokens", LONGEST_LIST),)}
