from __future__ import annotations

from django.apps import AppConfig, apps
from django.contrib.auth.signals import user_logged_out
from django.db.models.signals import post_migrate, post_save


class DashboardConfig(AppConfig):
    name = "dashboard"
    verbose_name = "Dashboard"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from connector.models import QueueState
        from connector.signals import action_changed
        from dashboard import broadcast, roles, signout

        action_changed.connect(broadcast.action_changed, dispatch_uid="dashboard.broadcast")
        # Pause and Resume save a QueueState row, whoever asks (dashboard or ACI).
        post_save.connect(
            broadcast.queue_state_saved, sender=QueueState, dispatch_uid="dashboard.queue_state"
        )
        # Signing out closes that session's live dashboards at once.
        user_logged_out.connect(signout.user_logged_out, dispatch_uid="dashboard.signout")
        # post_migrate is sent per app with models, and this app has none: follow
        # the connector's, whose permissions the groups hold.
        post_migrate.connect(
            roles.ensure_groups_after_migrate,
            sender=apps.get_app_config("connector"),
            dispatch_uid="dashboard.roles",
        )
