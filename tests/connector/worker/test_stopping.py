"""The first stop signal stops gracefully, a second exits at once (with real processes:
test_processes.py::test_a_second_signal_exits_at_once_and_the_lease_recovers_the_action)."""

from __future__ import annotations

import faulthandler
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from connector.worker import stopping

ROOT = Path(__file__).resolve().parents[3]


def test_the_first_signal_calls_the_graceful_stop_and_the_second_exits(monkeypatch):
    exits: list[int] = []
    monkeypatch.setattr(stopping.os, "_exit", exits.append)
    firsts: list[int] = []
    signals = stopping.StopSignals(firsts.append)
    signals.handle(signal.SIGTERM)
    assert (firsts, exits) == ([signal.SIGTERM], [])
    signals.handle(signal.SIGINT)
    assert (firsts, exits) == ([signal.SIGTERM], [128 + signal.SIGINT])


def test_report_crashes_turns_on_the_fault_handler():
    was = faulthandler.is_enabled()
    faulthandler.disable()
    try:
        stopping.report_crashes()
        assert faulthandler.is_enabled()
    finally:
        faulthandler.disable()
        if was:
            faulthandler.enable(file=sys.stderr)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_stop_signals_are_sigint_and_sigterm(signum):
    assert signum in stopping.STOP_SIGNALS


def test_end_threads_waits_for_daemon_threads_that_end_and_names_those_that_do_not():
    # Issue 14, 2: a daemon thread still running while the interpreter
    # finalizes can crash it; serve and runworker wait for theirs first.
    ending, stuck = threading.Event(), threading.Event()
    finishing = threading.Thread(target=lambda: ending.wait(5), name="finishing", daemon=True)
    hanging = threading.Thread(target=lambda: stuck.wait(10), name="hanging", daemon=True)
    finishing.start()
    hanging.start()
    try:
        threading.Timer(0.1, ending.set).start()
        left = stopping.end_threads(timeout=0.5)
        assert not finishing.is_alive()
        assert "hanging" in left and "finishing" not in left
    finally:
        stuck.set()
        hanging.join()


def test_exit_process_returns_when_no_thread_is_left_and_skips_finalization_otherwise(
    monkeypatch, caplog
):
    exits: list[int] = []
    watched: list[float] = []
    monkeypatch.setattr(stopping.os, "_exit", exits.append)
    monkeypatch.setattr(stopping, "_watch_the_last_joins", watched.append)
    stopping.exit_process([])
    assert exits == []
    assert watched == [stopping.THREADS_END_SECONDS]
    stopping.exit_process(["fetch-0"])
    assert exits == [0]
    assert "Threads fetch-0 did not end" in caplog.text


def test_a_thread_left_waiting_for_a_stopped_loop_does_not_hold_the_exit(tmp_path):
    """A request in flight when serve stopped can wait forever in a non-daemon
    thread for the event loop that is gone; Python joins such threads before it
    exits, with no limit. After exit_process, the process still ends, status 0,
    and says which thread it did not wait for."""
    script = tmp_path / "stuck.py"
    script.write_text(
        "import logging, threading\n"
        "logging.basicConfig(level=logging.INFO)\n"
        "from django.conf import settings\n"
        "settings.configure()\n"
        "from connector.worker import stopping\n"
        "stopping.THREADS_END_SECONDS = 0.5\n"
        "threading.Thread(target=threading.Event().wait, name='cut-off-request').start()\n"
        "stopping.exit_process(stopping.end_threads())\n"
    )
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONPATH": str(ROOT)},  # this checkout's connector
    )
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 15
    assert "Threads cut-off-request still waited 0.5 s after the stop" in done.stderr


def test_the_wake_up_sender_thread_ends_on_close():
    from connector import wakeups

    async def nothing() -> None:
        return None

    wakeups._sender.send(nothing, "a test message")
    thread = wakeups._sender._thread
    assert thread is not None and thread.is_alive()
    wakeups.close()
    assert not thread.is_alive()
    assert wakeups._sender._thread is None
