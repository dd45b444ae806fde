"""The reader processes end with the worker process, while the interpreter is whole."""

from __future__ import annotations

import pytest

from connector.ingest import readers


@pytest.fixture
def closed_readers(monkeypatch: pytest.MonkeyPatch, settings) -> None:  # type: ignore[no-untyped-def]
    settings.CONNECTOR_SYNCHRONIZE_READERS = 1
    # close() is for good in a process; this one goes on with other tests.
    monkeypatch.setattr(readers, "_closed", False)
    yield
    readers.shutdown()


def test_close_stops_the_reader_processes_and_none_start_after_it(closed_readers):
    pool = readers._get_pool()
    assert pool is not None
    pool.submit(int, "1").result(timeout=60)  # started for real
    processes = list(pool._processes.values())  # type: ignore[attr-defined]
    assert processes
    readers.close()
    # Joined, not left to the interpreter's exit hooks.
    assert all(not process.is_alive() for process in processes)
    assert readers.process_ids() == []
    # An action thread still running after the close reads in itself: no new
    # processes while the interpreter exits.
    assert readers._get_pool() is None
    assert readers._pool is None


def test_close_joins_a_pool_given_up_on_after_it_broke(closed_readers, monkeypatch):
    # Issue 14, 2: a Ctrl-C to the process group once killed reader processes
    # still starting; the broken pool was shut down without waiting, and its
    # thread and processes were left to the interpreter's exit hooks.
    monkeypatch.setattr(readers, "_broken", [])
    pool = readers._get_pool()
    assert pool is not None
    pool.submit(int, "1").result(timeout=60)
    processes = list(pool._processes.values())  # type: ignore[attr-defined]
    manager = pool._executor_manager_thread  # type: ignore[attr-defined]
    readers._forget(pool)
    assert readers._broken == [manager, *processes]
    readers.close()
    assert readers._broken == []
    assert all(not process.is_alive() for process in processes)
    assert not manager.is_alive()
