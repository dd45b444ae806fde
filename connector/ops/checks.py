"""System checks for settings that work but are risky (errors stop the start in settings)."""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Warning, register


@register()
def shared_database_needs_shared_secret_key(**kwargs: Any) -> list[CheckMessage]:
    """With PostgreSQL the processes usually run on several machines, and a key
    generated per machine makes each reject the others' sessions and CSRF tokens."""
    engine = settings.DATABASES["default"]["ENGINE"]
    if engine == "django.db.backends.postgresql" and not os.environ.get("SECRET_KEY"):
        return [
            Warning(
                "DATABASE_URL points to PostgreSQL but SECRET_KEY is not set: each machine"
                " generates its own key, so sessions signed on one are refused by another.",
                hint="Set the same SECRET_KEY for every process (see docs/deployment.md).",
                id="connector.W001",
            )
        ]
    return []
