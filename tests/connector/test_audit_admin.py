"""The audit in Django's admin: readable by staff, changeable by nobody."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone

from connector import audit, queue
from connector.models import Action, AuditEntry, AuditVerb, AuditVia, QueueState, WorkerProcess

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(User.objects.create_superuser("root", password="a-long-enough-password"))
    return client


def test_a_superuser_reads_the_audit_but_cannot_add_change_or_delete(admin_client):
    audit.record_done(
        verb=AuditVerb.PAUSE, who=audit.Who(AuditVia.ENDPOINT, "", "10.1.1.1"), queue="fetch"
    )
    entry = AuditEntry.objects.get()
    listing = admin_client.get(reverse("admin:connector_auditentry_changelist"))
    assert listing.status_code == 200 and "10.1.1.1" in listing.content.decode()
    assert admin_client.get(reverse("admin:connector_auditentry_add")).status_code == 403
    delete = reverse("admin:connector_auditentry_delete", args=[entry.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    change = reverse("admin:connector_auditentry_change", args=[entry.pk])
    page = admin_client.get(change)
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    assert AuditEntry.objects.count() == 1


# --- Issue 14 item 4: the admin cannot change a queue, an action or a worker -----------


def _worker() -> WorkerProcess:
    now = timezone.now()
    return WorkerProcess.objects.create(
        id="w1", hostname="h", pid=1, started_at=now, heartbeat_at=now
    )


def test_the_admin_cannot_pause_a_queue_behind_the_audits_back(admin_client):
    QueueState.objects.create(name="fetch", paused=False)
    change = reverse("admin:connector_queuestate_change", args=["fetch"])
    page = admin_client.get(change)
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    answer = admin_client.post(change, {"name": "fetch", "paused": "on", "_save": "Save"})
    assert answer.status_code == 403
    assert not QueueState.objects.get(name="fetch").paused
    assert not queue.is_paused("fetch")
    assert AuditEntry.objects.count() == 0
    assert admin_client.get(reverse("admin:connector_queuestate_add")).status_code == 403
    delete = reverse("admin:connector_queuestate_delete", args=["fetch"])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403


def test_the_admin_cannot_add_change_or_delete_workers(admin_client):
    worker = _worker()
    assert admin_client.get(reverse("admin:connector_workerprocess_add")).status_code == 403
    change = reverse("admin:connector_workerprocess_change", args=[worker.pk])
    answer = admin_client.post(change, {"id": "w1", "hostname": "h", "pid": 2, "stopping": "on"})
    assert answer.status_code == 403
    delete = reverse("admin:connector_workerprocess_delete", args=[worker.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    worker.refresh_from_db()
    assert worker.pid == 1 and not worker.stopping


def test_the_admin_cannot_change_or_delete_actions(admin_client):
    action = queue.submit_action(queue="fetch", fetch_action="Identifiers", params={})
    assert admin_client.get(reverse("admin:connector_action_add")).status_code == 403
    change = reverse("admin:connector_action_change", args=[action.pk])
    answer = admin_client.post(change, {"status": "Finished", "priority": 9})
    assert answer.status_code == 403
    delete = reverse("admin:connector_action_delete", args=[action.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    listing = admin_client.post(
        reverse("admin:connector_action_changelist"),
        {"action": "delete_selected", "_selected_action": [action.pk], "post": "yes"},
    )
    assert listing.status_code in {200, 302, 403}
    action.refresh_from_db()
    assert action.status == "Queued" and action.priority == 0
    assert Action.objects.filter(pk=action.pk).exists()


def test_the_admin_spells_worker_processes(admin_client):
    _worker()
    index = admin_client.get(reverse("admin:index")).content.decode()
    assert "Worker processes" in index and "Worker processs" not in index
