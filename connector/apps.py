from __future__ import annotations

from importlib import import_module

from django.apps import AppConfig
from django.conf import settings


class ConnectorConfig(AppConfig):
    name = "connector"
    verbose_name = "Connector"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from connector.ops import checks  # noqa: F401 - registers the system checks

        for module in settings.CONNECTOR_FETCH_ACTION_MODULES:
            import_module(module)
