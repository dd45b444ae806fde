"""Fetch actions for measuring and testing the connector itself.

Not loaded by default: name this module in ``CONNECTOR_EXTRA_FETCH_ACTION_MODULES``
(the benchmarks and the tests do) to get ``FetchAction=NoOp`` and
``FetchAction=Sleep``.
"""

from __future__ import annotations

import time

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
