from __future__ import annotations

import re
from datetime import timedelta

import pytest
from dashboard_helpers import finish, start, submit
from django.urls import reverse

from connector import queue
from connector.models import Action, FetchTask

pytestmark = pytest.mark.django_db

URL = reverse("dashboard:actions")


def shown(client, **params) -> set[int]:
    response = client.get(URL, params)
    assert response.status_code == 200
    return {a.pk for a in response.context["page"].actions}


def test_list_requires_sign_in_and_the_view_permission(client, nobody):
    assert client.get(URL).status_code == 302
    client.force_login(nobody)
    assert client.get(URL).status_code == 403


def test_list_shows_rows_newest_first_with_their_status(viewer_client):
    older = submit(tasks=["DOCS"])
    newer = submit(fetch_action="Sleep", tasks=["MAIL", "DOCS"])
    response = viewer_client.get(URL)
    html = response.content.decode()
    assert [a.pk for a in response.context["page"].actions] == [newer.pk, older.pk]
    assert f'id="action-{older.pk}"' in html
    assert "NOOP" in html and "SLEEP" in html
    assert "MAIL, DOCS" in html
    assert 'aria-live="polite"' in html


def test_filter_by_status(viewer_client):
    queued = submit()
    running = submit()
    start(queued)  # the oldest goes first
    assert shown(viewer_client, status="Processing") == {queued.pk}
    assert shown(viewer_client, status="Queued") == {running.pk}


def test_filter_by_fetch_action(viewer_client):
    noop = submit()
    submit(fetch_action="Sleep")
    assert shown(viewer_client, fetch_action="NOOP") == {noop.pk}


def test_filter_by_task_matches_whole_names(viewer_client):
    FetchTask.objects.create(name="DOCS", directory_paths=[])
    docs = submit(tasks=["DOCS"])
    both = submit(tasks=["MAIL", "DOCS"])
    submit(tasks=["DOCS2"])
    assert shown(viewer_client, task="docs") == {docs.pk, both.pk}
    assert 'option value="DOCS"' in viewer_client.get(URL).content.decode()


def test_filter_by_queue(viewer_client):
    action = submit()
    assert shown(viewer_client, queue="fetch") == {action.pk}
    # An unknown queue is a form error: no rows, and a message (see test_invalid_filters.py).
    response = viewer_client.get(URL, {"queue": "nope"})
    assert response.context["form"].errors
    assert response.context["page"].actions == []


def test_filter_by_queued_time_range(viewer_client):
    old = submit()
    new = submit()
    Action.objects.filter(pk=old.pk).update(queued_at=old.queued_at - timedelta(days=2))
    cut = (new.queued_at - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    assert shown(viewer_client, queued_from=cut) == {new.pk}
    assert shown(viewer_client, queued_to=cut) == {old.pk}


def test_search_by_token_action_id_and_parameter_text(viewer_client):
    by_token = submit()
    by_id = submit(action_id="nightly-run-42")
    by_param = submit(params={"DirectoryPath": "/srv/reports/2026"})
    assert shown(viewer_client, q=by_token.token) == {by_token.pk}
    assert shown(viewer_client, q="NIGHTLY-run") == {by_id.pk}
    assert shown(viewer_client, q="reports/2026") == {by_param.pk}
    assert shown(viewer_client, q="nothing-like-this") == set()


def test_search_finds_parameter_text_with_quotes_and_accents(viewer_client):
    action = submit(params={"Text": 'Café "quoted"'})
    assert shown(viewer_client, q="café") == {action.pk}
    assert shown(viewer_client, q='"quoted"') == {action.pk}


def test_every_filter_state_is_in_the_links(viewer_client):
    for _ in range(3):
        submit()
    response = viewer_client.get(URL, {"status": "Queued", "q": "x y"})
    html = response.content.decode()
    assert 'hx-push-url="true"' in html
    assert 'method="get"' in html


def test_keyset_pages_stay_stable_while_new_actions_arrive(viewer_client, monkeypatch):
    monkeypatch.setattr("dashboard.queries.PAGE_SIZE", 3)
    actions = [submit() for _ in range(7)]
    # Same queue time for some, so the id breaks the tie.
    Action.objects.filter(pk__in=[actions[2].pk, actions[3].pk, actions[4].pk]).update(
        queued_at=actions[2].queued_at
    )
    first = viewer_client.get(URL)
    page1 = [a.pk for a in first.context["page"].actions]
    next_query = first.context["next_query"]
    assert next_query and "after=" in next_query
    for _ in range(5):
        submit()  # arrive between the pages
    second = viewer_client.get(f"{URL}?{next_query}")
    page2 = [a.pk for a in second.context["page"].actions]
    third = viewer_client.get(f"{URL}?{second.context['next_query']}")
    page3 = [a.pk for a in third.context["page"].actions]
    assert page1 + page2 + page3 == [a.pk for a in reversed(actions)]
    assert third.context["next_query"] is None
    html = second.content.decode()
    assert 'rel="next"' in html and "Newest" in html


def test_a_forged_cursor_is_ignored(viewer_client):
    action = submit()
    assert shown(viewer_client, after="garbage") == {action.pk}


def test_htmx_request_gets_only_the_results(viewer_client):
    submit()
    response = viewer_client.get(URL, {"status": "Queued"}, headers={"HX-Request": "true"})
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="results"')
    assert "<html" not in html
    assert "status=Queued" in html  # it polls what it shows


def test_every_hx_get_link_has_an_href(viewer_client, monkeypatch):
    monkeypatch.setattr("dashboard.queries.PAGE_SIZE", 1)
    submit()
    submit()
    first = viewer_client.get(URL)
    html = viewer_client.get(f"{URL}?{first.context['next_query']}").content.decode()
    links = re.findall(r"<a [^>]*hx-get[^>]*>", html)
    # Four sorts, "Newest" and "Newer"; there is no older page.
    assert len(links) == 6
    assert not any('rel="next"' in tag for tag in links)
    for tag in links:
        assert "href=" in tag


def test_markup_in_task_names_and_action_ids_is_escaped(viewer_client):
    submit(tasks=["<script>x</script>"], action_id="<img src=x onerror=alert(1)>")
    html = viewer_client.get(URL).content.decode()
    assert "<SCRIPT>X</SCRIPT>" not in html
    assert "&lt;SCRIPT&gt;X&lt;/SCRIPT&gt;" in html
    assert "<img src=x" not in html


def test_counts_summary_is_shown(viewer_client):
    action = submit()
    start(action)
    finish(action, counts={"DOCS": {"seen": 3, "added": 1}})
    assert "DOCS: seen 3, added 1" in viewer_client.get(URL).content.decode()


def test_first_page_offers_actions_that_arrived_after_it_was_read(viewer_client):
    submit()
    first = viewer_client.get(URL, {"status": "Queued"})
    newer_query = first.context["newer_query"]
    assert "than=" in newer_query and "status=Queued" in newer_query
    assert 'id="new-actions"' in first.content.decode()
    newer_url = f"{reverse('dashboard:newer')}?{newer_query}"
    assert viewer_client.get(newer_url).content.decode().strip() == ""
    submit()
    submit()
    cancelled = submit()
    queue.cancel_action(pk=cancelled.pk)  # does not match the filter
    html = viewer_client.get(newer_url).content.decode()
    assert "2 new - show" in html
    assert "than=" not in html and "status=Queued" in html


def test_later_pages_do_not_offer_new_actions(viewer_client, monkeypatch):
    monkeypatch.setattr("dashboard.queries.PAGE_SIZE", 1)
    submit()
    submit()
    first = viewer_client.get(URL)
    second = viewer_client.get(f"{URL}?{first.context['next_query']}")
    assert second.context["newer_query"] is None
    assert 'id="new-actions"' not in second.content.decode()


def test_newer_count_requires_the_view_permission(client, nobody):
    client.force_login(nobody)
    assert client.get(reverse("dashboard:newer")).status_code == 403
