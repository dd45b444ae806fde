"""The audit log, and the steps of an action's history that its own row forgets.

``connector.queue`` calls these inside the transaction of the change they
describe, so a change and its record commit (or roll back) together. A refused
change is recorded by the queue in a transaction of its own before it raises,
and a request refused before it reaches the queue (a forged POST) by the view
that refused it, through :func:`record_refused`.

The action endpoint's refusals of a client (not authorized, or sent by a
browser for another origin) can come by the thousand a second, so they are
counted rather than listed: :func:`record_refusal_counted` keeps one entry per
client, kind of refusal and minute, and counts the repeats in its detail.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
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
from connector.prepared import PreparedInsert

logger = logging.getLogger(__name__)

#: Field lengths of AuditEntry: longer values are cut, never refused.
_LIMITS = {"reason": 400, "token": 200, "queue": 40, "user": 150, "client": 200, "detail": 400}


@dataclass(frozen=True)
class Who:
    """Who asked for a change and from where; the default is the endpoint with no address."""

    via: str = AuditVia.ENDPOINT
    user: str = ""
    client: str = ""


def _entry(**fields: Any) -> AuditEntry:
    return AuditEntry(**_entry_fields(**fields))


def _entry_fields(
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
) -> dict[str, Any]:
    """An entry's field values, its texts cut to their fields' lengths."""
    texts = {
        "reason": reason,
        "token": action.token if action is not None else token,
        "queue": action.queue if action is not None else queue,
        "user": who.user,
        "client": who.client,
        "detail": detail,
    }
    return {
        "at": at or timezone.now(),
        "verb": verb,
        "outcome": outcome,
        "via": who.via,
        "action_id": action.pk if action is not None else action_pk,
        **{name: value[: _LIMITS[name]] for name, value in texts.items()},
    }


#: ``record_done``'s insert, compiled once (connector/prepared.py): every Fetch makes one.
_NEW_ENTRIES = PreparedInsert(AuditEntry)


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
    _NEW_ENTRIES.add(
        **_entry_fields(
            verb=verb, outcome=AuditOutcome.DONE, who=who, action=action, queue=queue,
            detail=detail, at=at,
        )
    )  # fmt: skip


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


#: How many of a client's newest entries are searched for this minute's count.
#: A client with more entries than this in one minute (its own changes) gets a
#: second counted entry: still bounded, and the search stays one index read.
COUNTED_SEARCH = 50
_COUNTED = re.compile(r"^refused (\d+) times? in this minute: (.*)$", re.S)


def record_refusal_counted(
    *, verb: AuditVerb, who: Who, kind: str, reason: str, call: str, at: datetime | None = None
) -> AuditEntry:
    """A refused request, counted: one entry per (client, ``kind``, minute).

    The first refusal of a minute writes an entry whose reason is
    ``"<kind>: <reason>"`` and whose detail is ``refused 1 time in this
    minute: <call>``; the next ones of that client and kind in the same minute
    add one to the count (and their call to the list while it fits), so a
    flood writes at most one row a minute. The entry keeps the first
    refusal's verb and reason.
    """
    now = at or timezone.now()
    minute = now.replace(second=0, microsecond=0)
    prefix = f"{kind}: "
    client = who.client[: _LIMITS["client"]]
    recent = (
        AuditEntry.objects.filter(client=client)
        .order_by("-id")
        .values_list("pk", "at", "outcome", "via", "reason")[:COUNTED_SEARCH]
    )
    found = next(
        (
            pk
            for pk, entry_at, outcome, via, text in recent
            if outcome == AuditOutcome.REFUSED
            and via == who.via
            and text.startswith(prefix)
            and minute <= entry_at < minute + timedelta(minutes=1)
        ),
        None,
    )
    with transaction.atomic():
        entry = AuditEntry.objects.select_for_update().filter(pk=found).first() if found else None
        if entry is not None and (matched := _COUNTED.match(entry.detail)):
            calls = matched.group(2).split(", ")
            if call not in calls:
                calls.append(call)
            entry.detail = _counted(int(matched.group(1)) + 1, calls)
            entry.save(update_fields=["detail"])
            return entry
        entry = _entry(
            verb=verb, outcome=AuditOutcome.REFUSED, who=who, reason=prefix + reason,
            detail=_counted(1, [call]), at=now,
        )  # fmt: skip
        entry.save()
    logger.info(
        "Audit: %s via %s from %s refused (%s); repeats this minute are counted",
        call, who.via, who.client, kind,
    )  # fmt: skip
    return entry


def _counted(count: int, calls: list[str]) -> str:
    shown: list[str] = []
    for name in calls:
        # The count must survive the cut to the field's length: the list is what gives.
        if len(", ".join([*shown, name])) > _LIMITS["detail"] - 60:
            break
        shown.append(name)
    return f"refused {count} time{'s' if count != 1 else ''} in this minute: {', '.join(shown)}"


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
