from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from connector import queue

pytestmark = pytest.mark.django_db


@pytest.fixture
def viewer(client):
    user = User.objects.create_user("viewer", password="a-long-enough-password")
    client.force_login(user)
    return user


def test_dashboard_requires_a_signed_in_user(client):
    response = client.get(reverse("dashboard:home"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_dashboard_lists_actions_with_their_status(client, viewer):
    action = queue.submit_action(fetch_action="Identifiers", params={}, tasks=["DOCS"])
    response = client.get(reverse("dashboard:home"))
    assert response.status_code == 200
    html = response.content.decode()
    assert f'id="action-{action.pk}"' in html
    assert "IDENTIFIERS" in html
    assert "Queued" in html


def test_dashboard_shows_task_names_escaped(client, viewer):
    queue.submit_action(fetch_action="Identifiers", params={}, tasks=["<script>x</script>"])
    html = client.get(reverse("dashboard:home")).content.decode()
    assert "<SCRIPT>X</SCRIPT>" not in html
    assert "&lt;SCRIPT&gt;X&lt;/SCRIPT&gt;" in html


def test_htmx_refresh_returns_only_the_live_part(client, viewer):
    response = client.get(reverse("dashboard:home"), headers={"HX-Request": "true"})
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="live"')
    assert "<html" not in html


def test_login_page_signs_a_user_in(client):
    User.objects.create_user("ops", password="a-long-enough-password")
    response = client.post(
        reverse("login"), {"username": "ops", "password": "a-long-enough-password"}
    )
    assert response.status_code == 302
    assert client.get(reverse("dashboard:home")).status_code == 200
