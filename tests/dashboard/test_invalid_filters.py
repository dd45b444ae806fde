"""An invalid filter value shows no actions and says what is wrong (not every action)."""

from __future__ import annotations

import pytest
from dashboard_helpers import submit
from django.urls import reverse

from connector.models import Action, Status

pytestmark = pytest.mark.django_db

URL = reverse("dashboard:actions")


@pytest.mark.parametrize(
    ("params", "said"),
    [
        ({"status": "Nope"}, "Status &#x27;Nope&#x27; is not valid"),
        ({"queue": "nope"}, "Queue &#x27;nope&#x27; is not valid"),
        ({"fetch_action": "NOSUCH"}, "Fetch action &#x27;NOSUCH&#x27; is not valid"),
        ({"queued_from": "2026-13-45T99:00"}, "Queued from &#x27;2026-13-45T99:00&#x27;"),
        ({"queued_to": "yesterday"}, "Queued before &#x27;yesterday&#x27; is not valid"),
        ({"sort": "-colour"}, "Sort &#x27;-colour&#x27; is not valid"),
        ({"task": "x" * 101}, "Task &#x27;xxx"),
    ],
)
def test_an_invalid_filter_shows_no_rows_and_says_so(viewer_client, params, said):
    submit()
    response = viewer_client.get(URL, params)
    assert response.status_code == 200
    assert response.context["page"].actions == []
    html = response.content.decode()
    assert 'id="invalid-filter"' in html and 'role="alert"' in html
    assert "No actions are shown: the filter is not valid." in html
    assert said in html


def test_a_valid_filter_beside_an_invalid_one_still_shows_nothing(viewer_client):
    submit()
    response = viewer_client.get(URL, {"status": "Queued", "queued_from": "bad"})
    assert response.context["page"].actions == []


def test_an_invalid_filter_offers_no_new_actions_and_no_bulk_buttons(operator_client):
    submit()
    response = operator_client.get(URL, {"status": "Nope"})
    html = response.content.decode()
    assert response.context["newer_query"] is None
    assert 'id="bulk-form"' not in html
    newer = reverse("dashboard:newer")
    assert operator_client.get(newer, {"status": "Nope"}).content.decode().strip() == ""


@pytest.mark.parametrize("name", ["cancel-matching", "retry-matching"])
@pytest.mark.parametrize("method", ["get", "post"])
def test_bulk_actions_on_an_invalid_filter_change_nothing(operator_client, name, method):
    queued = submit()
    ended = submit()
    from connector import queue

    queue.cancel_action(pk=ended.pk)
    response = getattr(operator_client, method)(
        reverse(f"dashboard:{name}"), {"status": "Nope", "upto": "1_1"}, follow=True
    )
    html = response.content.decode()
    assert "is not valid" in html and (
        "Nothing was cancelled" in html or "Nothing was retried" in html
    )
    assert Action.objects.get(pk=queued.pk).status == Status.QUEUED
    assert Action.objects.count() == 2
