"""Display helpers of the Tasks and Workers pages."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import template

register = template.Library()


@register.filter
def duration(value: Any) -> str:
    """A timedelta or a number of seconds as ``2 h 5 min``, ``4 min 10 s``, ``1.2 s``."""
    if value is None or value == "":
        return ""
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds < 10:
        return f"{round(seconds, 2):g} s"
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "min"), (secs, "s")]
    shown = [f"{n} {unit}" for n, unit in parts if n]
    return " ".join(shown[:2])
