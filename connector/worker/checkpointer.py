"""Keeps SQLite's write-ahead log short from a thread of its own.

By default SQLite checkpoints the WAL (copies it into the database file and
syncs) inside whichever commit crosses the threshold: a request or an action
then waits several milliseconds for work that is not its own. A worker process
on SQLite checkpoints every second instead, off the request path; the
threshold set in the settings stays as the safety net for other processes.
"""

from __future__ import annotations

import logging
import threading

from django.db import connection, connections

logger = logging.getLogger(__name__)

CHECKPOINT_INTERVAL_SECONDS = 1.0


class WalCheckpointer:
    def __init__(self, interval: float = CHECKPOINT_INTERVAL_SECONDS) -> None:
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start checkpointing if the database is SQLite; otherwise do nothing."""
        if connection.vendor != "sqlite" or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="wal-checkpoint", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def checkpoint(self) -> None:
        # PASSIVE: copies what it can without waiting for readers or writers.
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def _loop(self) -> None:
        try:
            while not self._stop.wait(self.interval):
                try:
                    self.checkpoint()
                except Exception:
                    logger.exception("WAL checkpoint failed; SQLite's own will run instead")
        finally:
            connections.close_all()
