"""Reads that feed the dashboard's templates."""

from __future__ import annotations

from django.db.models import QuerySet

from connector import queue
from connector.models import Action


def recent_actions(*, limit: int = 50) -> QuerySet[Action]:
    return Action.objects.order_by("-queued_at", "-id").only(
        "token", "fetch_action", "tasks", "status", "progress", "stage",
        "queued_at", "started_at", "finished_at", "stop_requested", "priority",
    )[:limit]  # fmt: skip


def queue_overview() -> list[dict[str, object]]:
    return [
        {
            "name": name,
            "paused": queue.is_paused(name),
            "counts": queue.queue_counts(name),
            "maximum_threads": queue.maximum_threads(name),
        }
        for name in queue.queue_names()
    ]
