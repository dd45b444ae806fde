"""An action's status as the ACI shows it (QueueInfo GetStatus and Progress), and ACI times."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from django.utils import timezone

from connector import progress, writers
from connector.aci.queries import result_sizes, result_slice
from connector.aci.render import Element, el
from connector.models import Action, Status
from connector.writers import Wait

# Spelled out rather than strftime("%b"), which follows the process locale.
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

#: The documented order of count attributes; counts not listed follow by name.
COUNT_ORDER = (
    "seen",
    "added",
    "updated",
    "deleted",
    "unchanged",
    "errors",
    "extractfailed",
    "collected",
    "inserted",
    "holds",
    "releasedholds",
)


#: How many identifiers (or task entries) GetStatus shows of an action with a Token,
#: unless MaxIdentifiers says otherwise.
DEFAULT_MAX_IDENTIFIERS = 1000
#: The most MaxIdentifiers may ask for. Identifiers keeps up to 100000 per action
#: (connector.fetch.identifiers.MAX_IDENTIFIERS); an answer shows at most this
#: many of them (about 2 MB of XML), and the rest are read in further pages.
MAX_IDENTIFIERS_LIMIT = 10_000


@dataclass(frozen=True)
class IdentifierPage:
    """Which entries of an action's lists to show: ``size`` of them from ``start`` (1-based).

    The lists (``<identifiers>``, ``<tasks>``) are read page by page from the
    database, never whole: one can hold 100000 identifiers.
    """

    start: int = 1
    size: int = DEFAULT_MAX_IDENTIFIERS


def paging(
    *, total: int, start: int, shown: int, next_query: dict[str, object]
) -> dict[str, object]:
    """The attributes that say where a page is and how to ask for the next one.

    ``more`` is true while entries after this page remain; ``next`` is then the
    parameters to send (with the same request otherwise) for the next page.
    """
    following = start + shown
    more = following <= total
    attrs: dict[str, object] = {"total": total, "start": start, "shown": shown, "more": more}
    if more:
        attrs["next"] = urlencode({**next_query, "Start": following})
    return attrs


def _local(moment: datetime) -> datetime:
    return timezone.localtime(moment, timezone.get_default_timezone())


def aci_time(moment: datetime) -> str:
    """``YYYY-Mon-DD HH:MM:SS`` in the configured time zone."""
    t = _local(moment)
    return f"{t.year:04d}-{MONTHS[t.month - 1]}-{t.day:02d} {t:%H:%M:%S}"


def error_time(moment: datetime) -> str:
    """``dd Mon yy HH:MM:SS`` in the configured time zone (the error envelope's ``errortime``)."""
    t = _local(moment)
    return f"{t.day:02d} {MONTHS[t.month - 1]} {t.year % 100:02d} {t:%H:%M:%S}"


def whole_seconds(start: datetime, end: datetime) -> int:
    return max(0, int((end - start).total_seconds()))


def documentcounts(counts: dict[str, Any]) -> Element:
    rows = []
    for task, per_task in counts.items():
        if not isinstance(per_task, dict):
            continue
        names = [name for name in COUNT_ORDER if name in per_task]
        names += sorted(name for name in per_task if name not in COUNT_ORDER)
        attrs: dict[str, object] = {"task": task}
        attrs.update((name, per_task[name]) for name in names)
        rows.append(el("documentcount", attrs=attrs))
    return el("documentcounts", children=rows)


def action_status(
    action: Action,
    *,
    now: datetime | None = None,
    page: IdentifierPage,
    waits: list[Wait] | None = None,
) -> Element:
    """The ``<action>`` element of the protocol page; elements that do not apply are left out.

    ``action`` comes from ``connector.aci.queries`` (its result is left in the
    database); ``page`` says which entries of its lists to show; ``waits``: the
    held tasks a Queued action waits for (``connector.writers.waits``).
    """
    now = now or timezone.now()
    children = [
        el("token", action.token),
        el("status", action.status),
        el("queued_time", aci_time(action.queued_at)),
    ]
    # A queued action's wait is still going on; a cancelled one waited until it ended.
    left_queue = action.started_at or action.finished_at or now
    children.append(el("time_in_queue", whole_seconds(action.queued_at, left_queue)))
    if action.started_at:
        children.append(el("process_start_time", aci_time(action.started_at)))
        end = action.finished_at or now
        children.append(el("time_processing", whole_seconds(action.started_at, end)))
    if action.finished_at:
        children.append(el("process_end_time", aci_time(action.finished_at)))
    if action.counts:
        children.append(documentcounts(action.counts))
    children += [
        el("fetchaction", action.fetch_action),
        el("priority", action.priority),
        el("progress", action.progress),
        *progress_elements(action, now),
    ]
    if action.status == Status.ERROR:
        children.append(el("error", action.error))
    if action.stop_requested and action.status == Status.PROCESSING:
        children.append(el("stoprequested", True))
    children += waiting_elements(action, waits)
    if action.action_id:
        children.append(el("actionid", action.action_id))
    children += result_elements(action, page)
    return el("action", children=children)


def progress_elements(action: Action, now: datetime | None = None) -> list[Element]:
    """Extensions after ``<progress>`` for a Synchronize (connector/progress.py):
    ``<progressknown>false</progressknown>`` when the percentage is of no known
    total (a first run: the counts say how far it is); ``<expecteddocuments
    basis="previous|listed">`` the documents it expects in all, an estimate from
    the last complete runs or exact once listed; ``<time_remaining>`` (whole
    seconds, an estimate at the rate so far) while it runs with such a total."""
    shown = progress.of(action, now)
    if shown.basis not in progress.OF_DOCUMENTS:
        return []
    if shown.percent is None:
        return [el("progressknown", False)]
    elements = []
    if shown.total is not None:
        elements.append(el("expecteddocuments", shown.total, attrs={"basis": shown.basis}))
    if shown.remaining is not None:
        elements.append(el("time_remaining", int(shown.remaining)))
    return elements


def waiting_elements(action: Action, waits: list[Wait] | None) -> list[Element]:
    """``<waitingfor task="T">token</waitingfor>`` (extension), one per task a Queued
    action waits for: the Processing action that holds it (one writer per task)."""
    if action.status != Status.QUEUED:
        return []
    return [el("waitingfor", wait.token, attrs={"task": wait.task}) for wait in waits or []]


def queued_answer(action: Action) -> list[Element]:
    """What Fetch and Duplicate answer: the new action's token, and (extension) the
    running writer it waits for when another action holds one of its tasks."""
    return [el("token", action.token), *waiting_elements(action, writers.waits_of(action))]


def result_elements(action: Action, page: IdentifierPage) -> list[Element]:
    """One page of ``<tasks>`` (per-document success and failure) and of ``<identifiers>``."""
    sizes = result_sizes(action)
    next_query = {"Token": action.token, "MaxIdentifiers": page.size or DEFAULT_MAX_IDENTIFIERS}
    elements = []
    successes, failures = sizes.get("success", 0), sizes.get("failed", 0)
    if successes or failures:
        # One list of entries: the successes, then the failures.
        offset = page.start - 1
        shown_success = result_slice(action.pk, "success", offset, page.size)
        failed_offset = max(0, offset - successes)
        shown_failed = result_slice(
            action.pk, "failed", failed_offset, page.size - len(shown_success)
        )
        tasks = [el("success", identifier) for identifier in shown_success]
        tasks += [_failure(failure) for failure in shown_failed]
        attrs = paging(
            total=successes + failures,
            start=page.start,
            shown=len(tasks),
            next_query=next_query,
        )
        elements.append(el("tasks", attrs=attrs, children=tasks))
    if "identifiers" in sizes:
        items = result_slice(action.pk, "identifiers", page.start - 1, page.size)
        attrs = paging(
            total=sizes["identifiers"],
            start=page.start,
            shown=len(items),
            next_query=next_query,
        )
        elements.append(el("identifiers", attrs=attrs, children=[_identifier(i) for i in items]))
    return elements


def _failure(failure: object) -> Element:
    if isinstance(failure, dict):
        return el(
            "failed", failure.get("identifier", ""), attrs={"reason": failure.get("reason", "")}
        )
    return el("failed", failure)


def _identifier(item: object) -> Element:
    if not isinstance(item, dict):
        return el("identifier", item)
    attrs = {name: value for name, value in item.items() if name != "identifier"}
    return el("identifier", item.get("identifier", ""), attrs=attrs)
