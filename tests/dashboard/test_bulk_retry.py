"""Bulk retry: ticked rows, or every ended action matching the filter after a confirmation."""

from __future__ import annotations

import re

import pytest
from dashboard_helpers import finish, start, submit
from django.urls import reverse

from connector import queue
from connector.models import Action, AuditEntry, AuditVerb, Status

pytestmark = pytest.mark.django_db

LIST = reverse("dashboard:actions")
SELECTED = reverse("dashboard:retry-selected")
MATCHING = reverse("dashboard:retry-matching")


def ended(**kwargs) -> Action:
    action = submit(**kwargs)
    start(action)
    finish(action)
    return action


def copies_of(action: Action) -> list[Action]:
    return list(
        Action.objects.filter(params=action.params, fetch_action=action.fetch_action)
        .exclude(pk__lte=action.pk)
        .order_by("pk")
    )


def test_operators_get_retry_buttons_and_checkboxes_on_ended_rows(operator_client):
    done = ended()
    html = operator_client.get(LIST).content.decode()
    assert f'name="pk" value="{done.pk}" form="bulk-form"' in html
    assert 'id="retry-selected" formaction="/dashboard/actions/retry/"' in html
    assert f'href="{MATCHING}"' in html


def test_viewers_get_no_retry_controls(viewer_client):
    ended()
    html = viewer_client.get(LIST).content.decode()
    assert "retry-selected" not in html and MATCHING not in html


def test_retry_selected_copies_ended_actions_and_refuses_the_others(operator_client):
    done = ended(params={"Seconds": "1"}, fetch_action="Sleep")
    waiting = submit()
    cancelled = submit()
    queue.cancel_action(pk=cancelled.pk)
    before = Action.objects.count()
    response = operator_client.post(
        SELECTED,
        {"pk": [done.pk, waiting.pk, cancelled.pk, 999999], "next": f"{LIST}?q=x"},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == f"{LIST}?q=x"
    assert "2 queued again as new actions, 2 not ended." in response.content.decode()
    assert Action.objects.count() == before + 2
    new = Action.objects.order_by("-pk")[:2]
    assert {a.status for a in new} == {Status.QUEUED}
    assert {a.submitted_by for a in new} == {"operator"}
    retries = AuditEntry.objects.filter(verb=AuditVerb.RETRY, user="operator", via="dashboard")
    assert retries.count() == 2
    assert {e.detail.split(" (")[0] for e in retries} == {
        f"copy of action {done.pk}",
        f"copy of action {cancelled.pk}",
    }


def test_retry_selected_with_nothing_ticked_says_so(operator_client):
    response = operator_client.post(SELECTED, {}, follow=True)
    assert "Select at least one ended action to retry." in response.content.decode()


def test_retry_matching_shows_the_count_before_retrying(operator_client):
    for _ in range(3):
        ended(fetch_action="Sleep", params={"Seconds": "0"})
    submit(fetch_action="Sleep", params={"Seconds": "0"})  # queued: not counted
    before = Action.objects.count()
    html = operator_client.get(MATCHING, {"fetch_action": "SLEEP"}).content.decode()
    assert "3 ended actions match this filter." in html
    assert "Retry 3 actions" in html
    assert Action.objects.count() == before


def test_confirming_retries_the_matching_ended_actions_counted(operator_client):
    first = ended(fetch_action="Sleep", params={"Seconds": "0"})
    second = ended(fetch_action="Sleep", params={"Seconds": "0"})
    other = ended()
    html = operator_client.get(MATCHING, {"fetch_action": "SLEEP"}).content.decode()
    upto = re.search(r'name="upto" value="([^"]+)"', html).group(1)
    late = ended(fetch_action="Sleep", params={"Seconds": "0"})  # ended after the count
    response = operator_client.post(MATCHING, {"fetch_action": "SLEEP", "upto": upto}, follow=True)
    assert response.redirect_chain[-1][0] == f"{LIST}?fetch_action=SLEEP"
    assert "2 queued again as new actions, 0 not ended." in response.content.decode()
    details = list(
        AuditEntry.objects.filter(verb=AuditVerb.RETRY)
        .order_by("id")
        .values_list("detail", flat=True)
    )
    # In the order they were first queued; neither the late one nor the other action.
    assert [d.split(" (")[0] for d in details] == [
        f"copy of action {first.pk}",
        f"copy of action {second.pk}",
    ]
    assert late.pk and other.pk


def test_retry_matching_over_the_limit_says_so_and_takes_the_newest(operator_client, monkeypatch):
    monkeypatch.setattr("dashboard.queries.BULK_LIMIT", 2)
    actions = [ended() for _ in range(3)]
    html = operator_client.get(MATCHING).content.decode()
    assert "More than 2 ended actions match this filter." in html
    upto = re.search(r'name="upto" value="([^"]+)"', html).group(1)
    operator_client.post(MATCHING, {"upto": upto})
    details = AuditEntry.objects.filter(verb=AuditVerb.RETRY).values_list("detail", flat=True)
    assert sorted(d.split(" (")[0] for d in details) == [
        f"copy of action {actions[1].pk}",
        f"copy of action {actions[2].pk}",
    ]


def test_retry_stops_when_the_queue_is_full(operator_client, settings):
    actions = [ended() for _ in range(3)]
    settings.CONNECTOR_MAX_QUEUED_ACTIONS = 1
    response = operator_client.post(SELECTED, {"pk": [a.pk for a in actions]}, follow=True)
    html = response.content.decode()
    assert "1 queued again as new actions, 0 not ended." in html
    assert "The queue is full: 2 not queued" in html
    assert Action.objects.filter(status=Status.QUEUED).count() == 1


def test_retry_matching_without_confirmation_retries_nothing(operator_client):
    ended()
    before = Action.objects.count()
    response = operator_client.post(MATCHING, {}, follow=True)
    assert "confirm on the count page first" in response.content.decode()
    assert Action.objects.count() == before


def test_retry_matching_with_no_match_says_so(operator_client):
    submit()
    html = operator_client.get(MATCHING, {"status": "Queued"}).content.decode()
    assert "No ended action matches this filter." in html


@pytest.mark.parametrize("method", ["get", "post"])
def test_bulk_retry_is_refused_to_viewers(viewer_client, method, caplog):
    action = ended()
    assert getattr(viewer_client, method)(MATCHING).status_code == 403
    assert viewer_client.post(SELECTED, {"pk": [action.pk]}).status_code == 403
    assert Action.objects.count() == 1
    assert "not an operator" in caplog.text
