"""One writer per task on the dashboard: a waiting writer says what it waits for, and
the buttons that queue a writer say, before the press, that it will wait."""

from __future__ import annotations

import pytest
from dashboard_helpers import finish, start, submit
from django.urls import reverse

from connector.models import Action, Status

pytestmark = pytest.mark.django_db


def writer(tasks: str = "DOCS", fetch_action: str = "Synchronize") -> Action:
    return submit(fetch_action=fetch_action, tasks=tasks.split(","))


def test_a_waiting_writer_says_which_running_action_holds_its_task(viewer_client):
    running = start(writer())
    waiting = writer()
    page = viewer_client.get(reverse("dashboard:action", args=[waiting.pk])).content.decode()
    assert "Waiting for" in page and running.token in page
    assert f'href="{reverse("dashboard:action", args=[running.pk])}"' in page
    listing = viewer_client.get(reverse("dashboard:actions")).content.decode()
    assert (
        f'waits for task DOCS, held by <a href="{reverse("dashboard:action", args=[running.pk])}"'
        in listing
    )
    row = viewer_client.get(
        reverse("dashboard:action", args=[waiting.pk]), headers={"HX-Request": "true"}
    ).content.decode()
    assert "waits for task DOCS" in row
    finish(running)
    page = viewer_client.get(reverse("dashboard:action", args=[waiting.pk])).content.decode()
    assert "Waiting for" not in page and "waits for task" not in page


def test_retry_of_a_writer_says_the_copy_waits_and_for_whom(operator_client):
    running = start(writer())
    page = operator_client.get(reverse("dashboard:action", args=[running.pk])).content.decode()
    assert 'aria-describedby="retry-note"' in page
    assert "The copy writes task DOCS: one writer per task runs at a time" in page
    assert f"action {running.pk}</a> holds DOCS" in page
    response = operator_client.post(reverse("dashboard:retry", args=[running.pk]))
    copy = Action.objects.latest("pk")
    assert response.status_code == 302 and copy.status == Status.QUEUED
    assert "Waiting for" in operator_client.get(response["Location"]).content.decode()


def test_retry_of_an_action_that_writes_nothing_has_no_note(operator_client):
    action = start(submit())
    page = operator_client.get(reverse("dashboard:action", args=[action.pk])).content.decode()
    assert "retry-note" not in page


def test_the_submit_form_says_a_writer_waits_for_a_running_one(operator_client, docs_task):
    submit_url = reverse("dashboard:submit")
    for name in ("SYNCHRONIZE", "UPDATE", "HOLD", "INSERT"):
        page = operator_client.get(submit_url, {"FetchAction": name}).content.decode()
        assert 'id="writer-note"' in page, name
        assert "this one waits, Queued" in page, name
    page = operator_client.get(submit_url, {"FetchAction": "IDENTIFIERS"}).content.decode()
    assert "writer-note" not in page
