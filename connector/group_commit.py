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

A thread that answers several requests in turn (the endpoint's batches,
``connector.aci.batches``) shares one transaction between their writes
instead: a ``SharedTransaction`` made current in that thread is opened by
the first write and committed once, when the last request is answered.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from django.db import connection, transaction

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: The ``SharedTransaction`` current in this thread, if any.
_current = threading.local()


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
        """``write()`` committed, alone or with others; its result or its exception.

        In a thread with a current ``SharedTransaction``: ``write()`` done in it,
        to be committed with the others' when it ends (unless the caller is in a
        transaction of its own, opened before the shared one: then in that).
        """
        shared: SharedTransaction | None = getattr(_current, "shared", None)
        if shared is not None and (shared.opened or not connection.in_atomic_block):
            return shared.write(write)
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


class SharedTransaction:
    """One transaction for the writes of the requests one thread answers in turn.

    ``GroupCommit.run`` calls in the thread while it is ``current()`` write in
    it: the first opens it, each later one runs in a savepoint of its own (a
    write that raises is undone alone). ``commit()`` ends it. Until then
    nothing of it is stored, so the thread must not answer its requests
    before that.
    """

    def __init__(self) -> None:
        self._atomic: transaction.Atomic | None = None

    @property
    def opened(self) -> bool:
        return self._atomic is not None

    @contextlib.contextmanager
    def current(self) -> Iterator[None]:
        _current.shared = self
        try:
            yield
        finally:
            _current.shared = None

    def write(self, write: Callable[[], T]) -> T:
        if self._atomic is not None:
            with transaction.atomic():  # a savepoint
                return write()
        # The first write opens the transaction; no savepoint needed: if it
        # raises, the transaction holds nothing else, and is rolled back.
        atomic = transaction.atomic()
        atomic.__enter__()
        try:
            result = write()
        except BaseException as error:
            atomic.__exit__(type(error), error, error.__traceback__)
            raise
        self._atomic = atomic
        return result

    def commit(self) -> bool:
        """Commit the writes (True), or roll them back (False) if the commit failed or
        a request left the transaction unusable: then none of them is stored."""
        atomic, self._atomic = self._atomic, None
        if atomic is None:
            return True
        if connection.needs_rollback or connection.closed_in_transaction:
            # Django would roll back without a word: the answers must not say "done".
            logger.warning("A shared transaction was left unusable; rolled back")
            atomic.__exit__(None, None, None)
            return False
        try:
            atomic.__exit__(None, None, None)
        except Exception:
            logger.warning("The commit of a shared transaction failed", exc_info=True)
            return False
        return True

    def roll_back(self) -> None:
        """Undo the writes (nothing to do if none was made)."""
        atomic, self._atomic = self._atomic, None
        if atomic is not None:
            connection.needs_rollback = True
            atomic.__exit__(None, None, None)
