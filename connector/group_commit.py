"""Writes that arrive together share one transaction and one commit (SQLite).

On SQLite every commit of a submission syncs the write-ahead log to disk
(``synchronous=FULL``: a returned token survives a power loss), which was a
quarter of a Fetch's CPU, and the one write lock made concurrent submissions
wait for each other's syncs anyway (bench/README.md, "Endpoint CPU per
request"). With ``GroupCommit.run`` the first thread to arrive commits for
every thread that comes while it does: their writes run in its transaction,
each in a savepoint of its own (a write that raises is undone alone and raises
in its own thread), and each thread returns once the shared commit is done,
so an answer still follows a durable commit. A write that comes alone runs
as before, in a transaction of its own.

The writes run in the committing thread: they must use ``connection`` (the
thread's own), not a connection of the thread that asked.

Elsewhere each write simply runs in ``transaction.atomic()``: PostgreSQL
commits concurrent transactions side by side and groups their log flushes
itself, and a caller already in a transaction must find the write in it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from django.db import connection, transaction

T = TypeVar("T")


class _Write(Generic[T]):
    def __init__(self, write: Callable[[], T]) -> None:
        self.write = write
        self.done = False
        self.result: T | None = None
        self.error: BaseException | None = None

    def outcome(self) -> T:
        if self.error is not None:
            raise self.error
        return self.result  # type: ignore[return-value]


class GroupCommit:
    """See the module docstring. Writes of any kind may share one: each is a closure."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._waiting: list[_Write[object]] = []
        self._committing = False
        #: The thread that commits, while it does.
        self._committer: int | None = None

    def run(self, write: Callable[[], T]) -> T:
        """``write()`` committed, alone or with others; its result or its exception."""
        if (
            connection.vendor != "sqlite"
            or connection.in_atomic_block
            # From the commit's own on-commit hooks: waiting for that commit would never end.
            or self._committer == threading.get_ident()
        ):
            with transaction.atomic():
                return write()
        mine = _Write(write)
        with self._changed:
            self._waiting.append(mine)  # type: ignore[arg-type]
            while self._committing and not mine.done:
                self._changed.wait()
            if mine.done:
                return mine.outcome()
            self._committing, self._committer = True, threading.get_ident()
            batch, self._waiting = self._waiting, []
        try:
            _commit_together(batch)
        finally:
            with self._changed:
                self._committing, self._committer = False, None
                self._changed.notify_all()
        return mine.outcome()


def _commit_together(batch: list[_Write[object]]) -> None:
    """Run the writes in one transaction; each ends with its result or its error."""
    try:
        with transaction.atomic():
            if len(batch) == 1:
                batch[0].result = batch[0].write()
            else:
                for write in batch:
                    try:
                        with transaction.atomic():  # a savepoint
                            write.result = write.write()
                    except Exception as error:
                        write.error = error
    except BaseException as error:
        # Nothing was committed (or a lone write failed): each write fails with it.
        for write in batch:
            if write.error is None:
                write.error, write.result = error, None
    finally:
        for write in batch:
            write.done = True
