"""The audit in Django's admin: readable by staff, changeable by nobody."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from connector import audit
from connector.models import AuditEntry, AuditVerb, AuditVia

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
