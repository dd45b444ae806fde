"""An action's status as the ACI shows it (QueueInfo GetStatus and Progress), and ACI times."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils import timezone

from connector import writers
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
    "collected",
    "inserted",
    "holds",
    "releasedholds",
)


#: How many identifiers GetStatus shows of an action unless MaxIdentifiers says otherwise.
DEFAULT_MAX_IDENTIFIERS = 1000
#: Identifiers keeps at most 100000 (connector.fetch.identifiers.MAX_IDENTIFIERS).
MAX_IDENTIFIERS_LIMIT = 100_000


@dataclass(frozen=True)
class IdentifierPage:
    """Which identifiers of a result to show: ``size`` of them from ``start`` (1-based).

    A result can hold 100000 identifiers; rendering them all in every GetStatus
    would make each answer megabytes, so a client pages through them instead.
    """

    start: int = 1
    size: int = DEFAULT_MAX_IDENTIFIERS


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
    page: IdentifierPage | None = None,
    waits: list[Wait] | None = None,
) -> Element:
    """The ``<action>`` element of the protocol page; elements that do not apply are left out.

    ``waits``: the held tasks a Queued action waits for (``connector.writers.waits``).
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
    ]
    if action.status == Status.ERROR:
        children.append(el("error", action.error))
    if action.stop_requested and action.status == Status.PROCESSING:
        children.append(el("stoprequested", True))
    children += waiting_elements(action, waits)
    if action.action_id:
        children.append(el("actionid", action.action_id))
    children += result_elements(action.result, page=page)
    return el("action", children=children)


def waiting_elements(action: Action, waits: list[Wait] | None) -> list[Element]:
    """``<waitingfor task="T">token</waitingfor>`` (extension), one per task a Queued
    action waits for: the Processing action that holds it (one writer per task)."""
    if action.status != Status.QUEUED:
        return []
    return [el("waitingfor", wait.token, attrs={"task": wait.task}) for wait in waits or []]


def queued_answer(action: Action) -> list[Element]:
    """What Fetch and Duplicate answer: the new action's token, and (extension) the
    running writer it waits for when another action holds one of its tasks."""
    waits = writers.waits([action.pk]).get(action.pk) if action.writes else None
    return [el("token", action.token), *waiting_elements(action, waits)]


def result_elements(result: dict[str, Any], *, page: IdentifierPage | None = None) -> list[Element]:
    """``<tasks>`` (per-document success and failure) and ``<identifiers>`` of a result."""
    if not isinstance(result, dict):
        return []
    elements = []
    success = result.get("success") or []
    failed = result.get("failed") or []
    if success or failed:
        tasks = [el("success", identifier) for identifier in success]
        for failure in failed:
            if isinstance(failure, dict):
                tasks.append(
                    el(
                        "failed",
                        failure.get("identifier", ""),
                        attrs={"reason": failure.get("reason", "")},
                    )
                )
            else:
                tasks.append(el("failed", failure))
        elements.append(el("tasks", children=tasks))
    if "identifiers" in result:
        elements.append(identifiers_element(result["identifiers"], page or IdentifierPage()))
    return elements


def identifiers_element(identifiers: object, page: IdentifierPage) -> Element:
    """One page of identifiers; ``total`` and ``start`` let a client ask for the next."""
    items = identifiers if isinstance(identifiers, list) else []
    shown = items[page.start - 1 : page.start - 1 + page.size]
    return el(
        "identifiers",
        attrs={"total": len(items), "start": page.start},
        children=[_identifier(item) for item in shown],
    )


def _identifier(item: object) -> Element:
    if not isinstance(item, dict):
        return el("identifier", item)
    attrs = {name: value for name, value in item.items() if name != "identifier"}
    return el("identifier", item.get("identifier", ""), attrs=attrs)
