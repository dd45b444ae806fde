"""Issue 16 item 7: a signed-out htmx request goes to the sign-in page, and back afterwards.

A redirect followed inside an htmx request rendered the whole sign-in page inside the
actions table; ``dashboard.htmx_auth`` answers with ``HX-Redirect`` instead, its ``next``
the page the user was on.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
from dashboard_helpers import submit
from django.urls import reverse

from connector.models import Action, Status

pytestmark = pytest.mark.django_db

LIST = reverse("dashboard:actions")
HTMX = {"HTTP_HX_REQUEST": "true"}


def sign_in_url(page: str) -> str:
    return f"/accounts/login/?next={quote(page, safe='/')}"


def test_a_signed_out_htmx_read_gets_hx_redirect_back_to_the_page_it_came_from(client):
    response = client.get(
        LIST + "?q=x", HTTP_HX_CURRENT_URL="http://testserver/dashboard/actions/?q=x", **HTMX
    )
    assert response.status_code == 200
    assert response["HX-Redirect"] == sign_in_url("/dashboard/actions/?q=x")
    assert b"<form" not in response.content  # no sign-in page to swap into the table


def test_a_signed_out_htmx_button_goes_to_sign_in_with_the_page_not_the_button_as_next(client):
    action = submit()
    response = client.post(
        reverse("dashboard:cancel", args=[action.pk]),
        HTTP_HX_CURRENT_URL="http://testserver/dashboard/actions/?status=Queued",
        **HTMX,
    )
    assert response["HX-Redirect"] == sign_in_url("/dashboard/actions/?status=Queued")
    assert Action.objects.get(pk=action.pk).status == Status.QUEUED


def test_a_current_url_of_another_site_is_not_used_as_next(client):
    response = client.get(LIST, HTTP_HX_CURRENT_URL="https://evil.example/x", **HTMX)
    assert response["HX-Redirect"] == sign_in_url(LIST)


@pytest.mark.parametrize("name", ["home", "actions", "audit", "submit", "cancel-matching"])
def test_every_page_answers_a_signed_out_htmx_request_so(client, name):
    response = client.get(reverse(f"dashboard:{name}"), **HTMX)
    assert response["HX-Redirect"].startswith("/accounts/login/?next=")


def test_a_signed_out_page_load_is_still_an_ordinary_redirect(client):
    response = client.get(LIST + "?q=x")
    assert response.status_code == 302
    assert response["Location"] == sign_in_url("/dashboard/actions/?q=x")
    assert "HX-Redirect" not in response


def test_a_signed_in_htmx_request_is_answered_as_before(viewer_client):
    response = viewer_client.get(LIST, **HTMX)
    assert response.status_code == 200
    assert "HX-Redirect" not in response
    assert b'id="results"' in response.content
