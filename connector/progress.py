"""How far a running action is, saying only what is known (issue 16, item 6).

A fetch action records a percentage (``Action.progress``) and what it is a share
of (``Action.progress_basis``):

- "" (most fetch actions): the action's own measure, e.g. Collect's documents
  done of those named. Honest as it is.
- "previous": a Synchronize's documents listed so far of ``progress_total``, the
  documents its tasks' last complete runs listed. An estimate, said as one.
- "listed": the same once every task's listing ended: the total is exact.
- "unknown": a Synchronize with no estimate (a first run, or a task never run
  to its end, e.g. after a Stop), or one that listed more than it expected. No
  percentage and no time left: the documents listed and ingested, the rate and
  the time it has run say how far it is.

``of`` turns those into what the dashboard and the ACI show; time left is the
documents still expected at the rate so far, only when the total is known.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from connector.models import Action, Status

UNKNOWN = "unknown"
PREVIOUS = "previous"
LISTED = "listed"
#: The bases whose percentage is of a number of documents (a Synchronize).
OF_DOCUMENTS = frozenset({UNKNOWN, PREVIOUS, LISTED})
#: A rate and a time left need a few seconds of running to mean anything.
MIN_SECONDS_FOR_RATE = 2.0


@dataclass(frozen=True)
class Progress:
    #: None: no honest percentage (an indeterminate bar).
    percent: int | None
    basis: str
    #: Documents listed and ingested (added or updated) so far; None: not counted.
    listed: int | None
    ingested: int | None
    #: Documents expected in all (an estimate when basis is "previous").
    total: int | None
    #: Seconds since it started; documents listed per second; seconds left (estimate).
    elapsed: float | None
    rate: float | None
    remaining: float | None

    @property
    def estimated(self) -> bool:
        return self.basis == PREVIOUS


def counted(counts: object, *names: str) -> int:
    """The sum of ``names`` over the tasks of an action's counts."""
    if not isinstance(counts, dict):
        return 0
    total = 0
    for per_task in counts.values():
        if isinstance(per_task, dict):
            total += sum(n for name, n in per_task.items() if name in names and isinstance(n, int))
    return total


def of(action: Action, now: datetime | None = None) -> Progress:
    """What is known of ``action``'s progress at ``now``."""
    basis = action.progress_basis
    running = action.status == Status.PROCESSING
    elapsed = None
    if action.started_at is not None:
        end = action.finished_at or (now or timezone.now())
        elapsed = max(0.0, (end - action.started_at).total_seconds())
    if basis not in OF_DOCUMENTS:
        return Progress(action.progress, basis, None, None, None, elapsed, None, None)
    listed = counted(action.counts, "seen")
    ingested = counted(action.counts, "added", "updated")
    total = action.progress_total if basis != UNKNOWN else None
    percent = None if basis == UNKNOWN else action.progress
    rate = remaining = None
    if elapsed is not None and elapsed >= MIN_SECONDS_FOR_RATE:
        rate = listed / elapsed
        if running and total is not None and rate > 0:
            remaining = math.ceil(max(0, total - listed) / rate)
    return Progress(percent, basis, listed, ingested, total, elapsed, rate, remaining)
