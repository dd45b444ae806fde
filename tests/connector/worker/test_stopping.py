"""The first stop signal stops gracefully, a second exits at once (with real processes:
test_processes.py::test_a_second_signal_exits_at_once_and_the_lease_recovers_the_action)."""

from __future__ import annotations

import faulthandler
import signal
import sys

import pytest

from connector.worker import stopping


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
