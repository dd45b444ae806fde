"""The list as the peers have it: counts by status and queue, sorts, Older and Newer pages."""

from __future__ import annotations

from datetime import timedelta

import pytest
from dashboard_helpers import finish, start, submit
from django.urls import reverse

from connector import queue
from connector.models import Action, ActionTask
from dashboard import queries

pytestmark = pytest.mark.django_db

URL = reverse("dashboard:actions")


def pks(response) -> list[int]:
    assert response.status_code == 200
    return [a.pk for a in response.context["page"].actions]


def test_counts_next_to_each_status_and_queue(viewer_client):
    first, second, third = submit(), submit(), submit()
    start(first)
    queue.cancel_action(pk=third.pk)
    html = viewer_client.get(URL).content.decode()
    assert 'id="status-count-queued">1<' in html
    assert 'id="status-count-processing">1<' in html
    assert 'id="status-count-cancelled">1<' in html
    assert 'id="status-count-finished">0<' in html
    assert 'id="queue-count-fetch">3<' in html
    assert f'href="{URL}?status=Queued"' in html
    assert second.pk


def test_final_status_counts_stop_at_their_limit_and_say_so(viewer_client, monkeypatch):
    monkeypatch.setattr("dashboard.queries.STATUS_COUNT_LIMIT", 2)
    for action in [submit() for _ in range(3)]:
        queue.cancel_action(pk=action.pk)
    for _ in range(3):
        submit()
    html = viewer_client.get(URL).content.decode()
    # Final statuses: bounded, marked "+"; Queued: exact however many.
    assert 'id="status-count-cancelled" title="Counting stops at 2' in html
    assert ">2+</span>" in html
    assert 'id="status-count-queued">3<' in html


def test_priority_column(viewer_client):
    submit(priority=7)
    html = viewer_client.get(URL).content.decode()
    assert '<th scope="col">Priority</th>' in html
    assert '<td class="priority-cell">7</td>' in html


def test_sort_by_priority_both_ways(viewer_client):
    low, high, middle = submit(priority=1), submit(priority=9), submit(priority=5)
    assert pks(viewer_client.get(URL, {"sort": "-priority"})) == [high.pk, middle.pk, low.pk]
    assert pks(viewer_client.get(URL, {"sort": "priority"})) == [low.pk, middle.pk, high.pk]


def test_sort_by_queued_oldest_first(viewer_client):
    first, second = submit(), submit()
    assert pks(viewer_client.get(URL)) == [second.pk, first.pk]
    assert pks(viewer_client.get(URL, {"sort": "queued"})) == [first.pk, second.pk]


def test_sort_by_started_lists_the_started_actions(viewer_client):
    first, second, waiting = submit(), submit(), submit()
    start(first)
    start(second)
    Action.objects.filter(pk=first.pk).update(
        started_at=Action.objects.get(pk=second.pk).started_at + timedelta(seconds=5)
    )
    response = viewer_client.get(URL, {"sort": "-started"})
    assert pks(response) == [first.pk, second.pk]
    assert waiting.pk not in pks(response)
    assert "only actions that started" in response.content.decode()
    assert pks(viewer_client.get(URL, {"sort": "started"})) == [second.pk, first.pk]


def test_sort_links_flip_the_direction(viewer_client):
    html = viewer_client.get(URL, {"sort": "-priority", "status": "Queued"}).content.decode()
    assert 'href="/dashboard/actions/?sort=priority&amp;status=Queued"' in html
    assert 'id="sort-priority" aria-current="true" data-direction="descending"' in html
    assert 'href="/dashboard/actions/?sort=-queued&amp;status=Queued"' in html


def walk(client, params: dict[str, str]) -> tuple[list[list[int]], list[list[int]]]:
    """Every page by "Older" links to the end, then back by "Newer" links."""
    response = client.get(URL, params)
    forward = [pks(response)]
    while response.context["next_query"]:
        response = client.get(f"{URL}?{response.context['next_query']}")
        forward.append(pks(response))
    backward = [pks(response)]
    while response.context["newer_page_query"]:
        response = client.get(f"{URL}?{response.context['newer_page_query']}")
        backward.append(pks(response))
    return forward, backward


@pytest.mark.parametrize(
    "sort", ["-queued", "queued", "-priority", "priority", "-started", "-duration", "duration"]
)
def test_older_and_newer_pages_walk_every_sort_both_ways(viewer_client, monkeypatch, sort):
    monkeypatch.setattr("dashboard.queries.PAGE_SIZE", 3)
    actions = [submit(priority=n % 3) for n in range(8)]
    # Ties on every key but the id.
    Action.objects.filter(pk__in=[a.pk for a in actions[2:6]]).update(
        queued_at=actions[2].queued_at
    )
    if "started" in sort or "duration" in sort:
        Action.objects.update(started_at=actions[0].queued_at)
        for n, action in enumerate(actions[:-1]):
            # Run times 0, 1, 2 s, ... with ties; the last one never ended.
            Action.objects.filter(pk=action.pk).update(
                finished_at=actions[0].queued_at + timedelta(seconds=n % 3)
            )
    expected = list(
        queries.sortable(Action.objects.all())
        .filter(
            **(
                {"started_at__isnull": False}
                if "started" in sort
                else {"duration__isnull": False}
                if "duration" in sort
                else {}
            )
        )
        .order_by(*queries.read_sort(sort)[0].order_by(descending=sort.startswith("-")))
        .values_list("pk", flat=True)
    )
    forward, backward = walk(viewer_client, {"sort": sort})
    assert [pk for page in forward for pk in page] == expected
    assert len(forward) == 3
    assert backward == forward[::-1]


def test_first_page_has_no_newer_link_and_a_later_one_has(viewer_client, monkeypatch):
    monkeypatch.setattr("dashboard.queries.PAGE_SIZE", 1)
    submit()
    submit()
    first = viewer_client.get(URL)
    assert first.context["newer_page_query"] is None
    second = viewer_client.get(f"{URL}?{first.context['next_query']}")
    html = second.content.decode()
    assert 'rel="prev" id="newer-page">Newer</a>' in html


def test_a_cursor_of_another_sort_is_ignored(viewer_client):
    action = submit()
    assert pks(viewer_client.get(URL, {"sort": "-priority", "after": "garbage"})) == [action.pk]
    assert pks(viewer_client.get(URL, {"sort": "-priority", "before": "1_2"})) == [action.pk]


def test_task_rows_are_written_with_the_action():
    action = submit(tasks=["docs", "mail", "DOCS"])
    assert sorted(ActionTask.objects.filter(action=action).values_list("task", flat=True)) == [
        "DOCS",
        "MAIL",
    ]


def test_retried_actions_get_task_rows_too():
    action = submit(tasks=["DOCS"])
    copy = queue.duplicate_action(pk=action.pk, token_host="h", token_port=1)
    assert list(ActionTask.objects.filter(action=copy).values_list("task", flat=True)) == ["DOCS"]


@pytest.mark.parametrize("few", [0, 100])
def test_task_filter_is_the_same_whether_it_matches_few_or_many(viewer_client, monkeypatch, few):
    # FEW_MATCHES 0: every task "matches many" (the per-row check); 100: "few" (id in rows).
    monkeypatch.setattr("dashboard.queries.FEW_MATCHES", few)
    docs = submit(tasks=["DOCS"])
    both = submit(tasks=["MAIL", "DOCS"])
    submit(tasks=["DOCS2"])
    assert set(pks(viewer_client.get(URL, {"task": "docs"}))) == {docs.pk, both.pk}
    assert pks(viewer_client.get(URL, {"task": "nosuch"})) == []
    assert set(pks(viewer_client.get(URL, {"queue": "fetch"}))) == {
        a.pk for a in Action.objects.all()
    }


def test_search_finds_a_whole_action_id_beyond_the_window(viewer_client, monkeypatch):
    monkeypatch.setattr("dashboard.queries.SEARCH_WINDOW", 2)
    old = submit(action_id="nightly-7", params={"Path": "/srv/old"})
    submit()
    submit()
    assert pks(viewer_client.get(URL, {"q": "nightly-7"})) == [old.pk]
    assert pks(viewer_client.get(URL, {"q": old.token})) == [old.pk]
    # A part of it, or of the parameters, only among the newest two.
    assert pks(viewer_client.get(URL, {"q": "nightly"})) == []
    assert pks(viewer_client.get(URL, {"q": "/srv/old"})) == []
    newest = submit(action_id="nightly-8", params={"Path": "/srv/new"})
    assert pks(viewer_client.get(URL, {"q": "nightly"})) == [newest.pk]
    assert pks(viewer_client.get(URL, {"q": "/srv/new"})) == [newest.pk]


def test_finished_actions_keep_their_place_in_the_started_sort(viewer_client):
    action = submit()
    start(action)
    finish(action)
    assert pks(viewer_client.get(URL, {"sort": "-started"})) == [action.pk]


def test_sort_by_duration_lists_the_ended_actions_longest_first(viewer_client):
    short, long, waiting = submit(), submit(), submit()
    for action, seconds in ((short, 1), (long, 90)):
        start(action)
        finish(action)
        Action.objects.filter(pk=action.pk).update(
            finished_at=Action.objects.get(pk=action.pk).started_at + timedelta(seconds=seconds)
        )
    assert pks(viewer_client.get(URL, {"sort": "-duration"})) == [long.pk, short.pk]
    assert pks(viewer_client.get(URL, {"sort": "duration"})) == [short.pk, long.pk]
    assert waiting.pk
