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
import threading
import time
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


#: How long the end of ``serve`` and ``runworker`` waits for their threads to end.
THREADS_END_SECONDS = 5.0


def end_threads(timeout: float = THREADS_END_SECONDS) -> list[str]:
    """Wait up to ``timeout`` seconds for the process's daemon threads to end;
    return the names of those still running.

    Python joins its other threads itself before it finalizes, but not the
    daemon ones (the worker's slots and heartbeat, the WAL checkpointer, the
    channel layer's sender): one that runs on, or comes back from a blocking
    call, while the interpreter tears itself down can crash it in libpython
    (issue 14, 2: a segmentation fault after "Connector stopped."). ``serve``
    and ``runworker`` call this once their shutdown is done, then
    ``exit_process``.
    """
    deadline = time.monotonic() + timeout
    here = threading.current_thread()
    for thread in threading.enumerate():
        if thread is not here and thread.daemon:
            thread.join(max(0.0, deadline - time.monotonic()))
    return [t.name for t in threading.enumerate() if t is not here and t.daemon and t.is_alive()]


def exit_process(left: list[str]) -> None:
    """Return (and let the interpreter exit normally, status 0) when no daemon thread
    is ``left``; otherwise flush and end the process with status 0 without
    finalizing the interpreter, which a running daemon thread could crash.

    The shutdown is complete either way: actions were queued again and the
    reader processes stopped; what those threads still do is lost with them,
    as their actions' leases already cover.
    """
    if not left:
        _watch_the_last_joins(THREADS_END_SECONDS)
        return
    logger.warning(
        "Threads %s did not end within %s s; exiting without waiting for them",
        ", ".join(left),
        THREADS_END_SECONDS,
    )
    _flush()
    os._exit(0)


def _watch_the_last_joins(timeout: float) -> None:
    """End the process (status 0) if Python's own join of the other threads has
    not finished ``timeout`` seconds from now.

    Python joins every non-daemon thread before it finalizes, with no time
    limit. A request that was in flight when the server stopped can be left
    waiting in such a thread for an event loop that no longer runs (Django's
    handler thread, back into the loop through ``async_to_sync``), and the
    process would never exit. The watchdog is a daemon thread: it still runs
    during that join, and it sleeps through it when the join is quick.
    """

    def watch() -> None:
        time.sleep(timeout)
        waiting = [
            thread.name
            for thread in threading.enumerate()
            if not thread.daemon and thread is not threading.main_thread()
        ]
        logger.warning(
            "Threads %s still waited %s s after the stop (a request cut off by it);"
            " exiting without waiting for them",
            ", ".join(waiting) or "(none named)",
            timeout,
        )
        _flush()
        os._exit(0)

    threading.Thread(target=watch, name="exit-watchdog", daemon=True).start()


def _flush() -> None:
    # Exiting anyway: a flush that fails has nothing better to do.
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):
            handler.flush()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


def exit_now(signum: int) -> None:
    """Log why, flush the logs, and end the process with status 128 + signal number."""
    logger.warning(
        "%s again: exiting at once. Actions still running here are recovered when their"
        " leases run out (within %s s plus one heartbeat).",
        signal.Signals(signum).name,
        settings.CONNECTOR_LEASE_SECONDS,
    )
    _flush()
    # Not sys.exit(): that would wait for the graceful shutdown under way
    # (threads, the reactor), which is what the operator chose not to wait for.
    os._exit(128 + signum)
