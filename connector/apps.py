from __future__ import annotations

from importlib import import_module
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.db import connections
from django.db.models.signals import post_migrate


class ConnectorConfig(AppConfig):
    name = "connector"
    verbose_name = "Connector"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from connector.ops import checks  # noqa: F401 - registers the system checks

        for module in settings.CONNECTOR_FETCH_ACTION_MODULES:
            import_module(module)
        post_migrate.connect(_install_triggers, sender=self)


def _install_triggers(*, using: str, plan: list[Any] | None = None, **_: Any) -> None:
    """Put back the action table's triggers after every migrate that applied
    something: on SQLite a migration that rebuilds the action table drops them
    (``connector.writers``, ``connector.outcomes``)."""
    from connector import outcomes, writers
    from connector.models import OutcomeMinute, TaskHold

    connection = connections[using]
    if not plan:
        return
    tables = connection.introspection.table_names()
    if TaskHold._meta.db_table in tables:
        writers.install(connection)
    if OutcomeMinute._meta.db_table in tables:
        outcomes.install(connection)
