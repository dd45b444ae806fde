"""An action's status history: every status it was in, from when, for how long.

Most of it is in the action's own row: queued at, started at (and by which
worker), Stop requested at (and by whom), ended at (and how). A recovery
re-queue, or a worker giving back an action it never started, clears the
start and the worker from the row; the queue keeps that spell of Processing
and the re-queue as ``ActionTransition`` rows (see ``connector.audit``).

The history is those stored steps between the row's first and last ones, so
the worker's hot path (claim, finish) writes nothing more than it did.
Stored steps are ordered as written, not by time, so clocks that differ
between machines cannot reorder them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from connector.models import FINAL_STATUSES, Action, ActionTransition, Status

STOP_REQUESTED = "Stop requested"


@dataclass(frozen=True)
class HistoryStep:
    """A status the action was in, from when, and for how long (None: it is final)."""

    status: str
    at: datetime
    note: str
    duration: timedelta | None
    final: bool


def _by(user: str, client: str, default: str) -> str:
    return f"by {user or default}" + (f" from {client}" if client else "")


def _end_note(action: Action) -> str:
    if action.status == Status.ERROR:
        return action.error
    if action.status == Status.CANCELLED:
        return _by(action.cancelled_by, action.cancelled_from, "the endpoint")
    return ""


def steps_of(action: Action) -> list[tuple[str, datetime, str]]:
    """(status, time, note) of every step, oldest first."""
    steps = [(Status.QUEUED.value, action.queued_at, "")]
    stored = ActionTransition.objects.filter(action_id=action.pk).order_by("id")
    steps += [(step.status, step.at, step.note) for step in stored]
    if action.started_at is not None:
        steps.append((Status.PROCESSING.value, action.started_at, f"worker {action.worker}"))
    if action.stop_requested_at is not None:
        note = _by(action.stopped_by, action.stopped_from, "the endpoint")
        steps.append((STOP_REQUESTED, action.stop_requested_at, note))
    if action.status in FINAL_STATUSES and action.finished_at is not None:
        steps.append((action.status, action.finished_at, _end_note(action)))
    return steps


def action_history(action: Action, *, now: datetime) -> list[HistoryStep]:
    """The steps with their durations; the last step of an unfinished action lasts until now."""
    steps = steps_of(action)
    history = []
    for index, (status, at, note) in enumerate(steps):
        final = status in FINAL_STATUSES
        if index + 1 < len(steps):
            duration: timedelta | None = steps[index + 1][1] - at
        else:
            duration = None if final else now - at
        history.append(HistoryStep(status, at, note, duration, final))
    return history
