from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils import timezone

from connector import schedules
from connector.models import (
    Action,
    ActionLogLine,
    AuditEntry,
    DatastoreDocument,
    FetchTask,
    QueueState,
    WorkerProcess,
)


@admin.register(FetchTask)
class FetchTaskAdmin(admin.ModelAdmin):
    """Every key of a task section, grouped as docs/configuration.md lists them.

    Lists are edited as JSON (``["*.txt", "*.md"]``). A task loaded from a file
    is overwritten by the next ``loadtasks`` of that file.
    """

    list_display = ["name", "directory_paths", "file_match", "directory_recursive", "source"]
    search_fields = ["name"]
    readonly_fields = ["source", "updated_at", "schedule_next_run_at", "schedule_runs_done"]
    fieldsets = [
        (None, {"fields": ["name", "source", "updated_at"]}),
        (
            "Documents",
            {
                "fields": [
                    "directory_paths",
                    "file_match",
                    "file_exclude_match",
                    "directory_recursive",
                    "directory_follow_symlinks",
                ]
            },
        ),
        ("Ingestion", {"fields": ["ingest_directory", "ingest_url"]}),
        (
            "Documents as text",
            {
                "fields": [
                    "extract_text",
                    "extract_types",
                    "extract_max_bytes",
                    "extract_timeout_seconds",
                    "extract_max_text_bytes",
                    "extract_archives",
                ]
            },
        ),
        ("Collect", {"fields": ["collect_destinations"]}),
        (
            "Schedule",
            {
                "fields": [
                    "schedule_start_time",
                    "schedule_repeat_secs",
                    "schedule_cycles",
                    "schedule_next_run_at",
                    "schedule_runs_done",
                ]
            },
        ),
    ]

    def save_model(self, request: HttpRequest, obj: FetchTask, form: Any, change: bool) -> None:
        # As loadtasks does: a new or changed schedule starts afresh, any
        # other edit leaves the next run where it is.
        if not change or set(schedules.SCHEDULE_FIELDS) & set(form.changed_data):
            schedules.reset_schedule(obj, now=timezone.now())
        super().save_model(request, obj, form, change)


@admin.register(DatastoreDocument)
class DatastoreDocumentAdmin(admin.ModelAdmin):
    """Read-only: Synchronize keeps it in step with what was ingested."""

    list_display = ["path", "task", "size", "modified", "held", "last_ingested_at"]
    list_filter = ["task", "held"]
    search_fields = ["path", "identifier"]
    list_select_related = ["task"]

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class ActionLogLineInline(admin.TabularInline):
    model = ActionLogLine
    extra = 0
    can_delete = False
    readonly_fields = ["logged_at", "level", "message"]


class ReadOnlyAdmin(admin.ModelAdmin):
    """Shown, never changed here: the queue's own functions change these rows and
    audit each change (connector.queue; the endpoint and the dashboard call them).
    A change made in the admin would skip both the queue's rules and the audit."""

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Action)
class ActionAdmin(ReadOnlyAdmin):
    """Actions change state only through the queue (the endpoint, the dashboard);
    retention deletes old final ones."""

    list_display = ["token", "fetch_action", "status", "priority", "queued_at", "finished_at"]
    list_filter = ["status", "queue", "fetch_action"]
    search_fields = ["token", "action_id"]
    inlines = [ActionLogLineInline]


@admin.register(QueueState)
class QueueStateAdmin(ReadOnlyAdmin):
    """Pause and Resume go through queue.set_paused (the dashboard, the endpoint), which audits."""

    list_display = ["name", "paused", "changed_at", "changed_by"]


@admin.register(WorkerProcess)
class WorkerProcessAdmin(ReadOnlyAdmin):
    """Workers keep their own rows (heartbeat, stopping); recovery forgets dead ones."""

    list_display = ["id", "hostname", "pid", "heartbeat_at", "stopping"]


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """Read-only: the queue writes the audit; nobody edits or deletes what it recorded."""

    list_display = ["at", "verb", "outcome", "token", "queue", "user", "client", "via", "detail"]
    list_filter = ["verb", "outcome", "via"]
    search_fields = ["token", "user", "client"]

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
