"""Small display helpers for the dashboard's templates (plain text, escaped by the template)."""

from __future__ import annotations

from typing import Any

from django import template

register = template.Library()


@register.filter
def counts_summary(counts: Any) -> str:
    """``{"DOCS": {"seen": 3, "added": 1}}`` as ``DOCS: seen 3, added 1``."""
    if not isinstance(counts, dict):
        return ""
    parts = []
    for task, numbers in counts.items():
        if isinstance(numbers, dict):
            figures = ", ".join(f"{name} {value}" for name, value in numbers.items())
            parts.append(f"{task}: {figures}" if figures else str(task))
        else:
            parts.append(f"{task}: {numbers}")
    return "; ".join(parts)


@register.filter
def count_rows(counts: Any) -> list[tuple[str, list[tuple[str, Any]]]]:
    """Counts per task as (task, [(name, value), ...]) for a table."""
    if not isinstance(counts, dict):
        return []
    return [
        (str(task), list(numbers.items()) if isinstance(numbers, dict) else [("", numbers)])
        for task, numbers in counts.items()
    ]


@register.filter
def task_list(tasks: str) -> list[str]:
    return [task for task in (tasks or "").split(",") if task]
