from __future__ import annotations

from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "dashboard"
    verbose_name = "Dashboard"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from connector.signals import action_changed
        from dashboard import broadcast

        action_changed.connect(broadcast.action_changed, dispatch_uid="dashboard.broadcast")
