"""The audit log and the status history, as the queue writes them for every caller."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import override_settings
from django.utils import timezone

import connector.fetch.diagnostics  # noqa: F401  (registers FetchAction=NoOp)
from connector import audit, history, queue, schedules
from connector.models import (
    Action,
    ActionTransition,
    AuditEntry,
    AuditOutcome,
    AuditVerb,
    AuditVia,
    FetchTask,
    Status,
)

pytestmark = pytest.mark.django_db

CLIENT = "10.20.30.40"


@pytest.fixture(autouse=True)
def client_may_change(settings):
    """CLIENT holds a role that may change things (the default allows loopback only)."""
    settings.CONNECTOR_ACI_ROLES = {
        "operator": {"actions": ["change", "status", "view"], "clients": [CLIENT]}
    }


def aci_call(client: Any, **params: str) -> str:
    """Call the endpoint from CLIENT; the XML answer as text."""
    response = client.get("/", {"ResponseFormat": "simplejson", **params}, REMOTE_ADDR=CLIENT)
    assert response.status_code == 200
    return response.json()["autnresponse"]


def queue_info(client: Any, queue_action: str, **params: str) -> Any:
    return aci_call(
        client, action="QueueInfo", QueueName="fetch", QueueAction=queue_action, **params
    )


def submit_by_endpoint(client: Any, **params: str) -> Action:
    answer = aci_call(client, action="Fetch", FetchAction="NoOp", **params)
    assert answer["response"] == "SUCCESS", answer
    return Action.objects.get(token=answer["responsedata"]["token"])


def only_entry(**filters: Any) -> AuditEntry:
    (entry,) = AuditEntry.objects.filter(**filters)
    return entry


def assert_from_endpoint(entry: AuditEntry) -> None:
    assert (entry.user, entry.client, entry.via) == ("", CLIENT, AuditVia.ENDPOINT)


def claim(worker: str = "w1") -> Action:
    (action,) = queue.claim_actions(queue="fetch", worker=worker, limit=1)
    return action


def steps(action: Action) -> list[tuple[str, datetime, str]]:
    """The action's history as the page shows it, read afresh."""
    return history.steps_of(Action.objects.get(pk=action.pk))


def statuses(action: Action) -> list[str]:
    return [status for status, _, _ in steps(action)]


# --- Every verb from the endpoint ------------------------------------------------------


def test_a_submit_from_the_endpoint_is_recorded_with_its_client(client):
    action = submit_by_endpoint(client)
    entry = only_entry(verb=AuditVerb.SUBMIT)
    assert_from_endpoint(entry)
    assert (entry.outcome, entry.action_id, entry.token, entry.queue) == (
        AuditOutcome.DONE,
        action.pk,
        action.token,
        "fetch",
    )
    assert entry.at == action.queued_at


def test_a_cancel_from_the_endpoint_is_recorded(client):
    action = submit_by_endpoint(client)
    assert queue_info(client, "Cancel", Token=action.token)["response"] == "SUCCESS"
    entry = only_entry(verb=AuditVerb.CANCEL)
    assert_from_endpoint(entry)
    assert (entry.outcome, entry.action_id) == (AuditOutcome.DONE, action.pk)


def test_a_refused_cancel_from_the_endpoint_is_recorded_with_the_reason(client):
    action = submit_by_endpoint(client)
    claim()
    answer = queue_info(client, "Cancel", Token=action.token)
    assert answer["responsedata"]["error"]["errorcode"] == "ERRORNOTQUEUED"
    entry = only_entry(verb=AuditVerb.CANCEL)
    assert_from_endpoint(entry)
    assert entry.outcome == AuditOutcome.REFUSED
    assert entry.reason == "The action is Processing, not Queued"
    assert entry.action_id == action.pk
    assert Action.objects.get(pk=action.pk).status == Status.PROCESSING


def test_a_stop_from_the_endpoint_is_recorded(client):
    action = submit_by_endpoint(client)
    claim()
    assert queue_info(client, "Stop", Token=action.token)["response"] == "SUCCESS"
    entry = only_entry(verb=AuditVerb.STOP)
    assert_from_endpoint(entry)
    assert (entry.outcome, entry.action_id) == (AuditOutcome.DONE, action.pk)


def test_a_refused_stop_from_the_endpoint_is_recorded(client):
    action = submit_by_endpoint(client)
    answer = queue_info(client, "Stop", Token=action.token)
    assert answer["responsedata"]["error"]["errorcode"] == "ERRORNOTRUNNING"
    entry = only_entry(verb=AuditVerb.STOP)
    assert (entry.outcome, entry.reason) == (
        AuditOutcome.REFUSED,
        "The action is Queued, not Processing",
    )
    assert_from_endpoint(entry)


def test_a_priority_change_from_the_endpoint_records_old_and_new(client):
    action = submit_by_endpoint(client, Priority="2")
    assert queue_info(client, "ChangePriority", Token=action.token, Priority="9")["response"] == (
        "SUCCESS"
    )
    entry = only_entry(verb=AuditVerb.PRIORITY)
    assert_from_endpoint(entry)
    assert (entry.outcome, entry.detail, entry.action_id) == (
        AuditOutcome.DONE,
        "priority 2 -> 9",
        action.pk,
    )


def test_a_refused_priority_change_from_the_endpoint_is_recorded(client):
    action = submit_by_endpoint(client)
    claim()
    queue_info(client, "ChangePriority", Token=action.token, Priority="9")
    entry = only_entry(verb=AuditVerb.PRIORITY)
    assert (entry.outcome, entry.detail) == (AuditOutcome.REFUSED, "priority 9")
    assert Action.objects.get(pk=action.pk).priority == 0


def test_pause_and_resume_from_the_endpoint_are_recorded_with_the_queue(client):
    queue_info(client, "Pause")
    queue_info(client, "Pause")
    queue_info(client, "Resume")
    pause, again, resume = AuditEntry.objects.order_by("id")
    assert [e.verb for e in (pause, again, resume)] == ["pause", "pause", "resume"]
    for entry in (pause, again, resume):
        assert_from_endpoint(entry)
        assert (entry.queue, entry.action_id, entry.outcome) == ("fetch", None, "done")
    assert again.detail == "already paused"
    assert pause.detail == resume.detail == ""


def test_a_duplicate_from_the_endpoint_is_recorded_on_the_new_action(client):
    original = submit_by_endpoint(client)
    answer = queue_info(client, "Duplicate", Token=original.token)
    copy = Action.objects.get(token=answer["responsedata"]["token"])
    entry = only_entry(verb=AuditVerb.RETRY)
    assert_from_endpoint(entry)
    assert entry.action_id == copy.pk
    assert entry.detail == f"copy of action {original.pk} ({original.token})"
    assert statuses(copy) == [Status.QUEUED]


def test_a_refused_request_changes_nothing_but_the_audit(client):
    action = submit_by_endpoint(client)
    claim()
    before = list(Action.objects.values())
    queue_info(client, "Cancel", Token=action.token)
    assert list(Action.objects.values()) == before
    assert statuses(action) == [Status.QUEUED, Status.PROCESSING]


# --- The schedule and the worker --------------------------------------------------------


def test_a_scheduled_submit_is_recorded_via_the_schedule():
    now = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)
    FetchTask.objects.create(
        name="DOCS",
        directory_paths=["/srv/docs"],
        schedule_start_time="now",
        schedule_next_run_at=now,
    )
    (action,) = schedules.queue_due_synchronizes(now=now)
    entry = only_entry(verb=AuditVerb.SUBMIT)
    assert (entry.via, entry.user, entry.client, entry.action_id) == (
        AuditVia.SCHEDULE,
        "schedule",
        "",
        action.pk,
    )


def expire(action: Action) -> None:
    Action.objects.filter(pk=action.pk).update(
        lease_expires_at=timezone.now() - timedelta(seconds=5)
    )


def test_recovery_is_recorded_via_the_worker_and_in_the_history():
    action = queue.submit_action(fetch_action="NoOp", params={})
    claim("dead-worker")
    expire(action)
    queue.recover_expired()
    entry = only_entry(verb=AuditVerb.RECOVER)
    assert (entry.via, entry.action_id, entry.outcome) == (AuditVia.WORKER, action.pk, "done")
    assert "dead-worker stopped responding; action queued again" in entry.detail
    claim("new-worker")
    assert queue.end_action(
        pk=action.pk, worker="new-worker", ending=queue.Ending(counts={}, result={}, progress=100)
    )
    shown = steps(action)
    assert [(status, note) for status, _, note in shown] == [
        (Status.QUEUED, ""),
        (Status.PROCESSING, "worker dead-worker"),
        (Status.QUEUED, "Worker dead-worker stopped responding; action queued again"),
        (Status.PROCESSING, "worker new-worker"),
        (Status.FINISHED, ""),
    ]
    times = [at for _, at, _ in shown]
    assert times == sorted(times)


@override_settings(CONNECTOR_MAX_ATTEMPTS=2)
def test_a_recovery_then_a_failure_keep_both_spells_in_order():
    action = queue.submit_action(fetch_action="NoOp", params={})
    for worker in ("first", "second"):  # the second recovery finds no attempts left
        claim(worker)
        expire(action)
        queue.recover_expired()
    assert [(status, note) for status, _, note in steps(action)] == [
        (Status.QUEUED, ""),
        (Status.PROCESSING, "worker first"),
        (Status.QUEUED, "Worker first stopped responding; action queued again"),
        (Status.PROCESSING, "worker second"),
        (Status.ERROR, Action.objects.get(pk=action.pk).error),
    ]


def test_recovery_of_an_action_with_a_stop_pending_ends_it_stopped_in_the_history():
    action = queue.submit_action(fetch_action="NoOp", params={})
    claim("dead")
    queue.request_stop(pk=action.pk)
    expire(action)
    queue.recover_expired()
    assert statuses(action) == [Status.QUEUED, Status.PROCESSING, "Stop requested", Status.STOPPED]


# --- The history of the queue's own changes ---------------------------------------------


def test_the_history_of_a_finished_action_has_its_real_times():
    action = queue.submit_action(fetch_action="NoOp", params={})
    claim()
    assert queue.end_action(
        pk=action.pk, worker="w1", ending=queue.Ending(counts={}, result={}, progress=100)
    )
    action.refresh_from_db()
    assert [(status, at) for status, at, _ in steps(action)] == [
        (Status.QUEUED, action.queued_at),
        (Status.PROCESSING, action.started_at),
        (Status.FINISHED, action.finished_at),
    ]


def test_a_stop_is_in_the_history_and_the_end_is_stopped():
    action = queue.submit_action(fetch_action="NoOp", params={})
    claim()
    queue.request_stop(pk=action.pk, stopped_by="alice", stopped_from="10.0.0.1")
    # Completed before a checkpoint: still Stopped, as the client was told.
    assert queue.end_action(
        pk=action.pk, worker="w1", ending=queue.Ending(counts={}, result={}, progress=100)
    )
    shown = steps(action)
    assert [status for status, _, _ in shown] == [
        Status.QUEUED,
        Status.PROCESSING,
        "Stop requested",
        Status.STOPPED,
    ]
    assert shown[2][2] == "by alice from 10.0.0.1"


def test_an_error_end_keeps_the_error_in_the_history():
    action = queue.submit_action(fetch_action="NoOp", params={})
    claim()
    queue.end_action(
        pk=action.pk,
        worker="w1",
        ending=queue.Ending(counts={}, result={}, progress=3, error="disk full"),
    )
    status, _, note = steps(action)[-1]
    assert (status, note) == (Status.ERROR, "disk full")


def test_an_unclaimed_action_is_queued_again_in_the_history():
    action = queue.submit_action(fetch_action="NoOp", params={})
    claim()
    assert queue.unclaim_action(pk=action.pk, worker="w1")
    assert [(status, note) for status, _, note in steps(action)] == [
        (Status.QUEUED, ""),
        (Status.PROCESSING, "worker w1"),
        (Status.QUEUED, "given back unstarted by worker w1"),
    ]
    claim("w2")
    assert statuses(action)[-1] == Status.PROCESSING


def test_a_finish_by_a_worker_that_lost_the_action_adds_no_history():
    action = queue.submit_action(fetch_action="NoOp", params={})
    claim()
    assert not queue.end_action(
        pk=action.pk, worker="other", ending=queue.Ending(counts={}, result={}, progress=1)
    )
    assert statuses(action) == [Status.QUEUED, Status.PROCESSING]


def test_a_cancel_ends_the_history_with_who_cancelled():
    action = queue.submit_action(fetch_action="NoOp", params={})
    queue.cancel_action(pk=action.pk, cancelled_from="10.0.0.3")
    assert [(status, note) for status, _, note in steps(action)] == [
        (Status.QUEUED, ""),
        (Status.CANCELLED, "by the endpoint from 10.0.0.3"),
    ]


def test_the_claim_and_the_finish_write_no_history_rows():
    """The hot path stays as fast as before: its steps come from the row."""
    action = queue.submit_action(fetch_action="NoOp", params={})
    claim()
    queue.end_action(
        pk=action.pk, worker="w1", ending=queue.Ending(counts={}, result={}, progress=100)
    )
    assert not ActionTransition.objects.exists()
    assert len(steps(action)) == 3


def test_a_finish_with_the_next_claim_writes_no_history_rows():
    first = queue.submit_action(fetch_action="NoOp", params={})
    second = queue.submit_action(fetch_action="NoOp", params={})
    claim()
    ending = queue.Ending(counts={}, result={}, progress=100)
    (claimed,) = queue.finish_and_claim(queue="fetch", pk=first.pk, worker="w1", ending=ending)
    assert claimed.pk == second.pk
    assert not ActionTransition.objects.exists()
    assert statuses(first) == [Status.QUEUED, Status.PROCESSING, Status.FINISHED]
    assert statuses(second) == [Status.QUEUED, Status.PROCESSING]


def test_a_claim_of_many_records_each_of_them():
    first = queue.submit_action(fetch_action="NoOp", params={})
    second = queue.submit_action(fetch_action="NoOp", params={})
    claimed = queue.claim_actions(queue="fetch", worker="w1", limit=5)
    assert {a.pk for a in claimed} == {first.pk, second.pk}
    assert statuses(first) == statuses(second) == [Status.QUEUED, Status.PROCESSING]


# --- One transaction for a change and its record ---------------------------------------


def test_a_change_whose_record_fails_does_not_happen(monkeypatch):
    action = queue.submit_action(fetch_action="NoOp", params={})

    def broken(**kwargs: Any) -> None:
        raise RuntimeError("audit table unavailable")

    monkeypatch.setattr(audit, "record_done", broken)
    with pytest.raises(RuntimeError):
        queue.cancel_action(pk=action.pk, cancelled_by="alice")
    assert Action.objects.get(pk=action.pk).status == Status.QUEUED
    assert statuses(action) == [Status.QUEUED]


def test_entries_outlive_their_action_and_keep_its_token():
    action = queue.submit_action(fetch_action="NoOp", params={}, submitted_from="10.0.0.2")
    queue.cancel_action(pk=action.pk, cancelled_by="bob", via=AuditVia.DASHBOARD)
    token = action.token
    Action.objects.filter(pk=action.pk).delete()
    entries = list(AuditEntry.objects.order_by("id"))
    assert [(e.verb, e.action_id, e.token) for e in entries] == [
        ("submit", None, token),
        ("cancel", None, token),
    ]
    assert not ActionTransition.objects.exists()


def test_long_values_are_cut_to_their_columns_not_refused():
    audit.record_refused(
        verb=AuditVerb.PAUSE,
        who=audit.Who(via=AuditVia.DASHBOARD, user="u" * 500, client="c" * 500),
        reason="r" * 1000,
        queue="fetch",
    )
    entry = only_entry(verb=AuditVerb.PAUSE)
    assert (len(entry.user), len(entry.client), len(entry.reason)) == (150, 200, 400)


def test_a_refusal_for_an_action_that_is_gone_keeps_its_number_in_the_detail():
    audit.record_refused(
        verb=AuditVerb.CANCEL, who=audit.Who(via=AuditVia.DASHBOARD), reason="no", action_pk=987
    )
    entry = only_entry(verb=AuditVerb.CANCEL)
    assert (entry.action_id, entry.detail) == (None, "no action 987")
