from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from worker_helpers import wait_for

from connector.worker.checkpointer import WalCheckpointer

pytestmark = pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite only")


@pytest.mark.django_db(transaction=True)
def test_checkpoint_copies_the_wal_without_waiting():
    with CaptureQueriesContext(connection) as queries:
        WalCheckpointer().checkpoint()
    assert [q["sql"] for q in queries] == ["PRAGMA wal_checkpoint(PASSIVE)"]


@pytest.mark.django_db(transaction=True)
def test_checkpointer_checkpoints_on_its_timer_until_stopped(monkeypatch):
    done = []
    checkpointer = WalCheckpointer(interval=0.01)
    monkeypatch.setattr(checkpointer, "checkpoint", lambda: done.append(1))
    checkpointer.start()
    wait_for(lambda: len(done) >= 3)
    checkpointer.stop()
    count = len(done)
    assert not any(t.name == "wal-checkpoint" for t in threading.enumerate())
    assert len(done) == count


@pytest.mark.django_db(transaction=True)
def test_a_failing_checkpoint_is_logged_and_tried_again(monkeypatch, caplog):
    calls = []

    def failing() -> None:
        calls.append(1)
        raise OSError("disk")

    checkpointer = WalCheckpointer(interval=0.01)
    monkeypatch.setattr(checkpointer, "checkpoint", failing)
    checkpointer.start()
    wait_for(lambda: len(calls) >= 2)
    checkpointer.stop()
    assert "WAL checkpoint failed" in caplog.text
