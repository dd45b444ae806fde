"""``action=QueueInfo``: look at and steer the actions of a queue.

Every QueueAction reads its parameters and finds its action before it asks the
queue module for a change, so a refused request changes nothing; the queue's
guarded updates decide races (a Cancel racing a claim gets ERRORNOTQUEUED).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from django.utils import timezone

from connector import queue, writers
from connector.aci.actions import available_fetch_actions, queue_full_error, read_priority
from connector.aci.errors import AciError, from_parameter_error
from connector.aci.queries import SORT_FIELDS, ActionFilter, find_action, list_actions, live_workers
from connector.aci.render import Element, el
from connector.aci.request import AciRequest
from connector.aci.status import (
    DEFAULT_MAX_IDENTIFIERS,
    MAX_IDENTIFIERS_LIMIT,
    IdentifierPage,
    action_status,
    documentcounts,
    queued_answer,
    waiting_elements,
)
from connector.fetch.base import UnknownFetchAction, get_fetch_action
from connector.models import Action, AuditVia, Status
from connector.params import InvalidParameter, ParameterError, Params
from connector.tokens import InvalidToken, canonical_token

logger = logging.getLogger(__name__)

#: GetStatus lists at most this many actions unless MaxResults says otherwise.
DEFAULT_MAX_RESULTS = 1000
MAX_RESULTS_LIMIT = 100_000

STATES = {status.value.lower(): status.value for status in Status}
TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d")

QueueHandler = Callable[[AciRequest, str], list[Element]]


def queue_info(aci: AciRequest) -> list[Element]:
    params = aci.params
    names = ", ".join(queue.queue_names())
    queue_name = params.text("QueueName", hint=f"Name the queue: {names}.")
    try:
        resolved = queue.resolve_queue(queue_name)
    except queue.UnknownQueue:
        raise AciError(
            "ERRORUNKNOWNQUEUE",
            f"There is no queue named {queue_name[:80]!r}; use one of: {names}.",
        ) from None
    queue_action = params.text("QueueAction", hint=f"Use one of: {', '.join(QUEUE_ACTIONS)}.")
    handler = _HANDLERS.get(queue_action.lower())
    if handler is None:
        raise AciError(
            "ERRORPARAMINVALID",
            f"QueueAction {queue_action[:80]!r} is not known; "
            f"use one of: {', '.join(QUEUE_ACTIONS)}.",
        )
    return handler(aci, resolved)


def _action(aci: AciRequest, queue_name: str) -> Action:
    """The action named by the Token parameter, of this queue."""
    raw = aci.params.text("Token", hint="Send the token that action=Fetch returned.")
    shown = raw if len(raw) <= 80 else raw[:77] + "..."
    try:
        token = canonical_token(raw)
    except InvalidToken:
        raise AciError(
            "ERRORTOKENINVALID",
            f"The Token {shown!r} is not a token this connector issues; "
            "send the token exactly as action=Fetch returned it.",
        ) from None
    action = find_action(queue=queue_name, token=token)
    if action is None:
        raise AciError(
            "ERRORTOKENUNKNOWN",
            f"No action of the {queue_name} queue has the token {shown!r}; check the token "
            "and the QueueName it was submitted to.",
        )
    return action


# --- GetStatus and Progress --------------------------------------------------------


def _get_status(aci: AciRequest, queue_name: str) -> list[Element]:
    page = IdentifierPage()
    if aci.params.get("Token", "").strip():
        # Checked before the token is looked up, like every other parameter.
        page = read_identifier_page(aci.params)
        actions = [_action(aci, queue_name)]
    else:
        actions = list_actions(queue=queue_name, filters=read_filters(aci.params))
    now = timezone.now()
    waits = writers.waits([a.pk for a in actions if a.status == Status.QUEUED and a.writes])
    return [
        el(
            "actions",
            children=[
                action_status(action, now=now, page=page, waits=waits.get(action.pk))
                for action in actions
            ],
        )
    ]


def read_identifier_page(params: Params) -> IdentifierPage:
    """``Start`` and ``MaxIdentifiers`` (extension): which identifiers GetStatus shows."""
    return IdentifierPage(
        start=params.integer("Start", 1, minimum=1),
        size=params.integer(
            "MaxIdentifiers", DEFAULT_MAX_IDENTIFIERS, minimum=1, maximum=MAX_IDENTIFIERS_LIMIT
        ),
    )


def read_filters(params: Params) -> ActionFilter:
    statuses = []
    for state in params.csv("State"):
        if state.lower() not in STATES:
            raise InvalidParameter("State", state, "one or more of " + ", ".join(STATES))
        statuses.append(STATES[state.lower()])
    return ActionFilter(
        statuses=tuple(statuses),
        max_results=params.integer(
            "MaxResults", DEFAULT_MAX_RESULTS, minimum=1, maximum=MAX_RESULTS_LIMIT
        ),
        sort_by=params.choice("Sort-By", {name: name for name in SORT_FIELDS}, "queue-time"),
        descending=params.choice(
            "Sort-Order", {"ascending": "ascending", "descending": "descending"}, "descending"
        )
        == "descending",
        queued_after=_time(params, "Queued-After"),
        queued_before=_time(params, "Queued-Before"),
        finished_after=_time(params, "Finished-After"),
        finished_before=_time(params, "Finished-Before"),
        min_priority=_optional_integer(params, "Min-Priority"),
        max_priority=_optional_integer(params, "Max-Priority"),
    )


def _time(params: Params, name: str) -> datetime | None:
    raw = params.get(name, "").strip()
    if not raw:
        return None
    for time_format in TIME_FORMATS:
        try:
            naive = datetime.strptime(raw, time_format)
        except ValueError:
            continue
        return timezone.make_aware(naive, timezone.get_default_timezone())
    raise InvalidParameter(name, raw, "a time as YYYY-MM-DD HH:MM:SS in the server's time zone")


def _optional_integer(params: Params, name: str) -> int | None:
    if not params.get(name, "").strip():
        return None
    return params.integer(name)


def _progress(aci: AciRequest, queue_name: str) -> list[Element]:
    action = _action(aci, queue_name)
    elements = [
        el("token", action.token),
        el("status", action.status),
        el("progress", action.progress),
    ]
    if action.stage:
        elements.append(el("stage", action.stage))
    elements.append(documentcounts(action.counts or {}))
    if action.stop_requested and action.status == Status.PROCESSING:
        elements.append(el("stoprequested", True))
    if action.status == Status.QUEUED and action.writes:
        elements += waiting_elements(action, writers.waits([action.pk]).get(action.pk))
    return elements


# --- Changes -----------------------------------------------------------------------


def _cancel(aci: AciRequest, queue_name: str) -> list[Element]:
    action = _action(aci, queue_name)
    try:
        queue.cancel_action(
            pk=action.pk, cancelled_by="", cancelled_from=aci.client, via=AuditVia.ENDPOINT
        )
    except queue.ActionNotQueued as refused:
        raise AciError("ERRORNOTQUEUED", _not_queued("Cancel", refused.status)) from None
    logger.info("Action %s cancelled from %s", action.token, aci.client)
    return [el("token", action.token), el("status", Status.CANCELLED.value)]


def _not_queued(what: str, status: str) -> str:
    if status == Status.PROCESSING:
        return (
            f"{what} applies to queued actions; this one is Processing. "
            "Use QueueAction=Stop to stop it."
        )
    return f"{what} applies to queued actions; this one is {status} and cannot change any more."


def _stop(aci: AciRequest, queue_name: str) -> list[Element]:
    action = _action(aci, queue_name)
    try:
        queue.request_stop(
            pk=action.pk, stopped_by="", stopped_from=aci.client, via=AuditVia.ENDPOINT
        )
    except queue.ActionNotRunning as refused:
        if refused.status == Status.QUEUED:
            advice = "Use QueueAction=Cancel so that it never runs."
        else:
            advice = "It has already ended; there is nothing to stop."
        raise AciError(
            "ERRORNOTRUNNING",
            f"Stop applies to running actions; this one is {refused.status}. {advice}",
        ) from None
    logger.info("Stop of action %s requested from %s", action.token, aci.client)
    return [
        el("token", action.token),
        el("status", Status.PROCESSING.value),
        el("stoprequested", True),
    ]


def _change_priority(aci: AciRequest, queue_name: str) -> list[Element]:
    action = _action(aci, queue_name)
    priority = read_priority(aci.params, None)
    try:
        queue.change_priority(
            pk=action.pk, priority=priority, changed_from=aci.client, via=AuditVia.ENDPOINT
        )
    except queue.ActionNotQueued as refused:
        raise AciError("ERRORNOTQUEUED", _not_queued("ChangePriority", refused.status)) from None
    logger.info("Priority of action %s set to %s from %s", action.token, priority, aci.client)
    return [el("token", action.token), el("priority", priority)]


def _pause(aci: AciRequest, queue_name: str) -> list[Element]:
    return _set_paused(aci, queue_name, paused=True)


def _resume(aci: AciRequest, queue_name: str) -> list[Element]:
    return _set_paused(aci, queue_name, paused=False)


def _set_paused(aci: AciRequest, queue_name: str, *, paused: bool) -> list[Element]:
    queue.set_paused(
        queue=queue_name,
        paused=paused,
        changed_by="",
        changed_from=aci.client,
        via=AuditVia.ENDPOINT,
    )
    logger.info("Queue %s %s from %s", queue_name, "paused" if paused else "resumed", aci.client)
    return [el("queuename", queue_name), el("paused", paused)]


def _duplicate(aci: AciRequest, queue_name: str) -> list[Element]:
    original = _action(aci, queue_name)
    # The connector may have changed since (fetch actions, tasks): refuse now
    # rather than queue an action that can only fail.
    try:
        get_fetch_action(original.fetch_action).validate(Params(original.params))
    except UnknownFetchAction:
        raise AciError(
            "ERRORPARAMINVALID",
            f"The action's FetchAction {original.fetch_action} is no longer available; "
            f"submit a new action with one of: {available_fetch_actions()}.",
        ) from None
    except ParameterError as error:
        refused = from_parameter_error(error)
        raise AciError(
            refused.code,
            f"The action's parameters are no longer valid: {error} Submit a new action instead.",
        ) from None
    try:
        action = queue.duplicate_action(
            pk=original.pk,
            submitted_by="",
            submitted_from=aci.client,
            via=AuditVia.ENDPOINT,
            token_host=aci.host,
            token_port=aci.port,
        )
    except queue.QueueFull as full:
        raise queue_full_error(full) from None
    logger.info("Action %s duplicated as %s from %s", original.token, action.token, aci.client)
    return queued_answer(action)


# --- Reading the queue -------------------------------------------------------------


def _queue_status(aci: AciRequest, queue_name: str) -> list[Element]:
    counts = queue.queue_counts(queue_name)
    workers = live_workers(queue_name)
    return [
        el("queuename", queue_name),
        el("paused", queue.is_paused(queue_name)),
        el("counts", children=[el(status.lower(), n) for status, n in counts.items()]),
        el("maximumthreads", queue.maximum_threads(queue_name)),
        el("workers", workers.processes),
        el("workerthreads", workers.threads),
        el("runningthreads", workers.running),
    ]


def _get_action_parameters(aci: AciRequest, queue_name: str) -> list[Element]:
    action = _action(aci, queue_name)
    elements = [
        el("token", action.token),
        el("fetchaction", action.fetch_action),
        el("priority", action.priority),
    ]
    if action.action_id:
        elements.append(el("actionid", action.action_id))
    elements.append(
        el(
            "parameters",
            children=[
                el("param", value, attrs={"name": name})
                for name, value in (action.params or {}).items()
            ],
        )
    )
    return elements


_HANDLERS: dict[str, QueueHandler] = {
    "getstatus": _get_status,
    "cancel": _cancel,
    "stop": _stop,
    "progress": _progress,
    "queuestatus": _queue_status,
    "pause": _pause,
    "resume": _resume,
    "changepriority": _change_priority,
    "getactionparameters": _get_action_parameters,
    "duplicate": _duplicate,
}

QUEUE_ACTIONS = (
    "GetStatus",
    "Cancel",
    "Stop",
    "Progress",
    "QueueStatus",
    "Pause",
    "Resume",
    "ChangePriority",
    "GetActionParameters",
    "Duplicate",
)
