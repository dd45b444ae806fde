"""The SQLite backend queues this process's writers in Python (connector/sqlite/base.py).

Each test's second writer runs with SQLite's own busy wait switched off
(``PRAGMA busy_timeout = 0``): without the Python queue its BEGIN IMMEDIATE
would fail at once with "database is locked" while the first writer holds
the lock, so the tests need no timing to tell the two apart.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.db import DatabaseError, OperationalError, connection, connections, transaction
from django.utils import timezone

from connector.models import WorkerProcess

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's one write lock"),
]


def the_lock() -> threading.Lock:
    from connector.sqlite.base import write_lock

    return write_lock(str(connection.settings_dict["NAME"]))


def in_thread(work: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """Run ``work`` in a new thread with its own connection and no SQLite busy wait."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("PRAGMA busy_timeout = 0")
            outcome.append(work())
        except Exception as error:
            outcome.append(error)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def add(name: str) -> None:
    """A row to write (any table would do)."""
    now = timezone.now()
    WorkerProcess.objects.create(id=name, hostname="h", pid=1, started_at=now, heartbeat_at=now)


def write(name: str) -> str:
    with transaction.atomic():
        add(name)
    return name


def test_sqlite_connections_use_the_connectors_backend():
    from connector.sqlite.base import DatabaseWrapper

    assert isinstance(connections["default"], DatabaseWrapper)
    assert connection.vendor == "sqlite"


def test_a_second_writer_waits_for_the_first_to_commit_instead_of_failing():
    with transaction.atomic():
        add("first")
        thread, outcome = in_thread(lambda: write("second"))
        thread.join(timeout=0.3)
        assert thread.is_alive(), "the second writer waits while the first holds the lock"
    thread.join(timeout=10)
    assert outcome == ["second"]
    assert set(WorkerProcess.objects.values_list("id", flat=True)) == {"first", "second"}
    assert not the_lock().locked()


def test_a_rolled_back_transaction_lets_the_next_writer_in():
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        add("undone")
        1 / 0  # noqa: B018
    assert not the_lock().locked()
    thread, outcome = in_thread(lambda: write("next"))
    thread.join(timeout=10)
    assert outcome == ["next"]
    assert list(WorkerProcess.objects.values_list("id", flat=True)) == ["next"]


def test_closing_a_connection_in_a_transaction_lets_the_next_writer_in():
    def close_inside() -> None:
        try:
            with transaction.atomic():
                add("lost")
                connection.close()
        except DatabaseError:
            pass  # leaving the block on a closed connection

    thread, outcome = in_thread(close_inside)
    thread.join(timeout=10)
    assert not the_lock().locked()
    thread, outcome = in_thread(lambda: write("after"))
    thread.join(timeout=10)
    assert outcome == ["after"]


def test_a_failed_begin_gives_the_lock_back(monkeypatch):
    from django.db.backends.sqlite3 import base

    def fail(self: Any) -> None:
        raise OperationalError("database is locked")

    monkeypatch.setattr(base.DatabaseWrapper, "_start_transaction_under_autocommit", fail)
    with pytest.raises(OperationalError), transaction.atomic():
        pass
    assert not the_lock().locked()


def test_a_writer_that_cannot_get_the_lock_in_time_goes_on_to_sqlites_own_wait():
    lock = the_lock()
    assert lock.acquire(timeout=5)
    try:

        def short_wait() -> str:
            connection.settings_dict = {
                **connection.settings_dict,
                "OPTIONS": {**connection.settings_dict["OPTIONS"], "timeout": 0.1},
            }
            return write("anyway")

        thread, outcome = in_thread(short_wait)
        thread.join(timeout=10)
        # SQLite's lock was free: the write went through without the Python lock,
        # and did not release the lock it never held.
        assert outcome == ["anyway"]
        assert lock.locked()
    finally:
        lock.release()


def test_a_writer_that_waited_its_timeout_for_the_lock_does_not_wait_again_in_sqlite():
    """The timeout was spent in the Python queue: SQLite is tried once more, without its
    busy wait, and its "database is locked" comes then, as it would have without the queue."""
    import sqlite3

    lock = the_lock()
    holder = sqlite3.connect(str(connection.settings_dict["NAME"]), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    assert lock.acquire(timeout=5)
    outcome: list[Any] = []

    def writer() -> None:
        try:
            connection.settings_dict = {
                **connection.settings_dict,
                "OPTIONS": {**connection.settings_dict["OPTIONS"], "timeout": 0.2},
            }
            with connection.cursor() as cursor:
                cursor.execute("PRAGMA busy_timeout = 5000")
            started = time.monotonic()
            try:
                write("blocked")
            except OperationalError as error:
                outcome.append((str(error), time.monotonic() - started))
            with connection.cursor() as cursor:
                cursor.execute("PRAGMA busy_timeout")
                outcome.append(cursor.fetchone()[0])
        finally:
            connection.close()

    try:
        thread = threading.Thread(target=writer)
        thread.start()
        thread.join(timeout=20)
    finally:
        lock.release()
        holder.execute("ROLLBACK")
        holder.close()
    (message, waited), busy_timeout = outcome
    assert "locked" in message
    assert waited < 2, "no second wait of 5 s in SQLite's busy handler"
    assert busy_timeout == 5000, "the connection's busy timeout is as it was"
    assert not lock.locked()


# Placeholders converted once per query text.


def test_queries_run_with_their_placeholders_converted_once():
    from connector.sqlite.base import CursorWrapper, _to_qmark

    _to_qmark.cache_clear()
    with connection.cursor() as cursor:
        assert isinstance(cursor.cursor, CursorWrapper)
        for value in ("a", "b", "c"):
            cursor.execute("SELECT %s, '100%%', %s", [value, 2])
            assert cursor.fetchone() == (value, "100%", 2)
        # The pyformat style (named parameters) converts as Django's does.
        cursor.execute("SELECT %(first)s || %(second)s", {"first": "x", "second": "y"})
        assert cursor.fetchone() == ("xy",)
    assert _to_qmark.cache_info().misses == 1
    assert _to_qmark.cache_info().hits == 2


def test_a_long_query_is_converted_without_being_kept():
    from connector.sqlite.base import LONGEST_CONVERTED, _to_qmark

    _to_qmark.cache_clear()
    values = list(range(LONGEST_CONVERTED // 3))
    sql = "SELECT count(*) FROM (SELECT 1 WHERE 1 IN (" + ", ".join(["%s"] * len(values)) + "))"
    assert len(sql) > LONGEST_CONVERTED
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        assert cursor.fetchone() == (1,)
    assert _to_qmark.cache_info().currsize == 0
