"""The audit from the dashboard: its buttons recorded, forged POSTs recorded, the audit page,
and the History and Audit sections of the action page."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from dashboard_helpers import finish, start, submit
from django.urls import reverse
from django.utils import timezone

from connector import audit, queue
from connector.models import Action, AuditEntry, AuditOutcome, AuditVerb, AuditVia, Status
from dashboard import queries

pytestmark = pytest.mark.django_db

CLIENT = "192.0.2.7"
AUDIT = reverse("dashboard:audit")


def post(client: Any, name: str, *args: Any, **data: str) -> Any:
    return client.post(reverse(f"dashboard:{name}", args=args), data, REMOTE_ADDR=CLIENT)


def only_entry(**filters: Any) -> AuditEntry:
    (entry,) = AuditEntry.objects.filter(**filters)
    return entry


def assert_by_operator(entry: AuditEntry) -> None:
    assert (entry.user, entry.client, entry.via) == ("operator", CLIENT, AuditVia.DASHBOARD)


# --- Every verb from the dashboard ------------------------------------------------------


def test_a_submit_from_the_dashboard_is_recorded(operator_client, docs_task):
    response = operator_client.post(
        reverse("dashboard:submit"),
        {"FetchAction": "SYNCHRONIZE", "TaskSections": "DOCS"},
        REMOTE_ADDR=CLIENT,
    )
    assert response.status_code == 302
    entry = only_entry(verb=AuditVerb.SUBMIT)
    assert_by_operator(entry)
    assert (entry.outcome, entry.action_id) == (AuditOutcome.DONE, Action.objects.get().pk)


def test_a_cancel_from_the_dashboard_is_recorded(operator_client):
    action = submit()
    post(operator_client, "cancel", action.pk)
    entry = only_entry(verb=AuditVerb.CANCEL)
    assert_by_operator(entry)
    assert (entry.outcome, entry.action_id, entry.detail) == (AuditOutcome.DONE, action.pk, "")


def test_a_refused_cancel_from_the_dashboard_is_recorded(operator_client):
    action = start(submit())
    post(operator_client, "cancel", action.pk)
    entry = only_entry(verb=AuditVerb.CANCEL)
    assert_by_operator(entry)
    assert (entry.outcome, entry.reason) == (
        AuditOutcome.REFUSED,
        "The action is Processing, not Queued",
    )


def test_a_stop_from_the_dashboard_is_recorded(operator_client):
    action = start(submit())
    post(operator_client, "stop", action.pk)
    entry = only_entry(verb=AuditVerb.STOP)
    assert_by_operator(entry)
    assert (entry.outcome, entry.action_id) == (AuditOutcome.DONE, action.pk)


def test_a_refused_stop_from_the_dashboard_is_recorded(operator_client):
    action = submit()
    post(operator_client, "stop", action.pk)
    assert only_entry(verb=AuditVerb.STOP).outcome == AuditOutcome.REFUSED


def test_a_retry_from_the_dashboard_is_recorded_on_the_copy(operator_client):
    original = submit()
    post(operator_client, "retry", original.pk)
    copy = Action.objects.exclude(pk=original.pk).get()
    entry = only_entry(verb=AuditVerb.RETRY)
    assert_by_operator(entry)
    assert entry.action_id == copy.pk
    assert entry.detail.startswith(f"copy of action {original.pk} ")


def test_a_priority_change_from_the_dashboard_is_recorded(operator_client):
    action = submit(priority=1)
    post(operator_client, "priority", action.pk, priority="7")
    entry = only_entry(verb=AuditVerb.PRIORITY)
    assert_by_operator(entry)
    assert (entry.outcome, entry.detail) == (AuditOutcome.DONE, "priority 1 -> 7")


def test_pause_and_resume_from_the_dashboard_are_recorded(operator_client):
    post(operator_client, "pause", "fetch", paused="1")
    post(operator_client, "pause", "fetch", paused="0")
    pause, resume = AuditEntry.objects.order_by("id")
    assert (pause.verb, resume.verb) == (AuditVerb.PAUSE, AuditVerb.RESUME)
    for entry in (pause, resume):
        assert_by_operator(entry)
        assert entry.queue == "fetch"


def test_a_bulk_cancel_records_one_entry_per_action(operator_client):
    running = start(submit())
    first, second = submit(), submit()
    response = operator_client.post(
        reverse("dashboard:cancel-selected"),
        {"pk": [first.pk, second.pk, running.pk]},
        REMOTE_ADDR=CLIENT,
    )
    assert response.status_code == 302
    entries = AuditEntry.objects.filter(verb=AuditVerb.CANCEL)
    assert {(e.action_id, e.outcome) for e in entries} == {
        (first.pk, AuditOutcome.DONE),
        (second.pk, AuditOutcome.DONE),
        (running.pk, AuditOutcome.REFUSED),
    }
    for entry in entries:
        assert_by_operator(entry)
        assert entry.detail == "bulk cancel"


# --- Forged POSTs -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "verb", "data"),
    [
        ("cancel", AuditVerb.CANCEL, {}),
        ("stop", AuditVerb.STOP, {}),
        ("retry", AuditVerb.RETRY, {}),
        ("priority", AuditVerb.PRIORITY, {"priority": "5"}),
    ],
)
def test_a_forged_post_on_an_action_is_refused_and_recorded(viewer_client, name, verb, data):
    action = submit()
    before = list(Action.objects.values())
    response = post(viewer_client, name, action.pk, **data)
    assert response.status_code == 403
    assert list(Action.objects.values()) == before
    entry = only_entry(outcome=AuditOutcome.REFUSED)
    assert (entry.verb, entry.reason, entry.action_id) == (verb, "not an operator", action.pk)
    assert (entry.user, entry.client, entry.via) == ("viewer", CLIENT, AuditVia.DASHBOARD)


def test_a_forged_pause_and_resume_are_refused_and_recorded(viewer_client):
    assert post(viewer_client, "pause", "fetch", paused="1").status_code == 403
    assert post(viewer_client, "pause", "fetch", paused="0").status_code == 403
    assert not queue.is_paused("fetch")
    entries = AuditEntry.objects.order_by("id")
    assert [(e.verb, e.outcome, e.queue) for e in entries] == [
        (AuditVerb.PAUSE, AuditOutcome.REFUSED, "fetch"),
        (AuditVerb.RESUME, AuditOutcome.REFUSED, "fetch"),
    ]


def test_forged_submits_and_bulk_cancels_are_refused_and_recorded(viewer_client):
    action = submit()
    AuditEntry.objects.all().delete()
    assert post(viewer_client, "submit", FetchAction="NOOP").status_code == 403
    assert post(viewer_client, "cancel-selected", pk=str(action.pk)).status_code == 403
    assert post(viewer_client, "cancel-matching", upto="1_1").status_code == 403
    assert [(e.verb, e.outcome) for e in AuditEntry.objects.order_by("id")] == [
        (AuditVerb.SUBMIT, AuditOutcome.REFUSED),
        (AuditVerb.CANCEL, AuditOutcome.REFUSED),
        (AuditVerb.CANCEL, AuditOutcome.REFUSED),
    ]
    assert Action.objects.get().status == Status.QUEUED


def test_a_viewer_reading_a_form_is_not_recorded(viewer_client):
    assert viewer_client.get(reverse("dashboard:submit")).status_code == 403
    assert not AuditEntry.objects.exists()


def test_a_forged_post_for_an_unknown_action_is_recorded_without_a_link(viewer_client):
    assert post(viewer_client, "cancel", 424242).status_code == 403
    entry = only_entry()
    assert (entry.action_id, entry.detail) == (None, "no action 424242")


# --- The audit page ------------------------------------------------------------------------


def test_the_audit_page_needs_sign_in_and_the_view_permission(client, nobody):
    response = client.get(AUDIT)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    client.force_login(nobody)
    assert client.get(AUDIT).status_code == 403


def test_a_viewer_reads_the_audit_newest_first_with_links_to_the_actions(viewer_client):
    older = submit(submitted_by="alice", submitted_from="10.0.0.1")
    newer = submit(submitted_by="bob", submitted_from="10.0.0.2")
    response = viewer_client.get(AUDIT)
    assert response.status_code == 200
    html = response.content.decode()
    assert html.index(newer.token) < html.index(older.token)
    for action in (older, newer):
        assert f'href="{reverse("dashboard:action", args=[action.pk])}"' in html
    assert "10.0.0.1" in html and "alice" in html
    assert f'href="{AUDIT}" aria-current="page"' in html


def test_the_nav_links_to_the_audit(viewer_client):
    html = viewer_client.get(reverse("dashboard:actions")).content.decode()
    assert f'<a href="{AUDIT}"' in html


def entry(**fields: Any) -> None:
    values: dict[str, Any] = {
        "verb": AuditVerb.PAUSE,
        "who": audit.Who(via=AuditVia.ENDPOINT),
        "queue": "fetch",
    }
    values.update(fields)
    audit.record_done(**values)


def shown_details(browser: Any, **params: str) -> list[str]:
    response = browser.get(AUDIT, params)
    assert response.status_code == 200
    return [e.detail for e in response.context["page"].entries]


def test_the_audit_page_filters_by_verb_user_via_client_and_outcome(viewer_client):
    entry(detail="a", verb=AuditVerb.PAUSE, who=audit.Who(AuditVia.DASHBOARD, "ann", "10.0.0.1"))
    entry(detail="b", verb=AuditVerb.RESUME, who=audit.Who(AuditVia.DASHBOARD, "ben", "10.0.0.2"))
    entry(detail="c", verb=AuditVerb.RESUME, who=audit.Who(AuditVia.ENDPOINT, "", "10.0.0.1"))
    audit.record_refused(
        verb=AuditVerb.PAUSE, who=audit.Who(AuditVia.DASHBOARD, "eve", ""), reason="x", detail="d"
    )
    assert shown_details(viewer_client) == ["d", "c", "b", "a"]
    assert shown_details(viewer_client, verb="resume") == ["c", "b"]
    assert shown_details(viewer_client, user="ann") == ["a"]
    assert shown_details(viewer_client, via="endpoint") == ["c"]
    assert shown_details(viewer_client, client="10.0.0.1") == ["c", "a"]
    assert shown_details(viewer_client, outcome="refused") == ["d"]
    assert shown_details(viewer_client, verb="resume", client="10.0.0.1") == ["c"]


def test_the_audit_page_filters_by_token_in_any_spelling(viewer_client):
    wanted = submit()
    submit()
    details = viewer_client.get(AUDIT, {"token": f"  {wanted.token} "}).context["page"].entries
    assert [e.action_id for e in details] == [wanted.pk]
    assert viewer_client.get(AUDIT, {"token": "not-a-token"}).context["page"].entries == []


def test_bad_filter_values_are_reported_not_a_server_error(viewer_client):
    entry(detail="a")
    for params in (
        {"verb": "explode"},
        {"via": "<script>"},
        {"after": "abc"},
        {"after": "99999999999999999999999"},
        {"after": "-3"},
        {"user": "x" * 1000},
    ):
        response = viewer_client.get(AUDIT, params)
        assert response.status_code == 200, params


def test_the_audit_page_pages_by_keyset_and_keeps_the_filters(viewer_client, monkeypatch):
    monkeypatch.setattr(queries, "AUDIT_PAGE_SIZE", 2)
    for name in "abcde":
        entry(detail=name, verb=AuditVerb.RESUME)
    entry(detail="other", verb=AuditVerb.PAUSE)
    first = viewer_client.get(AUDIT, {"verb": "resume"})
    assert [e.detail for e in first.context["page"].entries] == ["e", "d"]
    next_query = first.context["next_query"]
    assert "verb=resume" in next_query and "after=" in next_query
    assert f'href="{AUDIT}?{next_query.replace("&", "&amp;")}"' in first.content.decode()
    # An entry written meanwhile does not shift the pages.
    entry(detail="f", verb=AuditVerb.RESUME)
    second = viewer_client.get(f"{AUDIT}?{next_query}")
    assert [e.detail for e in second.context["page"].entries] == ["c", "b"]
    third = viewer_client.get(f"{AUDIT}?{second.context['next_query']}")
    assert [e.detail for e in third.context["page"].entries] == ["a"]
    assert third.context["next_query"] is None
    assert "verb=resume" in third.context["first_query"]


def test_hostile_values_are_escaped_on_the_audit_page(viewer_client):
    hostile = '<script>alert("x")</script>'
    audit.record_refused(
        verb=AuditVerb.PAUSE,
        who=audit.Who(AuditVia.DASHBOARD, hostile, hostile),
        reason=hostile,
        detail=hostile,
        queue="fetch",
    )
    html = viewer_client.get(AUDIT, {"user": hostile}).content.decode()
    assert hostile not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html


def test_the_audit_page_works_with_htmx_returning_only_the_results(viewer_client):
    entry(detail="a")
    response = viewer_client.get(AUDIT, headers={"HX-Request": "true"})
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="audit-results">')
    assert "<html" not in html


def test_an_entry_of_a_deleted_action_shows_its_token(viewer_client):
    action = submit()
    token = action.token
    action.delete()
    html = viewer_client.get(AUDIT).content.decode()
    assert token in html and "(deleted)" in html


# --- The action page: History and Audit -----------------------------------------------


def detail_html(client: Any, action: Action) -> str:
    response = client.get(reverse("dashboard:action", args=[action.pk]))
    assert response.status_code == 200
    return response.content.decode()


def history(client: Any, action: Action) -> list[tuple[str, str]]:
    response = client.get(reverse("dashboard:action", args=[action.pk]))
    return [(step.status, step.note) for step in response.context["detail"].history]


def test_the_history_of_a_normal_run(viewer_client):
    action = start(submit())
    finish(action)
    assert history(viewer_client, action) == [
        ("Queued", ""),
        ("Processing", "worker w"),
        ("Finished", ""),
    ]
    steps = (
        viewer_client.get(reverse("dashboard:action", args=[action.pk])).context["detail"].history
    )
    action.refresh_from_db()
    assert steps[0].duration == action.started_at - action.queued_at
    assert steps[1].duration == action.finished_at - action.started_at
    assert steps[2].duration is None and steps[2].final
    html = detail_html(viewer_client, action)
    assert 'id="history-title"' in html and "final" in html


def test_the_history_after_a_cancel_says_who(viewer_client, operator_client):
    action = submit()
    post(operator_client, "cancel", action.pk)
    assert history(viewer_client, action) == [
        ("Queued", ""),
        ("Cancelled", f"by operator from {CLIENT}"),
    ]


def test_the_history_after_a_stop(viewer_client, operator_client):
    action = start(submit())
    post(operator_client, "stop", action.pk)
    finish(action, stopped=True, progress=40)
    assert [status for status, _ in history(viewer_client, action)] == [
        "Queued",
        "Processing",
        "Stop requested",
        "Stopped",
    ]


def test_the_history_after_a_recovery_requeue(viewer_client):
    action = start(submit(), worker="lost")
    Action.objects.filter(pk=action.pk).update(
        lease_expires_at=timezone.now() - timedelta(seconds=5)
    )
    queue.recover_expired()
    action = start(action, worker="w")
    finish(action)
    assert history(viewer_client, action) == [
        ("Queued", ""),
        ("Processing", "worker lost"),
        ("Queued", "Worker lost stopped responding; action queued again"),
        ("Processing", "worker w"),
        ("Finished", ""),
    ]
    assert "Worker lost stopped responding" in detail_html(viewer_client, action)


def test_a_running_action_s_last_step_lasts_so_far(viewer_client):
    action = start(submit())
    steps = (
        viewer_client.get(reverse("dashboard:action", args=[action.pk])).context["detail"].history
    )
    assert steps[-1].status == "Processing" and not steps[-1].final
    assert steps[-1].duration is not None and steps[-1].duration >= timedelta(0)
    assert "so far" in detail_html(viewer_client, action)


def test_the_action_page_shows_its_audit_entries(viewer_client, operator_client):
    action = submit(submitted_by="alice", submitted_from="10.9.8.7", via=AuditVia.DASHBOARD)
    post(operator_client, "priority", action.pk, priority="3")
    html = detail_html(viewer_client, action)
    section = html[html.index('id="audit-title"') :]
    assert "alice" in section and "10.9.8.7" in section
    assert "priority 0 -&gt; 3" in section and CLIENT in section
    assert section.index("priority 0") < section.index("10.9.8.7")  # newest first
    assert f"{AUDIT}?token=" in section


def test_a_forged_post_by_a_user_without_any_right_is_recorded(client, nobody):
    client.force_login(nobody)
    response = client.post(reverse("dashboard:submit"), {"FetchAction": "NOOP"}, REMOTE_ADDR=CLIENT)
    assert response.status_code == 403
    entry = only_entry()
    assert (entry.verb, entry.outcome, entry.reason, entry.user) == (
        AuditVerb.SUBMIT,
        AuditOutcome.REFUSED,
        "no view permission",
        "nobody",
    )
    assert not Action.objects.exists()


def test_an_anonymous_post_goes_to_sign_in_and_is_not_an_audit_entry(client):
    action = submit()
    AuditEntry.objects.all().delete()
    response = post(client, "cancel", action.pk)
    assert response.status_code == 302
    assert not AuditEntry.objects.exists()
    assert Action.objects.get().status == Status.QUEUED
