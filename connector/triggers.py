"""What the action table's triggers (``connector.writers``, ``connector.outcomes``)
share: dropping one, and telling whether one is there.

On PostgreSQL a trigger runs a function of its own, dropped with it; on
SQLite the trigger's body is inline.
"""

from __future__ import annotations

from django.db.backends.base.base import BaseDatabaseWrapper


def drop(connection: BaseDatabaseWrapper, *, trigger: str, table: str, function: str) -> None:
    """Drop ``trigger`` on ``table`` (and, on PostgreSQL, its ``function``), if there."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {table}")
            cursor.execute(f"DROP FUNCTION IF EXISTS {function}()")
        else:
            cursor.execute(f"DROP TRIGGER IF EXISTS {trigger}")


def exists(connection: BaseDatabaseWrapper, trigger: str) -> bool:
    """Whether ``trigger`` is there (a check for tests and operators)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT 1 FROM pg_trigger WHERE tgname = %s AND NOT tgisinternal", [trigger]
            )
        else:
            cursor.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = %s", [trigger]
            )
        return cursor.fetchone() is not None
