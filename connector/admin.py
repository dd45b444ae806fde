from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from connector.models import Action, ActionLogLine, FetchTask, QueueState, WorkerProcess


@admin.register(FetchTask)
class FetchTaskAdmin(admin.ModelAdmin):
    list_display = ["name", "directory_paths", "file_match", "directory_recursive", "source"]
    search_fields = ["name"]


class ActionLogLineInline(admin.TabularInline):
    model = ActionLogLine
    extra = 0
    can_delete = False
    readonly_fields = ["logged_at", "level", "message"]


@admin.register(Action)
class ActionAdmin(admin.ModelAdmin):
    """Read-only: actions change state only through the queue (the endpoint, the dashboard)."""

    list_display = ["token", "fetch_action", "status", "priority", "queued_at", "finished_at"]
    list_filter = ["status", "queue", "fetch_action"]
    search_fields = ["token", "action_id"]
    inlines = [ActionLogLineInline]

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(QueueState)
class QueueStateAdmin(admin.ModelAdmin):
    list_display = ["name", "paused", "changed_at", "changed_by"]


@admin.register(WorkerProcess)
class WorkerProcessAdmin(admin.ModelAdmin):
    list_display = ["id", "hostname", "pid", "heartbeat_at", "stopping"]
