from __future__ import annotations

import pytest
from dashboard_helpers import finish, start, submit
from django.urls import reverse
from django.utils import timezone

from connector import queue
from connector.models import Action

pytestmark = pytest.mark.django_db


def detail_url(action: Action) -> str:
    return reverse("dashboard:action", args=[action.pk])


def test_detail_requires_sign_in_and_the_view_permission(client, nobody):
    action = submit()
    assert client.get(detail_url(action)).status_code == 302
    client.force_login(nobody)
    assert client.get(detail_url(action)).status_code == 403


def test_detail_of_an_unknown_action_is_not_found(viewer_client):
    assert viewer_client.get(reverse("dashboard:action", args=[999999])).status_code == 404


def test_detail_shows_the_action(viewer_client):
    action = submit(
        params={"DirectoryPath": "/srv/docs"},
        tasks=["DOCS"],
        action_id="run-7",
        submitted_by="alice",
        submitted_from="10.0.0.9",
    )
    start(action)
    queue.add_log_lines(pk=action.pk, lines=[(timezone.now(), "INFO", "walking /srv/docs")])
    finish(
        action,
        counts={"DOCS": {"seen": 2, "added": 1}},
        result={
            "success": ["/srv/docs/a.txt"],
            "failed": [{"identifier": "/srv/docs/b.txt", "reason": "unreadable"}],
            "identifiers": [{"identifier": "id-1", "type": "document", "path": "/srv/docs/a.txt"}],
        },
    )
    html = viewer_client.get(detail_url(action)).content.decode()
    for text in (
        action.token,
        "data-copy",
        "DirectoryPath",
        "/srv/docs",
        "run-7",
        "Finished",
        "seen 2",
        "/srv/docs/a.txt",
        "unreadable",
        "id-1",
        "walking /srv/docs",
        "alice",
        "10.0.0.9",
        f'id="action-{action.pk}"',
    ):
        assert text in html, text


def test_detail_shows_the_error_and_who_cancelled(viewer_client):
    failed = submit()
    start(failed)
    finish(failed, error="the repository went away", progress=10)
    assert "the repository went away" in viewer_client.get(detail_url(failed)).content.decode()
    cancelled = submit()
    queue.cancel_action(pk=cancelled.pk, cancelled_by="bob", cancelled_from="10.1.1.1")
    html = viewer_client.get(detail_url(cancelled)).content.decode()
    assert "Cancelled by" in html and "bob" in html and "10.1.1.1" in html


def test_detail_shows_only_the_log_tail_and_the_first_identifiers(viewer_client):
    action = submit()
    now = timezone.now()
    queue.add_log_lines(pk=action.pk, lines=[(now, "INFO", f"line {n:03}") for n in range(150)])
    start(action)
    finish(action, result={"identifiers": [f"id-{n:04}" for n in range(250)]})
    html = viewer_client.get(detail_url(action)).content.decode()
    assert "line 049" not in html and "line 050" in html and "line 149" in html
    assert "id-0199" in html and "id-0200" not in html
    assert "first 200 of 250" in html


def test_markup_in_parameters_log_lines_and_tasks_is_escaped(viewer_client):
    action = submit(params={"Text": "<script>alert(1)</script>"}, tasks=["<b>T</b>"])
    queue.add_log_lines(pk=action.pk, lines=[(timezone.now(), "INFO", "<i>log</i>")])
    html = viewer_client.get(detail_url(action)).content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<i>log</i>" not in html and "&lt;i&gt;log&lt;/i&gt;" in html
    assert "<B>T</B>" not in html


def test_htmx_request_gets_only_the_detail_block(viewer_client):
    action = submit()
    html = viewer_client.get(detail_url(action), headers={"HX-Request": "true"}).content.decode()
    assert html.lstrip().startswith('<div id="detail"')
    assert f"dashboard:action-{action.pk} from:body" in html
