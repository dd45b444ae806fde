"""What SIGTERM does to a web process (plain daphne) and the requests in flight.

The worker's drain on SIGTERM is tested in tests/connector/worker/test_processes.py
(test_sigterm_lets_a_running_action_finish_within_the_grace).
"""

from __future__ import annotations

import http.client
import json
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

ERRORS = (urllib.error.URLError, http.client.HTTPException, OSError)


def get(url: str, timeout: float = 10) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, response.read()


def sigterm_during_a_slow_request(site, **env: str) -> dict[str, object]:
    """Start daphne, send a 3 s request, SIGTERM daphne 1 s in; what the client got."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = site.tmp / "daphne.log"
    with open(log, "wb") as out:
        daphne = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
             "slow_asgi:application"],
            cwd=ROOT,
            env={**site.env, "PYTHONPATH": str(Path(__file__).parent), **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        site.wait_for(lambda: _answers(f"{base}/readyz"), 30, "daphne to serve")
        # Plain daphne with DEBUG off serves the static files too (connector/asgi.py).
        status, css = get(f"{base}/static/css/connector.css")
        assert status == 200 and b"prefers-color-scheme" in css
        outcome: dict[str, object] = {}

        def slow_request() -> None:
            try:
                outcome["answer"] = get(f"{base}/healthz")
            except ERRORS as error:
                outcome["error"] = error

        client = threading.Thread(target=slow_request)
        client.start()
        time.sleep(1.0)  # in flight: the view takes 3 s
        daphne.send_signal(signal.SIGTERM)
        assert daphne.wait(20) == 0, log.read_text()
        client.join(20)
        # Stopped: no new connections.
        with pytest.raises(ERRORS):
            get(f"{base}/readyz", timeout=2)
        outcome["log"] = log.read_text()
        return outcome
    finally:
        if daphne.poll() is None:
            daphne.kill()
            daphne.wait(10)


def _answers(url: str) -> bool:
    try:
        return get(url, timeout=2)[0] == 200
    except ERRORS:
        return False


def test_sigterm_lets_a_request_in_flight_answer_then_daphne_exits(site):
    """daphne cancels the application instances at SIGTERM; the drain
    (connector.ops.drain) lets the view finish and answer before daphne closes
    the connections and exits 0."""
    outcome = sigterm_during_a_slow_request(site)
    assert "error" not in outcome, outcome
    status, body = outcome["answer"]
    assert status == 200
    assert json.loads(body) == {"status": "slow but ok"}
    assert "/healthz gets up to 10 s to answer" in str(outcome["log"])


def test_a_request_longer_than_the_drain_time_does_not_hold_up_the_exit(site):
    outcome = sigterm_during_a_slow_request(site, CONNECTOR_HTTP_DRAIN_SECONDS="0.5")
    # daphne exited 0 (checked in the helper); whether this answer got out is
    # a race once the drain is over, so only the log is checked.
    assert "/healthz did not answer within 0.5 s" in str(outcome["log"])
