"""The submit form: one per fetch action, checked like the endpoint, queued by the queue."""

from __future__ import annotations

import pytest
from django.urls import reverse

from connector.models import Action, Status

pytestmark = pytest.mark.django_db

SUBMIT = reverse("dashboard:submit")


def test_the_form_shows_the_fields_of_the_chosen_fetch_action(operator_client, docs_task):
    html = operator_client.get(SUBMIT, {"FetchAction": "Identifiers"}).content.decode()
    for name in ("ConfigSection", "MaxDepth", "ContainersOnly", "ParentIdentifiers", "ActionID"):
        assert f'name="{name}"' in html, name
    assert '<option value="DOCS">DOCS</option>' in html
    assert 'name="InsertXML"' not in html
    sleep = operator_client.get(SUBMIT, {"FetchAction": "SLEEP"}).content.decode()
    assert 'name="Seconds"' in sleep and 'name="ConfigSection"' not in sleep


def test_switching_the_fetch_action_with_htmx_gets_only_the_form(operator_client, docs_task):
    response = operator_client.get(
        SUBMIT, {"FetchAction": "INSERT"}, headers={"HX-Request": "true"}
    )
    html = response.content.decode()
    assert html.lstrip().startswith('<form method="post"')
    assert 'name="InsertXML"' in html and "<html" not in html


def test_operator_submits_a_synchronize_and_lands_on_its_page(operator_client, docs_task):
    response = operator_client.post(
        SUBMIT,
        {
            "FetchAction": "SYNCHRONIZE",
            "TaskSections": "DOCS",
            "ActionID": "nightly",
            "Priority": "4",
        },
    )
    action = Action.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("dashboard:action", args=[action.pk])
    assert (action.fetch_action, action.tasks, action.status) == (
        "SYNCHRONIZE",
        "DOCS",
        Status.QUEUED,
    )
    assert (action.action_id, action.priority) == ("nightly", 4)
    assert action.params == {"TaskSections": "DOCS"}
    assert (action.submitted_by, action.submitted_from) == ("operator", "127.0.0.1")
    assert action.token


def test_blank_fields_are_left_out_and_a_ticked_box_is_true(operator_client, docs_task):
    operator_client.post(
        SUBMIT,
        {
            "FetchAction": "IDENTIFIERS",
            "ConfigSection": "DOCS",
            "MaxDepth": "",
            "ContainersOnly": "on",
        },
    )
    assert Action.objects.get().params == {"ConfigSection": "DOCS", "ContainersOnly": "true"}


def test_the_fetch_actions_own_rules_refuse_bad_parameters(operator_client, docs_task):
    response = operator_client.post(
        SUBMIT, {"FetchAction": "IDENTIFIERS", "ConfigSection": "DOCS", "MaxDepth": "-1"}
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert "The MaxDepth parameter must be a whole number of at least 0" in html
    missing = operator_client.post(SUBMIT, {"FetchAction": "SYNCHRONIZE"}).content.decode()
    assert "The TaskSections parameter is required" in missing
    assert not Action.objects.exists()


def test_priority_and_actionid_follow_the_endpoints_limits(operator_client):
    response = operator_client.post(SUBMIT, {"FetchAction": "NOOP", "Priority": "9999999"})
    assert "The Priority parameter must be a whole number from -1000000 to 1000000" in (
        response.content.decode()
    )
    response = operator_client.post(SUBMIT, {"FetchAction": "NOOP", "ActionID": "x" * 401})
    assert "at most 400 characters" in response.content.decode()
    assert not Action.objects.exists()


def test_errors_with_markup_are_shown_escaped(operator_client):
    response = operator_client.post(
        SUBMIT, {"FetchAction": "SLEEP", "Seconds": "<script>alert(1)</script>"}
    )
    html = response.content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert(1)" not in html


def test_an_unknown_fetch_action_is_refused(operator_client):
    response = operator_client.post(SUBMIT, {"FetchAction": "FORMAT_DISK"})
    assert response.status_code == 400
    assert not Action.objects.exists()


def test_viewers_do_not_see_the_form_and_cannot_post_it(viewer_client, caplog):
    assert SUBMIT not in viewer_client.get(reverse("dashboard:home")).content.decode()
    assert viewer_client.get(SUBMIT).status_code == 403
    response = viewer_client.post(SUBMIT, {"FetchAction": "NOOP"})
    assert response.status_code == 403
    assert not Action.objects.exists()
    assert "not an operator" in caplog.text


def test_operators_see_the_submit_link(operator_client):
    assert SUBMIT in operator_client.get(reverse("dashboard:home")).content.decode()


def test_signed_out_users_are_sent_to_sign_in(client):
    response = client.post(SUBMIT, {"FetchAction": "NOOP"})
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert not Action.objects.exists()
