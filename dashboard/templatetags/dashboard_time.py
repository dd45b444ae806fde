"""Every time a page shows, one rule (issue 16, item 9).

The server writes each time as ``<time datetime="...Z" data-when="KIND">`` with
UTC text that says "UTC", and the exact UTC instant in ``title``;
``static/js/dashboard.js`` rewrites the text into the browser's zone, with the
zone shown. Without JavaScript the UTC text stands, labelled. Ages ("3 min
ago") are counted here, where the clock is the one that wrote the times; the
browser only adds the instant to their ``title``.

Kinds: ``datetime`` (date and time to the second), ``time`` (the time of day
to the second, for lines of one day such as a log), ``minute`` (hours and
minutes, for a chart's minutes).
"""

from __future__ import annotations

from datetime import UTC, datetime

from django import template
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

register = template.Library()

FORMATS = {"datetime": "%Y-%m-%d %H:%M:%S", "time": "%H:%M:%S", "minute": "%H:%M"}


def _utc(value: datetime) -> datetime:
    if timezone.is_naive(value):
        value = timezone.make_aware(value, UTC)
    return value.astimezone(UTC)


@register.filter(name="utc_iso")
def iso(value: datetime) -> str:
    """``2026-12-06T22:11:42.123456Z``: what ``datetime`` holds and the browser parses."""
    return _utc(value).isoformat().replace("+00:00", "Z")


def exact(value: datetime) -> str:
    """The exact UTC instant, for ``title``."""
    return _utc(value).strftime("%Y-%m-%d %H:%M:%S UTC")


@register.filter(is_safe=True)
def when(value: datetime | None, kind: str = "datetime") -> SafeString | str:
    """A ``<time>`` of ``value`` (see the module docstring); empty for None."""
    if not isinstance(value, datetime):
        return ""
    kind = kind if kind in FORMATS else "datetime"
    text = _utc(value).strftime(FORMATS[kind]) + " UTC"
    return format_html(
        '<time datetime="{}" data-when="{}" title="{}">{}</time>',
        iso(value),
        kind,
        exact(value),
        text,
    )


@register.filter(is_safe=True)
def utc_text(value: datetime | None, kind: str = "minute") -> str:
    """The UTC text alone, where no element may stand (an SVG ``<title>``)."""
    if not isinstance(value, datetime):
        return ""
    return _utc(value).strftime(FORMATS.get(kind, FORMATS["datetime"])) + " UTC"


def age_text(seconds: float) -> str:
    """``40 s ago``, ``2 min ago``, ``3 h 5 min ago``, ``2 d 4 h ago``; ahead: ``0 s ago``."""
    whole = int(max(seconds, 0))
    if whole < 60:
        return f"{whole} s ago"
    if whole < 3600:
        return f"{whole // 60} min ago"
    if whole < 86400:
        minutes = whole % 3600 // 60
        return f"{whole // 3600} h {minutes} min ago" if minutes else f"{whole // 3600} h ago"
    hours = whole % 86400 // 3600
    return f"{whole // 86400} d {hours} h ago" if hours else f"{whole // 86400} d ago"


@register.filter(is_safe=True)
def ago(value: datetime | None) -> SafeString | str:
    """A ``<time>`` whose text is the age of ``value`` ("2 min ago"), the instant in ``title``."""
    if not isinstance(value, datetime):
        return ""
    return format_html(
        '<time datetime="{}" data-when="age" title="{}">{}</time>',
        iso(value),
        exact(value),
        age_text((timezone.now() - _utc(value)).total_seconds()),
    )
