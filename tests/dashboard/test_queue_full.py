"""A full queue (issue 6) is a message in the dashboard, not a server error."""

from __future__ import annotations

import pytest
from django.urls import reverse

from connector import queue
from connector.models import Action

pytestmark = pytest.mark.django_db


def test_submitting_to_a_full_queue_shows_why_and_keeps_the_form(operator_client, settings):
    settings.CONNECTOR_MAX_QUEUED_ACTIONS = 1
    queue.submit_action(fetch_action="NOOP", params={})
    response = operator_client.post(
        reverse("dashboard:submit"), {"FetchAction": "SLEEP", "Seconds": "1"}
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert "Not queued" in html
    assert "already holds 1 queued actions" in html
    assert Action.objects.count() == 1


def test_retrying_into_a_full_queue_shows_why(operator_client, settings):
    settings.CONNECTOR_MAX_QUEUED_ACTIONS = 1
    original = queue.submit_action(fetch_action="NOOP", params={})
    response = operator_client.post(reverse("dashboard:retry", args=[original.pk]), follow=True)
    assert response.status_code == 200
    assert "Not queued again" in response.content.decode()
    assert Action.objects.count() == 1
