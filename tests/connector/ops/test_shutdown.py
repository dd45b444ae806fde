"""What SIGTERM does to a web process (plain daphne); the worker's drain is tested in
tests/connector/worker/test_processes.py (test_sigterm_lets_a_running_action_finish...)."""

from __future__ import annotations

import http.client
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from processes import ROOT, free_port

pytestmark = pytest.mark.processes


def get(url: str, timeout: float = 10) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, response.read()


def test_sigterm_stops_daphne_at_once_and_drops_the_requests_in_flight(site):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = site.tmp / "daphne.log"
    with open(log, "wb") as out:
        daphne = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
             "slow_asgi:application"],
            cwd=ROOT,
            env={**site.env, "PYTHONPATH": str(Path(__file__).parent)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        site.wait_for(lambda: _answers(f"{base}/healthz"), 30, "daphne to serve")
        outcome: dict[str, object] = {}

        def slow_request() -> None:
            try:
                outcome["answer"] = get(f"{base}/slow")
            except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
                outcome["error"] = error

        client = threading.Thread(target=slow_request)
        client.start()
        time.sleep(1.0)  # the request is in flight: /slow takes 3 s
        daphne.send_signal(signal.SIGTERM)
        assert daphne.wait(15) == 0, log.read_text()
        client.join(15)
        # daphne cancels every application instance at shutdown: it does not wait
        # for the in-flight request (docs/deployment.md, "Graceful shutdown").
        assert "answer" not in outcome, outcome
        assert "error" in outcome
        with pytest.raises((urllib.error.URLError, ConnectionError)):
            get(f"{base}/healthz", timeout=2)
    finally:
        if daphne.poll() is None:
            daphne.kill()
            daphne.wait(10)


def _answers(url: str) -> bool:
    try:
        return get(url, timeout=2)[0] == 200
    except (urllib.error.URLError, http.client.HTTPException, OSError):
        return False
