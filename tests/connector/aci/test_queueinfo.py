"""action=QueueInfo: every QueueAction, its answers and its refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from connector import queue, writers
from connector.models import Action, QueueState, Status, WorkerProcess

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 26, 14, 1, 2, tzinfo=UTC)


@pytest.fixture(autouse=True)
def utc(settings):
    """Expected times below are UTC whatever TIME_ZONE the environment sets."""
    settings.TIME_ZONE = "UTC"


def set_times(token, **times):
    """Fixed times on a row (times only: the status is the queue module's)."""
    Action.objects.filter(token=token).update(**times)


def tokens_of(root):
    return [action.findtext("token") for action in root.findall("responsedata/actions/action")]


# --- GetStatus ---------------------------------------------------------------------


def test_get_status_with_a_token_shows_that_action(aci):
    aci.submit()
    token = aci.submit()
    data = aci.success(aci.queue_info("GetStatus", Token=token))
    (action,) = data.findall("actions/action")
    assert action.findtext("token") == token
    assert action.findtext("status") == "Queued"


def test_get_status_shows_the_fields_of_a_finished_action_in_order(aci):
    token = aci.submit(ActionID="nightly")
    aci.finish(
        aci.claim(),
        counts={
            "DOCS": {
                "errors": 0,
                "zeta": 4,
                "seen": 120,
                "unchanged": 107,
                "added": 10,
                "deleted": 1,
                "updated": 2,
            }
        },
    )
    set_times(
        token,
        queued_at=T0,
        started_at=T0 + timedelta(seconds=1, milliseconds=900),
        finished_at=T0 + timedelta(seconds=5, milliseconds=100),
    )
    (action,) = aci.success(aci.queue_info("GetStatus", Token=token)).findall("actions/action")
    assert [child.tag for child in action] == [
        "token",
        "status",
        "queued_time",
        "time_in_queue",
        "process_start_time",
        "time_processing",
        "process_end_time",
        "documentcounts",
        "fetchaction",
        "priority",
        "progress",
        "actionid",
    ]
    assert action.findtext("status") == "Finished"
    assert action.findtext("queued_time") == "2026-Nov-26 14:01:02"
    assert action.findtext("time_in_queue") == "1"
    assert action.findtext("process_start_time") == "2026-Nov-26 14:01:03"
    assert action.findtext("time_processing") == "3"
    assert action.findtext("process_end_time") == "2026-Nov-26 14:01:07"
    (count,) = action.findall("documentcounts/documentcount")
    assert list(count.attrib.items()) == [
        ("task", "DOCS"),
        ("seen", "120"),
        ("added", "10"),
        ("updated", "2"),
        ("deleted", "1"),
        ("unchanged", "107"),
        ("errors", "0"),
        ("zeta", "4"),
    ]
    assert action.findtext("fetchaction") == "NOOP"
    assert action.findtext("priority") == "0"
    assert action.findtext("progress") == "100"
    assert action.findtext("actionid") == "nightly"


@override_settings(TIME_ZONE="Europe/Paris")
def test_get_status_times_are_in_the_configured_time_zone(aci):
    token = aci.submit()
    set_times(token, queued_at=datetime(2026, 7, 1, 22, 30, 0, tzinfo=UTC))
    (action,) = aci.success(aci.queue_info("GetStatus", Token=token)).findall("actions/action")
    assert action.findtext("queued_time") == "2026-Jul-02 00:30:00"


def test_get_status_of_a_queued_action_leaves_out_what_has_not_happened(aci):
    token = aci.submit()
    set_times(token, queued_at=timezone.now() - timedelta(seconds=42))
    (action,) = aci.success(aci.queue_info("GetStatus", Token=token)).findall("actions/action")
    tags = [child.tag for child in action]
    assert "process_start_time" not in tags
    assert "time_processing" not in tags
    assert "process_end_time" not in tags
    assert "documentcounts" not in tags
    assert "error" not in tags
    assert 42 <= int(action.findtext("time_in_queue")) <= 44


def test_get_status_of_a_failed_action_has_its_error(aci):
    token = aci.submit()
    aci.finish(aci.claim(), error="The folder is gone", progress=30)
    (action,) = aci.success(aci.queue_info("GetStatus", Token=token)).findall("actions/action")
    assert action.findtext("status") == "Error"
    assert action.findtext("error") == "The folder is gone"


def test_get_status_says_when_a_stop_is_pending(aci):
    token = aci.submit()
    aci.claim()
    aci.success(aci.queue_info("Stop", Token=token))
    (action,) = aci.success(aci.queue_info("GetStatus", Token=token)).findall("actions/action")
    assert action.findtext("status") == "Processing"
    assert action.findtext("stoprequested") == "true"


def test_get_status_lists_identifiers_and_task_outcomes(aci):
    token = aci.submit()
    aci.finish(
        aci.claim(),
        result={
            "identifiers": [
                {"identifier": "ID1", "type": "folder", "name": "reports", "size": 0},
                {"identifier": "ID2", "type": "file", "name": "q3.txt", "parent": "ID1"},
            ],
            "success": ["ID1"],
            "failed": [{"identifier": "ID2", "reason": "Under hold"}],
        },
    )
    (action,) = aci.success(aci.queue_info("GetStatus", Token=token)).findall("actions/action")
    identifiers = action.findall("identifiers/identifier")
    assert [i.text for i in identifiers] == ["ID1", "ID2"]
    assert identifiers[0].attrib == {"type": "folder", "name": "reports", "size": "0"}
    assert identifiers[1].get("parent") == "ID1"
    assert [s.text for s in action.findall("tasks/success")] == ["ID1"]
    (failed,) = action.findall("tasks/failed")
    assert (failed.text, failed.get("reason")) == ("ID2", "Under hold")


def test_get_status_without_a_token_lists_the_queue_newest_first(aci):
    tokens = [aci.submit() for _ in range(3)]
    for n, token in enumerate(tokens):
        set_times(token, queued_at=T0 + timedelta(minutes=n))
    root = aci.queue_info("GetStatus")
    assert tokens_of(root) == tokens[::-1]


def test_get_status_filters_by_state(aci):
    queued, running, finished = aci.submit(), aci.submit(), aci.submit()
    # Every time fixed: the claims below must not depend on the wall clock.
    set_times(running, queued_at=T0)
    set_times(finished, queued_at=T0 + timedelta(minutes=1))
    set_times(queued, queued_at=T0 + timedelta(minutes=5))
    aci.claim()  # the oldest of the other two
    aci.finish(aci.claim())
    assert Action.objects.get(token=running).status == Status.PROCESSING
    assert Action.objects.get(token=finished).status == Status.FINISHED
    assert tokens_of(aci.queue_info("GetStatus", State="queued")) == [queued]
    assert tokens_of(aci.queue_info("GetStatus", State="Processing")) == [running]
    both = tokens_of(aci.queue_info("GetStatus", State="finished, QUEUED"))
    assert set(both) == {queued, finished}


def test_get_status_limits_the_list_to_max_results(aci):
    tokens = [aci.submit() for _ in range(4)]
    for n, token in enumerate(tokens):
        set_times(token, queued_at=T0 + timedelta(minutes=n))
    assert tokens_of(aci.queue_info("GetStatus", MaxResults="2")) == tokens[:1:-1]


def test_get_status_sorts_by_the_time_asked_for(aci):
    a, b, c = aci.submit(), aci.submit(), aci.submit()
    set_times(
        a,
        queued_at=T0,
        started_at=T0 + timedelta(minutes=9),
        finished_at=T0 + timedelta(minutes=10),
    )
    set_times(
        b,
        queued_at=T0 + timedelta(minutes=1),
        started_at=T0 + timedelta(minutes=2),
        finished_at=T0 + timedelta(minutes=20),
    )
    set_times(c, queued_at=T0 + timedelta(minutes=2))
    by = {"Sort-By": "queue-time", "Sort-Order": "ascending"}
    assert tokens_of(aci.queue_info("GetStatus", by)) == [a, b, c]
    by = {"Sort-By": "start-time", "Sort-Order": "Descending"}
    # Not started yet: last either way.
    assert tokens_of(aci.queue_info("GetStatus", by)) == [a, b, c]
    by = {"Sort-By": "start-time", "Sort-Order": "ascending"}
    assert tokens_of(aci.queue_info("GetStatus", by)) == [b, a, c]
    by = {"Sort-By": "finish-time"}
    assert tokens_of(aci.queue_info("GetStatus", by)) == [b, a, c]


def test_get_status_filters_by_queue_and_finish_times(aci):
    a, b, c = aci.submit(), aci.submit(), aci.submit()
    set_times(a, queued_at=T0, finished_at=T0 + timedelta(hours=1))
    set_times(b, queued_at=T0 + timedelta(hours=1), finished_at=T0 + timedelta(hours=3))
    set_times(c, queued_at=T0 + timedelta(hours=2))
    order = {"Sort-Order": "ascending"}
    after = {"Queued-After": "2026-11-26 15:01:02", **order}
    assert tokens_of(aci.queue_info("GetStatus", after)) == [b, c]
    before = {"Queued-Before": "2026-11-26 15:01:02", **order}
    assert tokens_of(aci.queue_info("GetStatus", before)) == [a]
    window = {"Finished-After": "2026-11-26 16:00:00", "Finished-Before": "2026-11-27", **order}
    assert tokens_of(aci.queue_info("GetStatus", window)) == [b]


def test_get_status_filters_by_priority(aci):
    low, mid, high = aci.submit(Priority="-1"), aci.submit(Priority="5"), aci.submit(Priority="9")
    both = {"Min-Priority": "0", "Max-Priority": "5"}
    assert tokens_of(aci.queue_info("GetStatus", both)) == [mid]
    assert set(tokens_of(aci.queue_info("GetStatus", {"Min-Priority": "5"}))) == {mid, high}
    assert set(tokens_of(aci.queue_info("GetStatus", {"Max-Priority": "4"}))) == {low}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("State", "sleeping"),
        ("MaxResults", "0"),
        ("MaxResults", "lots"),
        ("Sort-By", "size"),
        ("Sort-Order", "sideways"),
        ("Queued-After", "yesterday"),
        ("Queued-Before", "2026-13-01 00:00:00"),
        ("Finished-After", "26/11/2026"),
        ("Finished-Before", "2026-11-26 25:00:00"),
        ("Min-Priority", "high"),
        ("Max-Priority", "1e3"),
    ],
)
def test_get_status_with_a_bad_filter_is_refused_naming_it(aci, name, value):
    aci.submit()
    root = aci.queue_info("GetStatus", {name: value})
    assert aci.error_code(root) == "ERRORPARAMINVALID"
    assert name in aci.error_description(root)


@override_settings(
    CONNECTOR_QUEUES={"fetch": {"MaximumThreads": 2}, "other": {"MaximumThreads": 1}}
)
def test_get_status_of_a_token_of_another_queue_is_unknown(aci):
    other = queue.submit_action(fetch_action="NoOp", params={}, queue="other")
    root = aci.queue_info("GetStatus", Token=other.token)
    assert aci.error_code(root) == "ERRORTOKENUNKNOWN"
    root = aci.queue_info("GetStatus", QueueName="Other", Token=other.token)
    assert tokens_of(root) == [other.token]
    assert tokens_of(aci.queue_info("GetStatus")) == []


# --- Progress ----------------------------------------------------------------------


def test_progress_shows_percent_stage_and_counts_so_far(aci):
    token = aci.submit()
    action = aci.claim()
    queue.record_progress(
        pk=action.pk, worker="w1", percent=42, stage="reading", counts={"DOCS": {"seen": 7}}
    )
    data = aci.success(aci.queue_info("Progress", Token=token))
    assert data.findtext("token") == token
    assert data.findtext("status") == "Processing"
    assert data.findtext("progress") == "42"
    assert data.findtext("stage") == "reading"
    assert data.find("documentcounts/documentcount").attrib == {"task": "DOCS", "seen": "7"}


def test_progress_of_a_synchronize_with_no_total_says_so(aci):
    # A first Synchronize (connector/progress.py): <progress> stays a number, and the
    # extension after it says it is no measure; the counts say how far it is.
    token = aci.submit()
    action = aci.claim()
    queue.record_progress(
        pk=action.pk, worker="w1", percent=0, stage="enumerating",
        counts={"DOCS": {"seen": 700}}, basis="unknown", total=None,
    )  # fmt: skip
    data = aci.success(aci.queue_info("Progress", Token=token))
    assert data.findtext("progress") == "0"
    assert data.findtext("progressknown") == "false"
    assert data.find("expecteddocuments") is None
    status = aci.success(aci.queue_info("GetStatus", Token=token)).find("actions/action")
    tags = [child.tag for child in status]
    assert tags[tags.index("progress") + 1] == "progressknown"


def test_progress_of_a_synchronize_with_an_estimate_says_of_what_and_time_left(aci):
    token = aci.submit()
    action = aci.claim()
    queue.record_progress(
        pk=action.pk, worker="w1", percent=25, stage="enumerating",
        counts={"DOCS": {"seen": 300}}, basis="previous", total=1200,
    )  # fmt: skip
    Action.objects.filter(pk=action.pk).update(started_at=timezone.now() - timedelta(seconds=10))
    data = aci.success(aci.queue_info("Progress", Token=token))
    assert data.findtext("progress") == "25"
    assert data.find("progressknown") is None
    assert data.find("expecteddocuments").attrib == {"basis": "previous"}
    assert data.findtext("expecteddocuments") == "1200"
    # 900 documents left at 30 a second.
    assert 29 <= int(data.findtext("time_remaining")) <= 31


def test_progress_of_a_queued_action_is_zero(aci):
    token = aci.submit()
    data = aci.success(aci.queue_info("Progress", Token=token))
    assert data.findtext("progress") == "0"
    assert data.find("documentcounts") is not None


# --- Cancel and Stop ---------------------------------------------------------------


def test_cancel_of_a_queued_action_cancels_it(aci):
    token = aci.submit()
    data = aci.success(aci.queue_info("Cancel", Token=token))
    assert data.findtext("status") == "Cancelled"
    action = Action.objects.get()
    assert action.status == Status.CANCELLED
    assert (action.cancelled_by, action.cancelled_from) == ("", "127.0.0.1")
    assert queue.claim_actions(queue="fetch", worker="w1", limit=1) == []


def test_cancel_of_a_running_action_is_refused_and_says_to_use_stop(aci):
    token = aci.submit()
    aci.claim()
    before = aci.snapshot()
    root = aci.queue_info("Cancel", Token=token)
    assert aci.error_code(root) == "ERRORNOTQUEUED"
    assert root.findtext("responsedata/error/errorid") == "CONNECTORQUEUEINFO104"
    assert root.findtext("responsedata/error/rawerrorid") == "0x68"
    assert root.findtext("responsedata/error/errorstring") == "Action is not queued"
    assert "Processing" in aci.error_description(root)
    assert "QueueAction=Stop" in aci.error_description(root)
    assert aci.snapshot() == before


def test_cancel_of_a_finished_action_is_refused(aci):
    token = aci.submit()
    aci.finish(aci.claim())
    before = aci.snapshot()
    root = aci.queue_info("Cancel", Token=token)
    assert aci.error_code(root) == "ERRORNOTQUEUED"
    assert "Finished" in aci.error_description(root)
    assert aci.snapshot() == before


def test_stop_of_a_running_action_asks_its_worker_to_stop(aci):
    token = aci.submit()
    aci.claim()
    data = aci.success(aci.queue_info("Stop", Token=token))
    assert data.findtext("stoprequested") == "true"
    action = Action.objects.get()
    assert action.status == Status.PROCESSING
    assert action.stop_requested
    assert (action.stopped_by, action.stopped_from) == ("", "127.0.0.1")


def test_stop_of_a_queued_action_is_refused_and_says_to_use_cancel(aci):
    token = aci.submit()
    before = aci.snapshot()
    root = aci.queue_info("Stop", Token=token)
    assert aci.error_code(root) == "ERRORNOTRUNNING"
    assert "Queued" in aci.error_description(root)
    assert "QueueAction=Cancel" in aci.error_description(root)
    assert aci.snapshot() == before


def test_stop_of_a_finished_action_is_refused(aci):
    token = aci.submit()
    aci.finish(aci.claim())
    before = aci.snapshot()
    root = aci.queue_info("Stop", Token=token)
    assert aci.error_code(root) == "ERRORNOTRUNNING"
    assert "Finished" in aci.error_description(root)
    assert aci.snapshot() == before


# --- ChangePriority ----------------------------------------------------------------


def test_change_priority_of_a_queued_action_changes_its_place(aci):
    first, second = aci.submit(), aci.submit()
    data = aci.success(aci.queue_info("ChangePriority", Token=second, Priority="10"))
    assert data.findtext("priority") == "10"
    assert Action.objects.get(token=second).priority == 10
    assert aci.claim().token == second
    assert Action.objects.get(token=first).status == Status.QUEUED


def test_change_priority_of_a_running_action_is_refused(aci):
    token = aci.submit()
    aci.claim()
    before = aci.snapshot()
    root = aci.queue_info("ChangePriority", Token=token, Priority="10")
    assert aci.error_code(root) == "ERRORNOTQUEUED"
    assert "ChangePriority" in aci.error_description(root)
    assert aci.snapshot() == before


def test_change_priority_needs_a_whole_number(aci):
    token = aci.submit()
    before = aci.snapshot()
    assert aci.error_code(aci.queue_info("ChangePriority", Token=token)) == "ERRORMISSINGPARAMS"
    root = aci.queue_info("ChangePriority", Token=token, Priority="urgent")
    assert aci.error_code(root) == "ERRORPARAMINVALID"
    assert aci.snapshot() == before


# --- Pause, Resume, QueueStatus ----------------------------------------------------


def test_pause_stops_claims_and_resume_allows_them(aci):
    aci.submit()
    data = aci.success(aci.queue_info("Pause"))
    assert (data.findtext("queuename"), data.findtext("paused")) == ("fetch", "true")
    assert queue.is_paused("fetch")
    assert queue.claim_actions(queue="fetch", worker="w1", limit=1) == []
    data = aci.success(aci.queue_info("Resume"))
    assert data.findtext("paused") == "false"
    assert QueueState.objects.get(name="fetch").paused is False
    assert aci.claim()


def test_queue_status_counts_actions_and_live_worker_threads(aci):
    aci.submit()
    aci.submit()
    aci.submit()
    aci.claim()
    aci.finish(aci.claim())
    now = timezone.now()
    WorkerProcess.objects.create(
        id="w1", hostname="h", pid=1, started_at=now, heartbeat_at=now,
        threads={"fetch": 4}, running={"fetch": 1},
    )  # fmt: skip
    WorkerProcess.objects.create(
        id="dead", hostname="h", pid=2, started_at=now, heartbeat_at=now - timedelta(hours=1),
        threads={"fetch": 8}, running={"fetch": 8},
    )  # fmt: skip
    aci.success(aci.queue_info("Pause"))
    data = aci.success(aci.queue_info("QueueStatus"))
    assert data.findtext("queuename") == "fetch"
    assert data.findtext("paused") == "true"
    counts = {child.tag: child.text for child in data.find("counts")}
    assert counts == {
        "queued": "1",
        "processing": "1",
        "finished": "1",
        "error": "0",
        "cancelled": "0",
        "stopped": "0",
    }
    assert data.findtext("maximumthreads") == str(queue.maximum_threads("fetch"))
    assert data.findtext("workers") == "1"
    assert data.findtext("workerthreads") == "4"
    assert data.findtext("runningthreads") == "1"


# --- GetActionParameters and Duplicate ---------------------------------------------


def test_get_action_parameters_returns_what_the_action_was_submitted_with(aci):
    token = aci.submit("Sleep", Seconds="0.5", Steps="5", Priority="3", ActionID="a1")
    data = aci.success(aci.queue_info("GetActionParameters", Token=token))
    assert [child.tag for child in data] == [
        "token",
        "fetchaction",
        "priority",
        "actionid",
        "parameters",
    ]
    assert data.findtext("fetchaction") == "SLEEP"
    assert data.findtext("priority") == "3"
    assert data.findtext("actionid") == "a1"
    params = {p.get("name"): p.text for p in data.findall("parameters/param")}
    assert params == {"Seconds": "0.5", "Steps": "5"}


def test_duplicate_queues_a_new_action_with_the_same_parameters(aci):
    token = aci.submit("Sleep", Seconds="0.5", Priority="3", ActionID="a1")
    aci.finish(aci.claim())
    new_token = aci.success(aci.queue_info("Duplicate", Token=token)).findtext("token")
    assert new_token and new_token != token
    original, copy = Action.objects.get(token=token), Action.objects.get(token=new_token)
    assert copy.status == Status.QUEUED
    assert (copy.fetch_action, copy.params, copy.priority, copy.action_id) == (
        original.fetch_action,
        original.params,
        original.priority,
        original.action_id,
    )
    assert copy.submitted_from == "127.0.0.1"


def test_duplicate_of_an_action_whose_parameters_are_no_longer_valid_is_refused(aci):
    action = queue.submit_action(fetch_action="Sleep", params={"Seconds": "never"})
    before = aci.snapshot()
    root = aci.queue_info("Duplicate", Token=action.token)
    assert aci.error_code(root) == "ERRORPARAMINVALID"
    assert "Seconds" in aci.error_description(root)
    assert aci.snapshot() == before


def test_duplicate_of_an_action_whose_fetch_action_is_gone_is_refused(aci):
    action = queue.submit_action(fetch_action="Vanished", params={})
    before = aci.snapshot()
    root = aci.queue_info("Duplicate", Token=action.token)
    assert aci.error_code(root) == "ERRORPARAMINVALID"
    assert "VANISHED" in aci.error_description(root)
    assert aci.snapshot() == before


# --- One writer per task -------------------------------------------------------------


def test_get_status_and_progress_say_which_running_action_a_waiting_writer_waits_for(
    aci, docs_task
):
    running = aci.submit("Synchronize", TaskSections="DOCS")
    waiting = aci.submit("Synchronize", TaskSections="DOCS")
    aci.claim()
    (action,) = aci.success(aci.queue_info("GetStatus", Token=waiting)).findall("actions/action")
    assert action.findtext("status") == "Queued"
    (wait,) = action.findall("waitingfor")
    assert (wait.get("task"), wait.text) == ("DOCS", running)
    listed = aci.success(aci.queue_info("GetStatus")).findall("actions/action")
    assert [len(a.findall("waitingfor")) for a in listed] == [1, 0]  # newest first
    progress = aci.success(aci.queue_info("Progress", Token=waiting))
    assert progress.find("waitingfor").text == running
    # Once the first ends, nothing to wait for.
    aci.finish(Action.objects.get(token=running))
    (action,) = aci.success(aci.queue_info("GetStatus", Token=waiting)).findall("actions/action")
    assert action.find("waitingfor") is None


def test_the_waits_of_one_action_as_read_are_those_of_the_many_and_never_itself(aci, docs_task):
    # writers.waits_of (one query, GetStatus by token and Fetch) against writers.waits.
    running = aci.submit("Synchronize", TaskSections="DOCS")
    waiting = aci.submit("Synchronize", TaskSections="DOCS")
    aci.claim()
    action = Action.objects.get(token=waiting)
    assert writers.waits_of(action) == writers.waits([action.pk])[action.pk]
    assert [wait.token for wait in writers.waits_of(action)] == [running]
    # Read while Queued, claimed since: it holds the task itself and waits for nothing.
    aci.finish(Action.objects.get(token=running))
    aci.claim()
    assert Action.objects.get(token=waiting).status == Status.PROCESSING
    assert writers.waits_of(action) == []
    assert writers.waits_of(Action.objects.get(token=running)) == []


def test_fetch_and_duplicate_of_a_writer_say_at_once_that_it_waits(aci, docs_task):
    running = aci.submit("Synchronize", TaskSections="DOCS")
    aci.claim()
    answer = aci.success(aci.call("Fetch", FetchAction="Synchronize", TaskSections="DOCS"))
    assert answer.find("waitingfor").attrib == {"task": "DOCS"}
    assert answer.findtext("waitingfor") == running
    copy = aci.success(aci.queue_info("Duplicate", Token=running))
    assert copy.findtext("waitingfor") == running
    free = aci.success(aci.call("Fetch", FetchAction="NoOp"))
    assert free.find("waitingfor") is None
