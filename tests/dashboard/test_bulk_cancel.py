"""Bulk cancel: ticked rows, or every queued action matching the filter after a confirmation."""

from __future__ import annotations

import re

import pytest
from dashboard_helpers import start, submit
from django.urls import reverse

from connector.models import Action, Status

pytestmark = pytest.mark.django_db

LIST = reverse("dashboard:actions")
SELECTED = reverse("dashboard:cancel-selected")
MATCHING = reverse("dashboard:cancel-matching")


def statuses(*actions: Action) -> list[str]:
    return [Action.objects.get(pk=a.pk).status for a in actions]


def test_operators_get_checkboxes_on_queued_rows_only(operator_client):
    running = submit()
    queued = submit()
    start(running)
    html = operator_client.get(LIST).content.decode()
    assert f'name="pk" value="{queued.pk}" form="bulk-form"' in html
    assert f'name="pk" value="{running.pk}"' not in html
    assert 'id="bulk-form"' in html and "Cancel selected" in html
    detail = operator_client.get(reverse("dashboard:action", args=[queued.pk])).content.decode()
    assert 'name="pk"' not in detail


def test_viewers_get_no_bulk_controls(viewer_client):
    submit()
    html = viewer_client.get(LIST).content.decode()
    assert 'name="pk"' not in html and "bulk-form" not in html and MATCHING not in html


def test_cancel_selected_cancels_and_counts_those_that_started(operator_client):
    first, started, second = submit(), submit(), submit()
    start(first)  # the oldest: it starts "meanwhile"
    response = operator_client.post(
        SELECTED,
        {"pk": [first.pk, second.pk, started.pk, 999999], "next": f"{LIST}?q=x"},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == f"{LIST}?q=x"
    assert "2 cancelled, 2 not queued any more." in response.content.decode()
    assert statuses(first, started, second) == [
        Status.PROCESSING,
        Status.CANCELLED,
        Status.CANCELLED,
    ]
    assert Action.objects.get(pk=second.pk).cancelled_by == "operator"


def test_cancel_selected_with_nothing_ticked_says_so(operator_client):
    response = operator_client.post(SELECTED, {}, follow=True)
    assert "Select at least one queued action" in response.content.decode()


def test_cancel_matching_shows_the_count_before_cancelling(operator_client):
    slow = [submit(fetch_action="Sleep") for _ in range(3)]
    other = submit(fetch_action="NoOp")
    response = operator_client.get(MATCHING, {"fetch_action": "SLEEP"})
    html = response.content.decode()
    assert "3 queued actions match" in html
    assert statuses(*slow, other) == [Status.QUEUED] * 4
    assert 'name="fetch_action" value="SLEEP"' in html


def test_confirming_cancels_the_matching_queued_actions_only(operator_client):
    slow = [submit(fetch_action="Sleep") for _ in range(3)]
    other = submit(fetch_action="NoOp")
    html = operator_client.get(MATCHING, {"fetch_action": "SLEEP"}).content.decode()
    upto = re.search(r'name="upto" value="([^"]+)"', html).group(1)
    start(slow[0])
    late = submit(fetch_action="Sleep")  # queued after the count was shown
    response = operator_client.post(MATCHING, {"fetch_action": "SLEEP", "upto": upto}, follow=True)
    assert response.redirect_chain[-1][0] == f"{LIST}?fetch_action=SLEEP"
    assert "2 cancelled, 0 not queued any more." in response.content.decode()
    assert statuses(*slow, other, late) == [
        Status.PROCESSING,
        Status.CANCELLED,
        Status.CANCELLED,
        Status.QUEUED,
        Status.QUEUED,
    ]


def test_cancel_matching_without_confirmation_cancels_nothing(operator_client):
    action = submit()
    response = operator_client.post(MATCHING, {}, follow=True)
    assert "confirm on the count page first" in response.content.decode()
    assert statuses(action) == [Status.QUEUED]


def test_cancel_matching_with_no_match_says_so(operator_client):
    html = operator_client.get(MATCHING, {"status": "Finished"}).content.decode()
    assert "No queued action matches this filter." in html


@pytest.mark.parametrize("method", ["get", "post"])
def test_bulk_cancel_is_refused_to_viewers(viewer_client, method, caplog):
    action = submit()
    assert getattr(viewer_client, method)(MATCHING).status_code == 403
    assert viewer_client.post(SELECTED, {"pk": [action.pk]}).status_code == 403
    assert statuses(action) == [Status.QUEUED]
    assert "not an operator" in caplog.text
