"""Retention: final actions older than ``CONNECTOR_RETENTION_DAYS`` are deleted.

Workers call ``delete_old_actions`` now and then (``WorkerEngine``). Deletes go
in batches of ``CONNECTOR_RETENTION_BATCH_SIZE`` primary keys, each batch its
own short transaction, so neither PostgreSQL nor SQLite holds locks for long
and the claims and progress writes of running actions slip in between.

What depends on an action goes with it: Django's deletion collector walks
``Action._meta.related_objects`` and, inside the batch's transaction, deletes
the rows whose foreign key says CASCADE (the action's log lines) and clears
those that say SET_NULL (an audit trail that outlives its actions), before
the actions themselves. So a model added later with a foreign key to
``Action`` is handled by its own ``on_delete``, with no change here.

Two workers may run this at the same moment: each batch deletes by primary key
*and* by the same conditions again, so a row is deleted once, and a batch that
finds its rows already gone deletes nothing. Queued and Processing actions are
never touched: only final statuses are selected.

The history's minutes (``connector.outcomes``) go at the same cutoff, so a bar
never counts actions its link can no longer list, and after a week at most
when retention keeps actions longer (no page shows older minutes).
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from connector import outcomes
from connector.models import FINAL_STATUSES, Action

logger = logging.getLogger(__name__)

#: Between batches, so other writers (SQLite has one writer at a time) get a turn.
PAUSE_BETWEEN_BATCHES_SECONDS = 0.05


def _expired(cutoff: datetime) -> QuerySet[Action]:
    # queued_at <= finished_at, so the queued_at bound changes no answer; it
    # lets the (status, queued_at) index find the rows instead of a scan of
    # every final action for the unindexed finished_at.
    return Action.objects.filter(
        status__in=FINAL_STATUSES, queued_at__lt=cutoff, finished_at__lt=cutoff
    )


def delete_old_actions(
    *,
    days: float | None = None,
    batch_size: int | None = None,
    now: datetime | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Delete final actions that ended more than ``days`` ago; return how many.

    ``days`` 0 keeps everything. ``stop`` (the worker's shutdown) ends the run
    between two batches; the next run goes on where this one stopped.
    """
    days = float(settings.CONNECTOR_RETENTION_DAYS if days is None else days)
    batch_size = int(batch_size or settings.CONNECTOR_RETENTION_BATCH_SIZE)
    now = now or timezone.now()
    if days <= 0:
        outcomes.delete_old_minutes(cutoff=None, now=now)
        return 0
    cutoff = now - timedelta(days=days)
    deleted = 0
    while stop is None or not stop.is_set():
        pks = list(_expired(cutoff).order_by().values_list("pk", flat=True)[:batch_size])
        if not pks:
            break
        with transaction.atomic():
            # only("pk"): the collector needs the rows, not their JSON fields.
            _, per_model = _expired(cutoff).filter(pk__in=pks).only("pk").delete()
        deleted += per_model.get(Action._meta.label, 0)
        if len(pks) < batch_size:
            break
        if stop is not None:
            stop.wait(PAUSE_BETWEEN_BATCHES_SECONDS)
    outcomes.delete_old_minutes(cutoff=cutoff, now=now)
    if deleted:
        logger.info(
            "Retention: deleted %s final actions that ended before %s (older than %s days)",
            deleted,
            cutoff.isoformat(timespec="seconds"),
            f"{days:g}",
        )
    else:
        logger.debug("Retention: no final action ended before %s", cutoff.isoformat())
    return deleted
