"""Reader processes: Synchronize's folder jobs on more than one core.

Reading, hashing and formatting small files is mostly system calls and short
Python steps, and one interpreter runs them one at a time; a first
Synchronize of many small files was bound by that (``bench/README.md``,
"Synchronize"). So a large run hands its folder jobs (``connector/ingest/scan.py``)
to ``CONNECTOR_SYNCHRONIZE_READERS`` processes while the worker writes the
batches and the datastore. The processes are started on first use (``spawn``:
a fresh interpreter that imports the scan module and nothing of Django), shared
by every Synchronize of the process and kept until it exits.

A job whose process died (killed, out of memory, or it could not start) is
run again in the worker itself, and jobs stay in the worker for a minute
before new processes are tried: a broken pool costs time, never a document.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool

from django.conf import settings

from connector.ingest.scan import FolderJob, FolderResult, run_job

logger = logging.getLogger(__name__)

#: After a pool broke, this long in the worker before processes are tried again.
RETRY_SECONDS = 60.0
#: Seconds between two Stop checks while waiting for a reader's job.
WAIT_STEP = 0.2
#: How long ``close`` waits for each part of a broken pool to end.
JOIN_SECONDS = 5.0

_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None
_retry_at = 0.0
#: Set by close(): no reader processes any more in this process.
_closed = False
#: The thread and processes of pools given up on after they broke, not yet
#: joined (``close`` joins them).
_broken: list[threading.Thread | multiprocessing.process.BaseProcess] = []


def _submit_uninterruptible(pool: ProcessPoolExecutor, job: FolderJob) -> Future[FolderResult]:
    """``pool.submit``, with SIGINT blocked in this thread meanwhile.

    The pool starts its processes as jobs are submitted, from the submitting
    thread, and a process inherits that thread's signal mask: blocked from its
    first instruction, a Ctrl-C to the process group (a terminal sends it to
    the whole job) cannot interrupt a reader process still starting, before
    it ignores SIGINT (the pool's ``initializer``). Blocked for the call only:
    a SIGINT to this process meanwhile is delivered as the call returns.
    """
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        return pool.submit(run_job, job)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _get_pool() -> ProcessPoolExecutor | None:
    global _pool
    count = settings.CONNECTOR_SYNCHRONIZE_READERS
    if count <= 0 or time.monotonic() < _retry_at or _closed:
        return None
    with _lock:
        if _closed:
            return None
        if _pool is None:
            _pool = ProcessPoolExecutor(
                max_workers=count,
                mp_context=multiprocessing.get_context("spawn"),
                # Ctrl-C reaches the whole process group: the worker decides what stops.
                # signal.signal itself, not a function of this module: a reader
                # process imports what it runs, and this module imports Django.
                initializer=signal.signal,
                initargs=(signal.SIGINT, signal.SIG_IGN),
            )
            logger.info("Started %s reader processes for Synchronize", count)
        return _pool


def _forget(pool: ProcessPoolExecutor) -> None:
    global _pool, _retry_at
    with _lock:
        if _pool is pool:
            _pool = None
            _retry_at = time.monotonic() + RETRY_SECONDS
            logger.warning(
                "The reader processes of Synchronize stopped; jobs run in the worker for %s s",
                RETRY_SECONDS,
            )
        # Not waited for here (a job's thread); ``close`` joins them before the
        # process exits, so that they are not left to the interpreter's exit
        # hooks. Taken now: the shutdown forgets them.
        _broken.extend(_parts(pool))
    pool.shutdown(wait=False, cancel_futures=True)


def _parts(
    pool: ProcessPoolExecutor,
) -> list[threading.Thread | multiprocessing.process.BaseProcess]:
    thread = getattr(pool, "_executor_manager_thread", None)
    processes = getattr(pool, "_processes", None) or {}
    return [*([thread] if thread is not None else []), *list(processes.values())]


def process_ids() -> list[int]:
    """The reader processes running now (for benchmarks and monitoring)."""
    pool = _pool
    processes = getattr(pool, "_processes", None) or {}
    return [process.pid for process in list(processes.values()) if process.pid]


def shutdown() -> None:
    """Stop the reader processes (they are started again when next needed)."""
    global _pool, _retry_at
    with _lock:
        pool, _pool = _pool, None
        _retry_at = 0.0
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)


def close() -> None:
    """Stop the reader processes for good: the process is about to exit.

    ``serve`` and ``runworker`` call this once their server stopped, so that
    the pool's processes and threads end while the interpreter is whole, not
    in its exit hooks; and so that an action thread that did not stop in
    time cannot start new processes while the interpreter tears itself down
    (its jobs then run in that thread).
    """
    global _closed
    with _lock:
        _closed = True
        broken = list(_broken)
        _broken.clear()
    shutdown()
    for part in broken:
        part.join(JOIN_SECONDS)


class Reader:
    """Runs one Synchronize's jobs: in this process, or in the reader processes."""

    def __init__(self, *, in_processes: bool, checkpoint: Callable[[], None]) -> None:
        self.in_processes = in_processes
        #: Called before each document of a job run here (it raises on a Stop).
        self.checkpoint = checkpoint

    def submit(self, job: FolderJob) -> Future[FolderResult]:
        pool = _get_pool() if self.in_processes else None
        if pool is not None:
            try:
                return _submit_uninterruptible(pool, job)
            except (BrokenProcessPool, RuntimeError):
                # RuntimeError: shut down meanwhile (the process is stopping).
                _forget(pool)
        done: Future[FolderResult] = Future()
        done.set_result(run_job(job, self.checkpoint))
        return done

    def result(self, job: FolderJob, future: Future[FolderResult]) -> FolderResult:
        """The job's result; a job lost with its process is run here instead.

        Waits in steps, checking for a Stop between them: a job that extracts
        documents may take up to a document's time limit, and a Stop must not
        wait for it (the job's result is then dropped).
        """
        try:
            while True:
                try:
                    return future.result(timeout=WAIT_STEP)
                except FutureTimeout:
                    self.checkpoint()
        except BrokenProcessPool:
            logger.warning("A reader process of Synchronize ended abruptly; doing folder %r here",
                           job.path)  # fmt: skip
            if (pool := _pool) is not None:
                _forget(pool)
            return run_job(job, self.checkpoint)
