"""The ACI actions other than QueueInfo: Fetch, GetStatus and GetVersion.

A handler takes the parsed request and returns the children of
``<responsedata>``; it refuses with ``AciError`` (or a ``ParameterError``,
which the dispatcher turns into one) before it changes anything.
"""

from __future__ import annotations

import logging

from django.utils import timezone

from connector import queue
from connector.aci import product
from connector.aci.errors import AciError
from connector.aci.limits import check_identifier_count
from connector.aci.queries import live_workers
from connector.aci.render import Element, el
from connector.aci.request import AciRequest, stored_parameters
from connector.aci.status import aci_time, queued_answer, whole_seconds
from connector.fetch.base import UnknownFetchAction, fetch_action_names, get_fetch_action
from connector.models import AuditVia, Status
from connector.params import Params

logger = logging.getLogger(__name__)

#: The Priority extension's range (higher runs first).
PRIORITY_MIN = -1_000_000
PRIORITY_MAX = 1_000_000
#: The longest ActionID the action table keeps.
ACTION_ID_MAX_LENGTH = 400


def available_fetch_actions() -> str:
    return ", ".join(fetch_action_names()) or "none"


def queue_full_error(full: queue.QueueFull) -> AciError:
    return AciError(
        "ERRORQUEUEFULL",
        f"The {full.queue} queue already holds {full.limit} queued actions, the most it may; "
        "nothing was queued. Wait for some to run (QueueInfo QueueStatus shows how many are "
        "queued) and submit again.",
    )


def read_priority(params: Params, default: int | None) -> int:
    return params.integer("Priority", default, minimum=PRIORITY_MIN, maximum=PRIORITY_MAX)


def fetch(aci: AciRequest) -> list[Element]:
    """Store and queue a fetch action; answer at once with its token."""
    params = aci.params
    name = params.text(
        "FetchAction", hint=f"Name the fetch action to run: {available_fetch_actions()}."
    )
    try:
        fetch_action = get_fetch_action(name)
    except UnknownFetchAction:
        raise AciError(
            "ERRORPARAMINVALID",
            f"FetchAction {name[:80]!r} is not available in this connector; "
            f"use one of: {available_fetch_actions()}.",
        ) from None
    priority = read_priority(params, 0)
    action_id = params.get("ActionID", "").strip()
    if len(action_id) > ACTION_ID_MAX_LENGTH:
        raise AciError(
            "ERRORPARAMINVALID",
            f"The ActionID parameter may be at most {ACTION_ID_MAX_LENGTH} characters long.",
        )
    # FetchAction, ActionID and Priority have their own columns; keeping them in the
    # parameters too would leave a stale copy after ChangePriority.
    stored = stored_parameters(params, "FetchAction", "ActionID", "Priority")
    check_identifier_count(params)
    tasks = fetch_action.validate(Params(stored))
    try:
        action = queue.submit_action(
            fetch_action=fetch_action.name,
            params=stored,
            tasks=tasks,
            priority=priority,
            action_id=action_id,
            submitted_by="",
            submitted_from=aci.client,
            via=AuditVia.ENDPOINT,
            token_host=aci.host,
            token_port=aci.port,
        )
    except queue.QueueFull as full:
        raise queue_full_error(full) from None
    logger.info(
        "Fetch %s queued as %s from %s (ActionID %r)",
        action.fetch_action,
        action.token,
        aci.client,
        action_id,
    )
    return queued_answer(action)


def get_status(aci: AciRequest) -> list[Element]:
    now = timezone.now()
    queues = []
    for name in queue.queue_names():
        counts = queue.queue_counts(name)
        queues.append(
            el(
                "queue",
                children=[
                    el("name", name),
                    el("paused", queue.is_paused(name)),
                    el("maximumthreads", queue.maximum_threads(name)),
                    el("workerthreads", live_workers(name, now=now).threads),
                    el("queued", counts[Status.QUEUED]),
                    el("processing", counts[Status.PROCESSING]),
                ],
            )
        )
    return [
        el("productname", product.PRODUCT_NAME),
        el("version", product.VERSION),
        el("starttime", aci_time(product.STARTED_AT)),
        el("uptime", whole_seconds(product.STARTED_AT, now)),
        el("aciport", aci.port),
        el("queues", children=queues),
    ]


def get_version(aci: AciRequest) -> list[Element]:
    return [
        el("productname", product.PRODUCT_NAME),
        el("version", product.VERSION),
        el("build", product.BUILD),
        el("commit", product.COMMIT),
    ]
