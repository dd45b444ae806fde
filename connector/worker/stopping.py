"""SIGINT and SIGTERM for ``serve`` and ``runworker``: the first stops gracefully,
a second exits at once.

The first signal starts the graceful shutdown (no more claims, running actions
asked to stop at their next checkpoint and queued again unspent, requests in
flight answered). An operator who presses Ctrl-C again does not want to wait
for that: the process exits at once, without running another line of the
application, and whatever it still ran is recovered when its lease runs out
(DESIGN: "a second SIGINT or SIGTERM exits at once and the leases do the
rest").
"""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import os
import signal
import sys
from collections.abc import Callable
from types import FrameType

from django.conf import settings

logger = logging.getLogger(__name__)

#: The signals that stop a connector process.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopSignals:
    """Call ``on_first`` at the first stop signal; exit the process at the second."""

    def __init__(self, on_first: Callable[[int], None]) -> None:
        self.on_first = on_first
        self.received: int | None = None

    def handle(self, signum: int, frame: FrameType | None = None) -> None:
        if self.received is None:
            self.received = signum
            self.on_first(signum)
            return
        exit_now(signum)

    def install(self) -> None:
        """Install ``handle`` with ``signal.signal`` (in the main thread)."""
        for signum in STOP_SIGNALS:
            signal.signal(signum, self.handle)


def report_crashes() -> None:
    """On a fatal signal (a segmentation fault), write every thread's Python stack
    to stderr, so a crash at exit says where it was (issue 14, 2: two of seven
    Ctrl-Cs ended in a segmentation fault in libpython, with no stack)."""
    if not faulthandler.is_enabled():
        faulthandler.enable(all_threads=True)


def exit_now(signum: int) -> None:
    """Log why, flush the logs, and end the process with status 128 + signal number."""
    logger.warning(
        "%s again: exiting at once. Actions still running here are recovered when their"
        " leases run out (within %s s plus one heartbeat).",
        signal.Signals(signum).name,
        settings.CONNECTOR_LEASE_SECONDS,
    )
    # Exiting anyway: a flush that fails has nothing better to do.
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):
            handler.flush()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    # Not sys.exit(): that would wait for the graceful shutdown under way
    # (threads, the reactor), which is what the operator chose not to wait for.
    os._exit(128 + signum)
