"""How far an action is, as the pages show it (connector/progress.py says what is known)."""

from __future__ import annotations

from django import template

from connector import progress
from connector.models import Action
from dashboard.templatetags.tasks_tags import duration

register = template.Library()


@register.filter
def progress_of(action: Action) -> progress.Progress:
    return progress.of(action)


@register.filter
def progress_text(action: Action) -> str:
    """One line: ``40 % of about 1,200 · about 2 min left`` or, with no total,
    ``300 listed, 120 ingested · 25/s · 12 s so far``."""
    shown = progress.of(action)
    if shown.percent is None:
        parts = [f"{shown.listed:,} listed, {shown.ingested:,} ingested"]
        if shown.rate is not None:
            parts.append(f"{shown.rate:,.0f}/s")
        if shown.elapsed is not None and action.status == "Processing":
            parts.append(f"{duration(shown.elapsed)} so far")
        return " · ".join(parts)
    text = f"{shown.percent}%"
    if shown.estimated and shown.total is not None:
        text += f" of about {shown.total:,}"
    if shown.remaining is not None:
        text += f" · about {duration(shown.remaining)} left"
    return text
