"""``action=QueueInfo``: look at and steer the actions of a queue.

Every QueueAction reads its parameters and finds its action before it asks the
queue module for a change, so a refused request changes nothing; the queue's
guarded updates decide races (a Cancel racing a claim gets ERRORNOTQUEUED).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
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
    paging,
    progress_elements,
    queued_answer,
    waiting_elements,
)
from connector.fetch.base import UnknownFetchAction, get_fetch_action
from connector.models import Action, AuditVia, Status
from connector.params import InvalidParameter, ParameterError, Params
from connector.tokens import InvalidToken, canonical_token

logger = logging.getLogger(__name__)

#: GetStatus lists at most this many actions unless MaxResults says otherwise,
#: and never more: MaxResults over it is refused (not clamped, so that a client
#: never takes a partial list for the whole), and Start pages through the rest.
DEFAULT_MAX_RESULTS = 1000
MAX_RESULTS_LIMIT = 1000
#: The largest Start (far past any list's end).
START_LIMIT = 1_000_000_000

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
    refuse_conflicting_parameters(queue_action.lower(), params)
    return handler(aci, resolved)


# --- Parameters that would change the meaning ----------------------------------------


@dataclass(frozen=True)
class Conflict:
    """Parameters a QueueAction does not take where ignoring them would change its meaning.

    ``when`` names a parameter that must be present too for the refusal to apply
    (GetStatus takes its filters, but not beside a Token); "" means always.
    """

    parameters: tuple[str, ...]
    advice: str
    when: str = ""


#: Parameters of the whole-queue listing, which mean nothing beside a Token.
LISTING_PARAMETERS = (
    "State",
    "MaxResults",
    "Sort-By",
    "Sort-Order",
    "Queued-After",
    "Queued-Before",
    "Finished-After",
    "Finished-Before",
    "Min-Priority",
    "Max-Priority",
)

_WHOLE_QUEUE = (
    "it applies to the whole queue. To keep one queued action from running use "
    "QueueAction=Cancel with its Token; to stop a running one, QueueAction=Stop."
)

#: The one table of refused parameters, by QueueAction (lower case). Parameters
#: not listed are accepted and ignored, as IDOL does: clients send standard
#: extra ones, and ignoring those changes nothing.
CONFLICTS: dict[str, tuple[Conflict, ...]] = {
    "pause": (Conflict(("Token",), _WHOLE_QUEUE),),
    "resume": (
        Conflict(
            ("Token",),
            "it applies to the whole queue (no single action is paused); leave the Token out.",
        ),
    ),
    "queuestatus": (
        Conflict(
            ("Token",),
            "it describes the whole queue. For one action use QueueAction=GetStatus "
            "or QueueAction=Progress with its Token.",
        ),
    ),
    "getstatus": (
        Conflict(
            LISTING_PARAMETERS,
            "with a Token GetStatus shows that one action, so there is nothing to filter or "
            "sort. Leave the Token out to list the queue's actions with filters.",
            when="Token",
        ),
    ),
    "duplicate": (
        Conflict(
            ("Priority",),
            "Duplicate queues the copy with the original's priority. Duplicate it, then "
            "use QueueAction=ChangePriority with the new Token and Priority.",
            # Without a Token the missing Token is the error to report first.
            when="Token",
        ),
    ),
}


def refuse_conflicting_parameters(queue_action: str, params: Params) -> None:
    """ERRORPARAMINVALID if a parameter the QueueAction would have to ignore is present."""
    for conflict in CONFLICTS.get(queue_action, ()):
        if conflict.when and not _present(params, conflict.when):
            continue
        for name in conflict.parameters:
            if _present(params, name):
                shown = _QUEUE_ACTION_NAMES.get(queue_action, queue_action)
                beside = f" beside a {conflict.when}" if conflict.when else ""
                raise AciError(
                    "ERRORPARAMINVALID",
                    f"QueueAction={shown} does not take the {name} parameter{beside}: "
                    f"{conflict.advice}",
                )


def _present(params: Params, name: str) -> bool:
    # An empty value is what a form sends for a field left blank: not a request.
    return bool(params.get(name, "").strip())


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
    params = aci.params
    now = timezone.now()
    if _present(params, "Token"):
        # Checked before the token is looked up, like every other parameter.
        page = read_identifier_page(params)
        action = _action(aci, queue_name)
        statuses = [action_status(action, now=now, page=page, waits=writers.waits_of(action))]
        return [
            el("actions", attrs=paging(total=1, start=1, shown=1, next_query={}), children=statuses)
        ]
    filters = read_filters(params)
    start = read_start(params)
    page = IdentifierPage(start=1, size=read_identifiers_per_action(params, filters.max_results))
    listing = list_actions(queue=queue_name, filters=filters, start=start)
    # At most MaxResults rows without their results: small enough to hold, and
    # read once for the waits of the Queued writers among them.
    actions = list(listing.actions)
    waits = _waits(actions)
    statuses = [
        action_status(action, now=now, page=page, waits=waits.get(action.pk)) for action in actions
    ]
    attrs = paging(
        total=listing.total,
        start=start,
        shown=len(statuses),
        next_query={"MaxResults": filters.max_results},
    )
    return [el("actions", attrs=attrs, children=statuses)]


def _waits(actions: list[Action]) -> dict[int, list[writers.Wait]]:
    """The running writers that the Queued writers among ``actions`` wait for."""
    return writers.waits([a.pk for a in actions if a.status == Status.QUEUED and a.writes])


def read_identifier_page(params: Params) -> IdentifierPage:
    """``Start`` and ``MaxIdentifiers`` (extension): which identifiers GetStatus shows."""
    return IdentifierPage(
        start=read_start(params),
        size=params.integer(
            "MaxIdentifiers", DEFAULT_MAX_IDENTIFIERS, minimum=1, maximum=MAX_IDENTIFIERS_LIMIT
        ),
    )


def read_start(params: Params) -> int:
    # Bounded so that it always fits the databases' 64-bit OFFSET.
    return params.integer("Start", 1, minimum=1, maximum=START_LIMIT)


def read_identifiers_per_action(params: Params, max_results: int) -> int:
    """``MaxIdentifiers`` without a Token: none unless asked, and at most
    ``MAX_IDENTIFIERS_LIMIT`` in the whole answer."""
    per_action = params.integer("MaxIdentifiers", 0, minimum=0, maximum=MAX_IDENTIFIERS_LIMIT)
    if per_action * max_results > MAX_IDENTIFIERS_LIMIT:
        raise AciError(
            "ERRORPARAMINVALID",
            f"MaxIdentifiers={per_action} for each of MaxResults={max_results} actions would "
            f"show more than {MAX_IDENTIFIERS_LIMIT} identifiers in one answer, the most it "
            "may. Lower MaxResults or MaxIdentifiers, or read one action's identifiers with "
            "its Token (Start and MaxIdentifiers page them).",
        )
    return per_action


def read_filters(params: Params) -> ActionFilter:
    statuses = []
    for state in params.csv("State"):
        if state.lower() not in STATES:
            raise InvalidParameter("State", state, "one or more of " + ", ".join(STATES))
        statuses.append(STATES[state.lower()])
    return ActionFilter(
        statuses=tuple(statuses),
        max_results=_max_results(params),
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


def _max_results(params: Params) -> int:
    try:
        return params.integer(
            "MaxResults", DEFAULT_MAX_RESULTS, minimum=1, maximum=MAX_RESULTS_LIMIT
        )
    except InvalidParameter as error:
        raise AciError(
            "ERRORPARAMINVALID",
            f"{error} One answer lists at most {MAX_RESULTS_LIMIT} actions: read the rest "
            "with Start (the answer's <actions next=...> gives the parameters of the next page).",
        ) from None


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
        *progress_elements(action),
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

_QUEUE_ACTION_NAMES = {name.lower(): name for name in QUEUE_ACTIONS}
