"""The fetch-action framework: a registry of actions and the context they run in.

A fetch action is a class registered by name. At submission its ``validate``
checks the parameters (the same rules for the endpoint and the dashboard) and
names the fetch tasks it works on; in the worker its ``run`` does the work
through a ``FetchContext``:

- ``ctx.checkpoint()`` raises ``StopRequested`` once a Stop arrived, or the
  worker is shutting down (then the action is queued again, attempt not
  spent, and runs again from the start: make a long action resume from what
  it stored, as Synchronize does). It reads an in-memory flag, so call it at
  every document and every chunk of I/O.
- ``ctx.progress(percent, stage)`` records progress; writes are throttled.
- ``ctx.count(task, name)`` counts documents per task (seen, added, ...).
- ``ctx.result`` holds what the action produced (identifiers, successes, failures).
- ``ctx.log`` is the action's own log, kept with the action.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar, TypeVar

from django.conf import settings
from django.utils import timezone

from connector import queue
from connector.models import Action, FetchTask
from connector.params import InvalidParameter, Params
from connector.prepared import PreparedRead

logger = logging.getLogger(__name__)

#: Lines of an action's own log kept in memory before they are written.
LOG_FLUSH_LINES = 200


class StopRequested(Exception):
    """Raised by ``checkpoint()`` when the action is to stop."""


class FetchActionFailed(Exception):
    """The action cannot go on; the message is shown to the client as the action's error."""


class UnknownFetchAction(LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class UnknownTask(InvalidParameter):
    def __init__(self, parameter: str, name: str) -> None:
        known = ", ".join(configured for (configured,) in _TASK_NAMES.rows()) or "none"
        super().__init__(parameter, name, f"a configured fetch task (configured: {known})")


class FetchAction:
    """Base class of fetch actions; subclasses set ``name`` and implement both methods."""

    name: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    #: Whether the action writes its tasks' datastore or ingest output: such
    #: actions hold their tasks while they run, one at a time per task
    #: (``connector.writers``).
    writes_tasks: ClassVar[bool] = False

    def validate(self, params: Params) -> list[str]:
        """Check the parameters; return the names of the fetch tasks used.

        Raise ``ParameterError`` for anything the action could not use.
        """
        raise NotImplementedError

    def run(self, ctx: FetchContext) -> None:
        raise NotImplementedError


_registry: dict[str, type[FetchAction]] = {}

A = TypeVar("A", bound=type[FetchAction])


def register(cls: A) -> A:
    """Class decorator: make a fetch action available by its name and aliases."""
    for name in (cls.name, *cls.aliases):
        _registry[name.upper()] = cls
    return cls


def get_fetch_action(name: str) -> FetchAction:
    try:
        return _registry[name.strip().upper()]()
    except KeyError:
        raise UnknownFetchAction(name) from None


def writes_tasks(name: str) -> bool:
    """Whether the fetch action of that name (or alias) writes its tasks; False if unknown."""
    cls = _registry.get(name.strip().upper())
    return cls is not None and cls.writes_tasks


def fetch_action_names() -> list[str]:
    """Canonical names of the registered fetch actions (aliases left out)."""
    return sorted({cls.name.upper() for cls in _registry.values()})


def task_parameter(params: Params, *names: str) -> list[str]:
    """Fetch task names from the first of ``names`` that is given (a CSV list), checked."""
    for name in names:
        if tasks := params.csv(name):
            # Compared in Python's upper case, which knows every script (SQL's UPPER may not).
            known = {configured.upper() for (configured,) in _TASK_NAMES.rows()}
            for task in tasks:
                if task.upper() not in known:
                    raise UnknownTask(name, task)
            return [task.upper() for task in tasks]
    return []


#: The configured tasks' names: every Fetch asks, so the query is compiled once
#: (connector/prepared.py).
_TASK_NAMES: PreparedRead[FetchTask] = PreparedRead(lambda: FetchTask.objects.values_list("name"))


class ActionLog:
    """An action's own log: kept with the action, also sent to the Python log."""

    def __init__(self, pk: int, token: str) -> None:
        self._pk = pk
        self._token = token
        self._lines: list[tuple[datetime, str, str]] = []

    def _add(self, level: str, message: str, *args: object) -> None:
        text = message % args if args else message
        self._lines.append((timezone.now(), level, text))
        # The token as a field of the record (connector.logs), not in the text.
        logger.log(logging.getLevelName(level), "%s", text, extra={"token": self._token})
        if len(self._lines) >= LOG_FLUSH_LINES:
            self.flush()

    def info(self, message: str, *args: object) -> None:
        self._add("INFO", message, *args)

    def warning(self, message: str, *args: object) -> None:
        self._add("WARNING", message, *args)

    def error(self, message: str, *args: object) -> None:
        self._add("ERROR", message, *args)

    def flush(self) -> None:
        if self._lines:
            lines, self._lines = self._lines, []
            queue.add_log_lines(pk=self._pk, lines=lines)


class FetchContext:
    """What a running fetch action sees of the connector."""

    def __init__(
        self,
        *,
        action: Action,
        worker: str,
        stop_event: threading.Event,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.action = action
        self.params = Params(action.params)
        self.task_names = [task for task in action.tasks.split(",") if task]
        self.worker = worker
        self.counts: dict[str, dict[str, int]] = {}
        self.result: dict[str, Any] = {}
        self.log = ActionLog(action.pk, action.token)
        self.percent = 0
        self.stage = ""
        #: What the percentage is a share of (connector/progress.py); set by ``expect``.
        self.basis = ""
        self.total: int | None = None
        self._stop_event = stop_event
        self._clock = clock
        self._last_write = clock()

    @property
    def tasks(self) -> list[FetchTask]:
        by_name = {t.name: t for t in FetchTask.objects.filter(name__in=self.task_names)}
        missing = [name for name in self.task_names if name not in by_name]
        if missing:
            raise FetchActionFailed(f"Fetch task {', '.join(missing)} is no longer configured")
        return [by_name[name] for name in self.task_names]

    @property
    def stop_requested(self) -> bool:
        return self._stop_event.is_set()

    def checkpoint(self) -> None:
        if self._stop_event.is_set():
            raise StopRequested

    def count(self, task: str, name: str, n: int = 1) -> None:
        per_task = self.counts.setdefault(task, {})
        per_task[name] = per_task.get(name, 0) + n

    def expect(self, total: int | None, basis: str) -> None:
        """Say what the percentage is a share of: ``total`` documents known from
        ``basis`` ("previous" runs, "listed"), or "unknown" (no percentage shown)."""
        self.total, self.basis = total, basis

    def progress(self, percent: float, stage: str | None = None) -> None:
        self.percent = max(0, min(100, int(percent)))
        if stage is not None:
            self.stage = stage
        now = self._clock()
        if now - self._last_write >= settings.CONNECTOR_PROGRESS_INTERVAL_SECONDS:
            self._last_write = now
            self.log.flush()
            queue.record_progress(
                pk=self.action.pk,
                worker=self.worker,
                percent=self.percent,
                stage=self.stage,
                counts=self.counts,
                basis=self.basis,
                total=self.total,
            )


def execute(
    action: Action,
    *,
    worker: str,
    stop_event: threading.Event,
    shutdown_event: threading.Event | None = None,
) -> None:
    """Run a claimed action to its end and record the outcome; never raises.

    When ``shutdown_event`` is set, a stop comes from the worker shutting down,
    not from a client: the action is queued again with its attempt given back
    (``queue.release_actions``) instead of being recorded Stopped.
    """
    ending = run(action, worker=worker, stop_event=stop_event, shutdown_event=shutdown_event)
    if ending is None:
        queue.release_actions(worker=worker, pks=[action.pk])
    else:
        queue.end_action(pk=action.pk, worker=worker, ending=ending)


def run(
    action: Action,
    *,
    worker: str,
    stop_event: threading.Event,
    shutdown_event: threading.Event | None = None,
) -> queue.Ending | None:
    """Run a claimed action and write its log; never raises.

    Returns how it ended, for the caller to record, or None if the worker's
    shutdown interrupted it (to be queued again: see ``execute``).
    """
    ctx = FetchContext(action=action, worker=worker, stop_event=stop_event)
    stopped = False
    interrupted = False
    error = ""
    try:
        get_fetch_action(action.fetch_action).run(ctx)
    except StopRequested:
        if shutdown_event is not None and shutdown_event.is_set():
            interrupted = True
            ctx.log.warning("Interrupted at %s%% by the worker's shutdown", ctx.percent)
        else:
            stopped = True
            ctx.log.info("Stopped on request at %s%%", ctx.percent)
    except FetchActionFailed as failure:
        error = str(failure)
        ctx.log.error("%s", error)
    except UnknownFetchAction:
        error = f"FetchAction {action.fetch_action} is not available in this connector"
        ctx.log.error("%s", error)
    except Exception as unexpected:
        logger.exception("Fetch action %s (%s) failed", action.fetch_action, action.token)
        error = f"Unexpected error: {type(unexpected).__name__}: {unexpected}"
        ctx.log.error("%s", error)
    try:
        ctx.log.flush()
    except Exception:
        logger.exception("Could not write the log of action %s", action.token)
    if interrupted:
        return None
    return queue.Ending(
        counts=ctx.counts,
        result=ctx.result,
        progress=ctx.percent,
        stage=ctx.stage,
        progress_basis=ctx.basis,
        progress_total=ctx.total,
        stopped=stopped,
        error=error,
    )
