"""The audit log, and the steps of an action's history that its own row forgets.

``connector.queue`` calls these inside the transaction of the change they
describe, so a change and its record commit (or roll back) together. A refused
change is recorded by the queue in a transaction of its own before it raises,
and a request refused before it reaches the queue (a forged POST) by the view
that refused it, through :func:`record_refused`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from connector.models import (
    Action,
    ActionTransition,
    AuditEntry,
    AuditOutcome,
    AuditVerb,
    AuditVia,
    Status,
)

logger = logging.getLogger(__name__)

#: Field lengths of AuditEntry: longer values are cut, never refused.
_LIMITS = {"reason": 400, "token": 200, "queue": 40, "user": 150, "client": 200, "detail": 400}


@dataclass(frozen=True)
class Who:
    """Who asked for a change and from where; the default is the endpoint with no address."""

    via: str = AuditVia.ENDPOINT
    user: str = ""
    client: str = ""


def _entry(
    *,
    verb: str,
    outcome: str,
    who: Who,
    action: Action | None = None,
    action_pk: int | None = None,
    token: str = "",
    queue: str = "",
    reason: str = "",
    detail: str = "",
    at: datetime | None = None,
) -> AuditEntry:
    texts = {
        "reason": reason,
        "token": action.token if action is not None else token,
        "queue": action.queue if action is not None else queue,
        "user": who.user,
        "client": who.client,
        "detail": detail,
    }
    return AuditEntry(
        at=at or timezone.now(),
        verb=verb,
        outcome=outcome,
        via=who.via,
        action_id=action.pk if action is not None else action_pk,
        **{name: value[: _LIMITS[name]] for name, value in texts.items()},
    )


def record_done(
    *,
    verb: AuditVerb,
    who: Who,
    action: Action | None = None,
    queue: str = "",
    detail: str = "",
    at: datetime | None = None,
) -> None:
    """A change that was made (call inside the change's transaction)."""
    _entry(
        verb=verb, outcome=AuditOutcome.DONE, who=who, action=action, queue=queue,
        detail=detail, at=at,
    ).save()  # fmt: skip


def record_refused(
    *,
    verb: AuditVerb,
    who: Who,
    reason: str,
    action_pk: int | None = None,
    queue: str = "",
    detail: str = "",
) -> None:
    """A change that was asked for and refused: by the queue's guard or a missing right."""
    action = None
    if action_pk is not None:
        action = Action.objects.filter(pk=action_pk).only("token", "queue").first()
        if action is None:
            detail = f"{detail}; no action {action_pk}" if detail else f"no action {action_pk}"
    _entry(
        verb=verb,
        outcome=AuditOutcome.REFUSED,
        who=who,
        action=action,
        queue=queue,
        reason=reason,
        detail=detail,
    ).save()
    logger.info(
        "Audit: %s by %r via %s from %s refused: %s", verb, who.user, who.via, who.client, reason
    )


def record_many_done(entries: Iterable[AuditEntry]) -> None:
    AuditEntry.objects.bulk_create(list(entries))


def done_entry(
    *, verb: AuditVerb, who: Who, action_pk: int, token: str, queue: str, detail: str, at: datetime
) -> AuditEntry:
    """An unsaved entry, for :func:`record_many_done`."""
    return _entry(
        verb=verb, outcome=AuditOutcome.DONE, who=who, action_pk=action_pk, token=token,
        queue=queue, detail=detail, at=at,
    )  # fmt: skip


# --- Status history ---------------------------------------------------------------------


def requeue_steps(
    *, pk: int, started_at: datetime | None, worker: str, at: datetime, note: str
) -> list[ActionTransition]:
    """The steps an action's row forgets when it is queued again (unsaved).

    A re-queue clears ``started_at`` and ``worker``: the spell of Processing
    that ended is kept here, with the re-queue itself.
    """
    steps = []
    if started_at is not None:
        steps.append(
            ActionTransition(
                action_id=pk, status=Status.PROCESSING, at=started_at, note=f"worker {worker}"[:300]
            )
        )
    steps.append(ActionTransition(action_id=pk, status=Status.QUEUED, at=at, note=note[:300]))
    return steps
