"""The Tasks page (issue 16 item 2): every task, its schedule, last Synchronize and datastore;
Synchronize now and pause/resume of the schedule, by operators only, audited."""

from __future__ import annotations

from datetime import timedelta

import pytest
from dashboard_helpers import finish, start, submit
from django.urls import reverse
from django.utils import timezone

from connector import schedules
from connector.models import Action, AuditEntry, DatastoreDocument, FetchTask, Status
from dashboard import tasks

pytestmark = pytest.mark.django_db


def make_task(name: str = "DOCS", **fields: object) -> FetchTask:
    fields.setdefault("directory_paths", ["/srv/docs", "/srv/more"])
    fields.setdefault("file_match", ["*.txt", "*.md"])
    return FetchTask.objects.create(name=name, **fields)


def synchronize(name: str = "DOCS", **kwargs: object) -> Action:
    return submit(fetch_action="SYNCHRONIZE", params={"TaskSections": name}, tasks=[name], **kwargs)


def test_the_page_lists_every_task_with_roots_filematch_target_and_schedule(viewer_client):
    soon = timezone.now() + timedelta(minutes=5)
    make_task(
        schedule_start_time="now",
        schedule_repeat_secs=3600,
        schedule_cycles=5,
        schedule_runs_done=2,
        schedule_next_run_at=soon,
        ingest_url="https://idol.example/ingest",
    )
    make_task("MAIL", file_match=[])
    html = viewer_client.get(reverse("dashboard:tasks")).content.decode()
    assert 'id="task-DOCS"' in html and 'id="task-MAIL"' in html
    assert "/srv/docs" in html and "/srv/more" in html
    assert "*.txt, *.md" in html
    assert "https://idol.example/ingest" in html
    assert "every 1 h" in html
    assert "3 cycles left" in html
    assert soon.strftime("%Y-%m-%d") in html
    assert "none (runs only when asked)" in html  # MAIL has no schedule


def test_the_last_synchronize_shows_status_counts_and_duration(viewer_client):
    make_task()
    action = start(synchronize())
    finish(action, counts={"DOCS": {"seen": 12, "added": 3}})
    Action.objects.filter(pk=action.pk).update(
        started_at=action.started_at, finished_at=action.started_at + timedelta(seconds=125)
    )
    html = viewer_client.get(reverse("dashboard:tasks")).content.decode()
    assert "status-finished" in html and ">Finished<" in html
    assert "seen 12, added 3" in html
    assert "2 min 5 s" in html
    assert reverse("dashboard:action", args=[action.pk]) in html


def test_a_running_synchronize_is_shown_with_the_last_finished_one(viewer_client):
    make_task()
    first = start(synchronize())
    finish(first, counts={"DOCS": {"seen": 4}})
    running = start(synchronize())
    summary = tasks.task_detail("DOCS")
    assert summary.latest is not None and summary.latest.action.pk == running.pk
    assert summary.last_final is not None and summary.last_final.action.pk == first.pk
    html = viewer_client.get(reverse("dashboard:task", args=["DOCS"])).content.decode()
    assert "status-processing" in html and "The one before it" in html


def test_a_synchronize_of_several_tasks_counts_for_each(viewer_client):
    make_task()
    make_task("MAIL")
    submit(fetch_action="SYNCHRONIZE", params={"TaskSections": "MAIL,DOCS"}, tasks=["MAIL", "DOCS"])
    found, _ = tasks.last_synchronizes(["DOCS", "MAIL", "NONE"])
    assert found["DOCS"][0] == found["MAIL"][0] is not None
    assert found["NONE"] == (None, None)


def test_a_task_past_the_scan_window_says_so_instead_of_searching_everything(
    viewer_client, monkeypatch
):
    make_task()
    make_task("MAIL")
    synchronize("DOCS")
    synchronize("MAIL")
    monkeypatch.setattr(tasks, "SYNCHRONIZE_SCAN", 1)
    html = viewer_client.get(reverse("dashboard:tasks")).content.decode()
    assert "none among the newest 1 Synchronizes" in html


def test_the_datastore_shows_documents_and_the_last_ingestion(viewer_client):
    task = make_task()
    when = timezone.now() - timedelta(days=1)
    for n in range(3):
        DatastoreDocument.objects.create(
            task=task,
            identifier=f"id-{n}",
            path=f"/srv/docs/{n}.txt",
            size=1,
            last_ingested_at=when + timedelta(hours=n),
        )
    summary = tasks.task_detail("docs")
    assert summary.documents == 3
    assert summary.last_ingested_at == when + timedelta(hours=2)
    html = viewer_client.get(reverse("dashboard:tasks")).content.decode()
    assert "3 documents" in html


def test_the_task_page_shows_its_latest_actions_and_links_to_all(viewer_client):
    make_task()
    mine = submit(params={}, tasks=["DOCS"], action_id="mine")
    other = submit(params={}, tasks=["MAIL"], action_id="other")
    html = viewer_client.get(reverse("dashboard:task", args=["DOCS"])).content.decode()
    assert f'id="action-{mine.pk}"' in html
    assert f'id="action-{other.pk}"' not in html
    assert reverse("dashboard:actions") + "?task=DOCS" in html


def test_an_unknown_task_is_404(viewer_client):
    assert viewer_client.get(reverse("dashboard:task", args=["NOSUCH"])).status_code == 404


def test_a_viewer_sees_no_buttons_and_cannot_post_them(viewer_client):
    make_task(schedule_start_time="now", schedule_next_run_at=timezone.now())
    html = viewer_client.get(reverse("dashboard:tasks")).content.decode()
    assert 'id="sync-DOCS"' not in html and 'id="schedule-DOCS"' not in html
    sync = viewer_client.post(reverse("dashboard:task-synchronize", args=["DOCS"]))
    pause = viewer_client.post(reverse("dashboard:task-schedule", args=["DOCS"]), {"paused": "1"})
    assert sync.status_code == pause.status_code == 403
    assert not Action.objects.exists()
    assert not FetchTask.objects.get().schedule_paused


def test_synchronize_now_queues_an_audited_synchronize_of_the_task(operator_client):
    make_task()
    page = reverse("dashboard:task", args=["DOCS"])
    response = operator_client.post(
        reverse("dashboard:task-synchronize", args=["DOCS"]), {"next": page}
    )
    assert response.status_code == 302 and response["Location"] == page
    action = Action.objects.get()
    assert (action.fetch_action, action.tasks, action.status) == ("SYNCHRONIZE", "DOCS", "Queued")
    assert action.params == {"TaskSections": "DOCS"}
    assert action.submitted_by == "operator"
    entry = AuditEntry.objects.get(verb="submit")
    assert (entry.user, entry.via, entry.action_id) == ("operator", "dashboard", action.pk)


def test_synchronize_now_of_an_unknown_task_is_404_and_queues_nothing(operator_client):
    response = operator_client.post(reverse("dashboard:task-synchronize", args=["NOSUCH"]))
    assert response.status_code == 404
    assert not Action.objects.exists()


def test_synchronize_now_needs_a_post(operator_client):
    make_task()
    assert (
        operator_client.get(reverse("dashboard:task-synchronize", args=["DOCS"])).status_code == 405
    )


def test_pause_and_resume_the_schedule_audited(operator_client):
    make_task(schedule_start_time="now", schedule_next_run_at=timezone.now())
    url = reverse("dashboard:task-schedule", args=["DOCS"])
    operator_client.post(url, {"paused": "1"})
    assert FetchTask.objects.get().schedule_paused
    html = operator_client.get(reverse("dashboard:tasks")).content.decode()
    assert "schedule paused" in html and "Resume schedule" in html
    operator_client.post(url, {"paused": "0"})
    assert not FetchTask.objects.get().schedule_paused
    entries = list(AuditEntry.objects.order_by("id").values_list("verb", "user", "via", "detail"))
    assert entries == [
        ("pause", "operator", "dashboard", "schedule of task DOCS"),
        ("resume", "operator", "dashboard", "schedule of task DOCS"),
    ]


def test_a_paused_schedule_queues_no_run_and_a_resumed_one_does():
    now = timezone.now()
    make_task(schedule_start_time="now", schedule_repeat_secs=60, schedule_next_run_at=now)
    schedules.set_schedule_paused(name="DOCS", paused=True, changed_by="op")
    assert schedules.queue_due_synchronizes(now=now) == []
    assert not Action.objects.exists()
    schedules.set_schedule_paused(name="DOCS", paused=False, changed_by="op")
    (queued,) = schedules.queue_due_synchronizes(now=now)
    assert queued.tasks == "DOCS"


def test_reloading_the_tasks_file_keeps_a_paused_schedule(tmp_path):
    from connector.tasks_config import load_tasks_file

    (tmp_path / "docs").mkdir()
    ini = tmp_path / "tasks.cfg"
    ini.write_text(
        "[FetchTasks]\nNumber=1\n0=DOCS\n\n[DOCS]\nDirectoryPathCSVs=docs\n"
        "ScheduleStartTime=now\nScheduleRepeatSecs=60\n"
    )
    load_tasks_file(ini)
    schedules.set_schedule_paused(name="DOCS", paused=True)
    ini.write_text(ini.read_text().replace("60", "120"))
    load_tasks_file(ini)
    assert FetchTask.objects.get().schedule_paused


def test_the_page_query_count_does_not_grow_with_the_actions(
    viewer_client, django_assert_max_num_queries
):
    make_task()
    for _ in range(30):
        finish(start(synchronize()), counts={"DOCS": {"seen": 1}})
    with django_assert_max_num_queries(15):
        viewer_client.get(reverse("dashboard:tasks"))


def test_the_nav_links_to_tasks_and_workers(viewer_client):
    html = viewer_client.get(reverse("dashboard:home")).content.decode()
    assert reverse("dashboard:tasks") in html and reverse("dashboard:workers") in html


def test_statuses_are_named_in_text_not_only_colour(viewer_client):
    make_task()
    start(synchronize())
    html = viewer_client.get(reverse("dashboard:tasks")).content.decode()
    assert f">{Status.PROCESSING}<" in html


def test_the_list_stops_counting_documents_at_its_cap_and_the_task_page_counts_all(
    viewer_client, monkeypatch
):
    task = make_task()
    make_task("MAIL")
    now = timezone.now()
    DatastoreDocument.objects.bulk_create(
        DatastoreDocument(task=task, identifier=f"i{n}", path=f"{n}", size=1, last_ingested_at=now)
        for n in range(5)
    )
    monkeypatch.setattr(tasks, "DOCUMENTS_COUNTED", 3)
    assert "more than 3 documents" in viewer_client.get(reverse("dashboard:tasks")).content.decode()
    assert tasks.task_detail("DOCS").documents == 5


def test_the_buttons_need_the_csrf_token(operator):
    from django.test import Client

    make_task(schedule_start_time="now", schedule_next_run_at=timezone.now())
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(operator)
    page = strict.get(reverse("dashboard:tasks")).content.decode()
    assert page.count('name="csrfmiddlewaretoken"') >= 2  # both forms carry it
    assert strict.post(reverse("dashboard:task-synchronize", args=["DOCS"])).status_code == 403
    assert (
        strict.post(reverse("dashboard:task-schedule", args=["DOCS"]), {"paused": "1"}).status_code
        == 403
    )
    assert not Action.objects.exists() and not FetchTask.objects.get().schedule_paused
