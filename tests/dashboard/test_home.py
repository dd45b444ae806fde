from __future__ import annotations

import re
from datetime import timedelta

import pytest
from dashboard_helpers import PASSWORD, finish, make_user, start, submit
from django.urls import reverse
from django.utils import timezone

from connector import queue
from connector.models import Action, WorkerProcess
from dashboard.queries import queue_overview

pytestmark = pytest.mark.django_db


def test_dashboard_requires_a_signed_in_user(client):
    response = client.get(reverse("dashboard:home"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_dashboard_refuses_a_user_without_the_view_permission(client, nobody):
    client.force_login(nobody)
    assert client.get(reverse("dashboard:home")).status_code == 403


def test_overview_shows_a_card_per_queue_with_counts(viewer_client):
    submit()
    submit()
    html = viewer_client.get(reverse("dashboard:home")).content.decode()
    assert "Queue fetch" in html
    assert "<dd>2</dd>" in html
    assert "MaximumThreads" in html
    assert "ago" in html  # the oldest queued action's age


def test_overview_shows_only_workers_alive(viewer_client):
    now = timezone.now()
    common = {"hostname": "h", "pid": 1, "started_at": now, "threads": {"fetch": 4}}
    WorkerProcess.objects.create(
        id="alive-worker", heartbeat_at=now, running={"fetch": 1}, **common
    )
    WorkerProcess.objects.create(id="dead-worker", heartbeat_at=now - timedelta(hours=1), **common)
    html = viewer_client.get(reverse("dashboard:home")).content.decode()
    assert "alive-worker" in html
    assert "dead-worker" not in html
    assert "1 of 4" in html


def test_overview_escapes_worker_names(viewer_client):
    now = timezone.now()
    WorkerProcess.objects.create(
        id="<b>w</b>", hostname="h", pid=1, started_at=now, heartbeat_at=now, threads={"fetch": 1}
    )
    html = viewer_client.get(reverse("dashboard:home")).content.decode()
    assert "<b>w</b>" not in html
    assert "&lt;b&gt;w&lt;/b&gt;" in html


def test_htmx_refresh_returns_only_the_overview_part(viewer_client):
    response = viewer_client.get(reverse("dashboard:home"), headers={"HX-Request": "true"})
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="overview"')
    assert "<html" not in html


def test_pause_buttons_are_shown_only_to_operators(client, viewer, operator):
    client.force_login(viewer)
    assert "Pause queue" not in client.get(reverse("dashboard:home")).content.decode()
    client.force_login(operator)
    assert "Pause queue" in client.get(reverse("dashboard:home")).content.decode()


def test_operator_pauses_and_resumes_a_queue(operator_client):
    url = reverse("dashboard:pause", args=["fetch"])
    response = operator_client.post(url, {"paused": "1"})
    assert response.status_code == 302
    assert queue.is_paused("fetch")
    assert "Resume queue fetch" in operator_client.get(reverse("dashboard:home")).content.decode()
    operator_client.post(url, {"paused": "0"})
    assert not queue.is_paused("fetch")


def test_pause_posted_by_a_viewer_is_refused_and_logged(viewer_client, caplog):
    response = viewer_client.post(reverse("dashboard:pause", args=["fetch"]), {"paused": "1"})
    assert response.status_code == 403
    assert not queue.is_paused("fetch")
    assert "not an operator" in caplog.text


def test_pause_of_an_unknown_queue_is_not_found(operator_client):
    response = operator_client.post(reverse("dashboard:pause", args=["nope"]), {"paused": "1"})
    assert response.status_code == 404


def test_threads_busy_counts_a_running_action(viewer_client):
    action = submit()
    start(action)
    assert viewer_client.get(reverse("dashboard:home")).status_code == 200


def test_login_page_signs_a_user_in(client):
    make_user("ops", "view_action")
    response = client.post(reverse("login"), {"username": "ops", "password": PASSWORD})
    assert response.status_code == 302
    assert client.get(reverse("dashboard:home")).status_code == 200


def test_pages_load_htmx_and_its_ws_extension_from_this_site(viewer_client):
    html = viewer_client.get(reverse("dashboard:home")).content.decode()
    scripts = re.findall(r'<script src="([^"]+)"', html)
    assert any("django_htmx/htmx-2" in src for src in scripts)
    assert any("django_htmx/ext/hx-ws-2" in src for src in scripts)
    assert all(src.startswith("/static/") for src in scripts)
    assert 'ws-connect="/ws/dashboard/?overview=1"' in html  # the overview's cards, live
    assert 'hx-headers=\'{"X-CSRFToken": "' in html


def test_admin_link_only_for_staff_and_sign_out_is_a_post(client, viewer):
    client.force_login(viewer)
    html = client.get(reverse("dashboard:home")).content.decode()
    assert reverse("admin:index") not in html
    assert f'method="post" action="{reverse("logout")}"' in html
    viewer.is_staff = True
    viewer.save()
    assert reverse("admin:index") in client.get(reverse("dashboard:home")).content.decode()


def test_refusal_page_says_why(client, nobody):
    client.force_login(nobody)
    response = client.get(reverse("dashboard:home"))
    assert response.status_code == 403
    assert "You may not view" in response.content.decode()


def test_sign_in_page_opens_no_socket(client):
    html = client.get(reverse("login")).content.decode()
    assert "Sign in" in html
    assert "ws-connect" not in html


def test_overview_counts_final_actions_of_the_last_day_and_links_to_exactly_them(viewer_client):
    recent, old, waiting = submit(), submit(), submit()
    for action in (recent, old):
        start(action)
        finish(action)
    # Queued two days ago: Finished, but outside the overview's window.
    Action.objects.filter(pk=old.pk).update(queued_at=timezone.now() - timedelta(days=2))
    Action.objects.filter(pk=waiting.pk).update(queued_at=timezone.now() - timedelta(days=3))

    card = queue_overview()[0]
    assert card.counts["Finished"] == 1  # the old one is not counted
    assert card.counts["Queued"] == 1  # waiting ones count however old

    html = viewer_client.get(reverse("dashboard:home")).content.decode()
    link = re.search(r'href="([^"]*status=Finished[^"]*)"', html).group(1).replace("&amp;", "&")
    assert "queued_from=" in link
    listed = viewer_client.get(link).content.decode()
    assert f'id="action-{recent.pk}"' in listed
    assert f'id="action-{old.pk}"' not in listed
