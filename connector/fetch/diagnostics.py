"""Fetch actions for measuring and testing the connector itself.

Not loaded by default: name this module in ``CONNECTOR_EXTRA_FETCH_ACTION_MODULES``
(the benchmarks and the tests do) to get ``FetchAction=NoOp``,
``FetchAction=Sleep`` and ``FetchAction=RecordRun``.
"""

from __future__ import annotations

import os
import time

from django.conf import settings

from connector.fetch.base import FetchAction, FetchContext, register
from connector.params import InvalidParameter, Params


@register
class NoOp(FetchAction):
    """Does nothing: measures the queue and the worker alone."""

    name = "NOOP"

    def validate(self, params: Params) -> list[str]:
        return []

    def run(self, ctx: FetchContext) -> None:
        ctx.checkpoint()


@register
class Sleep(FetchAction):
    """Sleeps ``Seconds`` in ``Steps`` steps, checkpointing between them."""

    name = "SLEEP"

    def validate(self, params: Params) -> list[str]:
        params.integer("Steps", 100, minimum=1, maximum=1_000_000)
        seconds = params.text("Seconds", "1")
        try:
            if not 0 <= float(seconds) <= 3600:
                raise ValueError
        except ValueError:
            raise InvalidParameter(
                "Seconds", seconds, "a number of seconds from 0 to 3600"
            ) from None
        return []

    def run(self, ctx: FetchContext) -> None:
        seconds = float(ctx.params.text("Seconds", "1"))
        steps = ctx.params.integer("Steps", 100, minimum=1)
        for step in range(steps):
            ctx.checkpoint()
            time.sleep(seconds / steps)
            ctx.count("SLEEP", "seen")
            ctx.progress(100 * (step + 1) / steps, "sleeping")


#: Where RecordRun appends its lines, under CONNECTOR_VAR_DIR.
RUNS_LOG = "diagnostics/runs.log"


@register
class RecordRun(FetchAction):
    """Appends one line per run, "<token> <worker>", to ``RUNS_LOG`` under the var folder.

    The tests of a scale-out installation count runs from the action's side
    with it (exactly once), besides the database's record. One ``write`` of a
    short line to a file opened with ``O_APPEND`` lands whole even with many
    processes appending at once.
    """

    name = "RECORDRUN"

    def validate(self, params: Params) -> list[str]:
        return []

    def run(self, ctx: FetchContext) -> None:
        ctx.checkpoint()
        path = settings.VAR_DIR / RUNS_LOG
        path.parent.mkdir(parents=True, exist_ok=True)
        line = f"{ctx.action.token} {ctx.worker}\n".encode()
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(descriptor, line)
        finally:
            os.close(descriptor)
        ctx.result["worker"] = ctx.worker
