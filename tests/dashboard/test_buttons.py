"""Cancel, Stop, Retry and priority: shown to operators, refused to viewers, done by the queue."""

from __future__ import annotations

import pytest
from dashboard_helpers import start, submit
from django.urls import reverse

from connector.models import Action, Status

pytestmark = pytest.mark.django_db

LIST = reverse("dashboard:actions")


def url(name: str, action: Action) -> str:
    return reverse(f"dashboard:{name}", args=[action.pk])


def status(action: Action) -> str:
    return Action.objects.values_list("status", flat=True).get(pk=action.pk)


def test_buttons_are_not_shown_to_viewers(viewer_client):
    queued = submit()
    running = submit()
    start(queued)
    for page in (LIST, url("action", queued), url("action", running)):
        html = viewer_client.get(page).content.decode()
        for name in ("cancel", "stop", "retry", "priority"):
            for action in (queued, running):
                assert url(name, action) not in html, (page, name)
        assert 'method="post" action="/dashboard/' not in html


def test_operators_see_cancel_on_queued_and_stop_on_running_rows(operator_client):
    running = submit()
    queued = submit()
    start(running)
    response = operator_client.get(LIST)
    html = response.content.decode()
    assert url("cancel", queued) in html
    assert url("stop", running) in html
    assert url("cancel", running) not in html
    assert url("stop", queued) not in html
    assert "csrfmiddlewaretoken" in html
    detail = operator_client.get(url("action", queued)).content.decode()
    assert url("retry", queued) in detail and url("priority", queued) in detail
    assert detail.count(url("cancel", queued)) == 2  # action= and hx-post= of one form
    running_detail = operator_client.get(url("action", running)).content.decode()
    assert url("stop", running) in running_detail
    assert url("priority", running) not in running_detail


@pytest.mark.parametrize("button", ["cancel", "stop", "retry", "priority"])
def test_buttons_posted_by_a_viewer_are_refused_and_logged(viewer_client, button, caplog):
    action = submit()
    if button == "stop":
        start(action)
    before = Action.objects.count(), status(action)
    response = viewer_client.post(url(button, action), {"priority": "5"})
    assert response.status_code == 403
    assert (Action.objects.count(), status(action)) == before
    assert Action.objects.get(pk=action.pk).priority == 0
    assert "not an operator" in caplog.text


def test_buttons_refuse_get(operator_client):
    action = submit()
    assert operator_client.get(url("cancel", action)).status_code == 405
    assert status(action) == Status.QUEUED


def test_buttons_need_a_csrf_token(operator):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    action = submit()
    assert client.post(url("cancel", action)).status_code == 403
    assert status(action) == Status.QUEUED


def test_operator_cancels_a_queued_action_without_javascript(operator_client):
    action = submit()
    response = operator_client.post(url("cancel", action), {"next": f"{LIST}?status=Queued"})
    assert response.status_code == 302
    assert response["Location"] == f"{LIST}?status=Queued"
    cancelled = Action.objects.get(pk=action.pk)
    assert cancelled.status == Status.CANCELLED
    assert cancelled.cancelled_by == "operator"
    assert cancelled.cancelled_from == "127.0.0.1"


def test_redirect_back_goes_only_to_this_site(operator_client):
    action = submit()
    response = operator_client.post(url("cancel", action), {"next": "https://evil.example/"})
    assert response["Location"] == url("action", action)


def test_operator_cancels_with_htmx_and_gets_the_row(operator_client):
    action = submit()
    response = operator_client.post(url("cancel", action), headers={"HX-Request": "true"})
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith(f'<tr id="action-{action.pk}"')
    assert "Cancelled" in html
    assert "hx-swap-oob" not in html


def test_cancel_after_the_action_started_shows_the_reason(operator_client):
    action = submit()
    start(action)
    response = operator_client.post(url("cancel", action), headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert "The action is Processing, not Queued" in response.content.decode()
    response = operator_client.post(url("cancel", action), follow=True)
    assert response.status_code == 200
    assert "The action is Processing, not Queued" in response.content.decode()
    assert status(action) == Status.PROCESSING


def test_operator_stops_a_running_action(operator_client):
    action = submit()
    start(action)
    response = operator_client.post(url("stop", action), headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert "(stopping)" in response.content.decode()
    stopped = Action.objects.get(pk=action.pk)
    assert stopped.stop_requested and stopped.stopped_by == "operator"


def test_stop_of_a_queued_action_shows_the_reason(operator_client):
    action = submit()
    response = operator_client.post(url("stop", action), follow=True)
    assert "The action is Queued, not Processing" in response.content.decode()
    assert not Action.objects.get(pk=action.pk).stop_requested


def test_operator_retries_an_action_and_lands_on_the_new_one(operator_client):
    action = submit(params={"Seconds": "1"}, tasks=["DOCS"], priority=3)
    response = operator_client.post(url("retry", action))
    copy = Action.objects.exclude(pk=action.pk).get()
    assert response.status_code == 302
    assert response["Location"] == url("action", copy)
    assert (copy.params, copy.tasks, copy.priority, copy.status) == (
        {"Seconds": "1"},
        "DOCS",
        3,
        Status.QUEUED,
    )
    assert copy.submitted_by == "operator"


def test_operator_changes_the_priority_of_a_queued_action(operator_client):
    action = submit()
    response = operator_client.post(url("priority", action), {"priority": "7"}, follow=True)
    assert "Priority set to 7" in response.content.decode()
    assert Action.objects.get(pk=action.pk).priority == 7


def test_priority_change_of_a_running_action_shows_the_reason(operator_client):
    action = submit()
    start(action)
    response = operator_client.post(url("priority", action), {"priority": "7"}, follow=True)
    assert "not Queued" in response.content.decode()
    response = operator_client.post(url("priority", action), {"priority": "high"}, follow=True)
    assert "whole number" in response.content.decode()
    assert Action.objects.get(pk=action.pk).priority == 0


def test_button_on_an_unknown_action_is_not_found(operator_client):
    assert operator_client.post(reverse("dashboard:cancel", args=[999999])).status_code == 404
