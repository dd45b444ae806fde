"""Cancel many actions: one by one through the queue, collecting the refusals."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from connector import queue
from connector.models import Action, AuditVia

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
