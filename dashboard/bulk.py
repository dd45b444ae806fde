"""Cancel or retry many actions: one by one through the queue, collecting the refusals."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from connector import queue
from connector.models import FINAL_STATUSES, Action, AuditVia

logger = logging.getLogger(__name__)


@dataclass
class BulkResult:
    cancelled: list[int] = field(default_factory=list)
    #: Started, finished or gone meanwhile: the queue refused them.
    refused: list[int] = field(default_factory=list)

    def summary(self) -> str:
        return f"{len(self.cancelled)} cancelled, {len(self.refused)} not queued any more."


def cancel_many(pks: Iterable[int], *, cancelled_by: str, cancelled_from: str) -> BulkResult:
    result = BulkResult()
    for pk in pks:
        try:
            queue.cancel_action(
                pk=pk,
                cancelled_by=cancelled_by,
                cancelled_from=cancelled_from,
                via=AuditVia.DASHBOARD,
                detail="bulk cancel",
            )
        except (queue.QueueError, Action.DoesNotExist):
            result.refused.append(pk)
        else:
            result.cancelled.append(pk)
    logger.info(
        "Bulk cancel by %s from %s: %s cancelled, %s refused",
        cancelled_by,
        cancelled_from,
        len(result.cancelled),
        len(result.refused),
    )
    return result


@dataclass
class RetryResult:
    #: Original pk -> the pk of its new copy.
    retried: dict[int, int] = field(default_factory=dict)
    #: Queued or Processing (a copy would run the same work twice), or gone.
    refused: list[int] = field(default_factory=list)
    #: Not tried: the queue was full (CONNECTOR_MAX_QUEUED_ACTIONS) when their turn came.
    not_tried: list[int] = field(default_factory=list)

    def summary(self) -> str:
        text = f"{len(self.retried)} queued again as new actions, {len(self.refused)} not ended."
        if self.not_tried:
            text += f" The queue is full: {len(self.not_tried)} not queued; wait for some to run."
        return text


def retry_many(
    pks: Iterable[int], *, submitted_by: str, submitted_from: str, host: str, port: int
) -> RetryResult:
    """A copy of each ended action, through the queue's retry (each audited as a retry)."""
    result = RetryResult()
    pks = list(pks)
    ended = set(
        Action.objects.filter(pk__in=pks, status__in=FINAL_STATUSES).values_list("pk", flat=True)
    )
    for index, pk in enumerate(pks):
        if pk not in ended:
            result.refused.append(pk)
            continue
        try:
            copy = queue.duplicate_action(
                pk=pk,
                submitted_by=submitted_by,
                submitted_from=submitted_from,
                via=AuditVia.DASHBOARD,
                token_host=host,
                token_port=port,
            )
        except queue.QueueFull:
            result.not_tried = pks[index:]
            break
        except Action.DoesNotExist:
            result.refused.append(pk)
        else:
            result.retried[pk] = copy.pk
    logger.info(
        "Bulk retry by %s from %s: %s retried, %s refused, %s not tried (queue full)",
        submitted_by,
        submitted_from,
        len(result.retried),
        len(result.refused),
        len(result.not_tried),
    )
    return result
