"""Django's SQLite backend, with the threads of one process queued for the write lock,
and each query's placeholders converted once.

SQLite has one writer at a time. A connection that finds the write lock taken
waits in SQLite's busy handler, which sleeps and tries again, sleeping longer
each time (1, 2, 5, 10, ... up to 100 ms). Under load the threads of one
process (the endpoint's submissions, the worker's claims and finishes) kept
missing each other's commits that way: a Fetch at 50 clients waited up to
half a second for a lock that was free most of that time (bench/README.md,
"Endpoint CPU per request").

Here each ``BEGIN IMMEDIATE`` of this process first takes a lock of its
database file in Python, released when the transaction ends (commit,
rollback, or the connection closes), so the next thread starts the moment
the lock is free. Other processes (``runworker``, ``manage.py`` commands)
still meet SQLite's busy handler, as before. A thread that cannot get the
lock within the connection's timeout has waited as long as SQLite would have:
it tries SQLite's lock once more, without waiting, and either goes on or gets
SQLite's own "database is locked", as it would have without the queue.

Django writes its queries with ``%s`` placeholders and its SQLite cursor turns
them into ``?`` with a regular expression before every execution; for the
few statements the endpoint runs over and over that was 6 % of a Fetch's CPU
(bench/README.md, "Placeholders converted once"). Here the converted text of
each query is remembered (``CONVERTED_QUERIES`` of them, none longer than
``LONGEST_CONVERTED``), so the conversion is Django's own, once per text.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

from django.db.backends.sqlite3 import base

# Django ships no type information for its backends' private methods.
# mypy: disable-error-code="misc, attr-defined"

_locks: dict[str, threading.Lock] = {}
_locks_lock = threading.Lock()


def write_lock(name: str) -> threading.Lock:
    """The one lock of this process for writing to the database file ``name``."""
    with _locks_lock:
        return _locks.setdefault(name, threading.Lock())


#: Converted query texts kept, and the longest kept (an IN list of thousands of
#: values is rare, long, and not worth keeping).
CONVERTED_QUERIES = 1024
LONGEST_CONVERTED = 8192


class CursorWrapper(base.SQLiteCursorWrapper):
    """Django's cursor, with ``%s`` placeholders converted once per query text."""

    def convert_query(self, query: str, *, param_names: list[str] | None = None) -> str:
        if param_names is None and len(query) <= LONGEST_CONVERTED:
            return _to_qmark(query)
        return super().convert_query(query, param_names=param_names)  # type: ignore[no-any-return]


@functools.lru_cache(maxsize=CONVERTED_QUERIES)
def _to_qmark(query: str) -> str:
    # Django's conversion, which uses nothing of the cursor it is a method of.
    return base.SQLiteCursorWrapper.convert_query(None, query)  # type: ignore[arg-type]


class DatabaseWrapper(base.DatabaseWrapper):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: The write lock this connection holds, while it holds it.
        self._held: threading.Lock | None = None

    def create_cursor(self, name: str | None = None) -> CursorWrapper:
        return self.connection.cursor(factory=CursorWrapper)  # type: ignore[no-any-return]

    def _start_transaction_under_autocommit(self) -> None:
        if self.transaction_mode not in {"IMMEDIATE", "EXCLUSIVE"}:
            super()._start_transaction_under_autocommit()
            return
        lock = write_lock(str(self.settings_dict["NAME"]))
        timeout = float(self.settings_dict["OPTIONS"].get("timeout", 5))
        if lock.acquire(timeout=timeout):
            self._held = lock
        try:
            if self._held is not None:
                super()._start_transaction_under_autocommit()
            else:
                self._begin_without_waiting()
        except BaseException:
            self._release_write_lock()
            raise

    def _begin_without_waiting(self) -> None:
        """BEGIN with SQLite's busy wait off: the timeout was spent waiting in Python."""
        with self.cursor() as cursor:
            cursor.execute("PRAGMA busy_timeout")
            (milliseconds,) = cursor.fetchone()
            cursor.execute("PRAGMA busy_timeout = 0")
            try:
                super()._start_transaction_under_autocommit()
            finally:
                cursor.execute(f"PRAGMA busy_timeout = {int(milliseconds)}")

    def _release_write_lock(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            held.release()

    def _commit(self) -> None:
        try:
            super()._commit()
        finally:
            self._release_write_lock()

    def _rollback(self) -> None:
        try:
            super()._rollback()
        finally:
            self._release_write_lock()

    def _close(self) -> None:
        try:
            super()._close()
        finally:
            self._release_write_lock()
