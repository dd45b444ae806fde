"""Durability with real processes: restart, SIGKILL, SIGTERM.

Each test runs ``manage.py`` children on their own SQLite file under tmp_path,
with short lease, heartbeat and poll times. Actions are submitted with
``manage.py shell`` (the queue module itself), so these tests do not depend on
the ACI endpoint; only ``test_serve_starts_an_action_submitted_over_http_at_once``
goes through HTTP. The test process reads the children's database with sqlite3.
"""

from __future__ import annotations

import json
import signal
import time
import urllib.request
from datetime import UTC, datetime

import pytest
from processes import LEASE, cpu_seconds, free_port, parse_time

pytestmark = pytest.mark.processes


def test_serve_stopped_with_actions_queued_runs_them_all_after_restart(site):
    # One thread: the Sleep runs, the NoOps wait behind it.
    threads = {"CONNECTOR_FETCH_THREADS": "1", "CONNECTOR_SHUTDOWN_GRACE_SECONDS": "0.3"}
    sleep, *noops = site.submit(
        {"fetch_action": "Sleep", "params": {"Seconds": "1.5", "Steps": "150"}, "priority": 1},
        *[{"fetch_action": "NoOp", "params": {}} for _ in range(4)],
    )
    port = str(free_port())
    server = site.start("serve", "--port", port, **threads)
    site.wait_for(lambda: site.action(sleep)["status"] == "Processing", 15, "the Sleep to start")
    server.send_signal(signal.SIGTERM)
    assert server.wait(10) == 0, site.logs()
    # The Sleep was interrupted after the grace and left to recovery, not Stopped.
    interrupted = site.action(sleep)
    assert interrupted["status"] == "Processing"
    assert parse_time(interrupted["lease_expires_at"]) < datetime.now(UTC).replace(tzinfo=None)
    assert site.statuses(noops) == ["Queued"] * 4
    assert site.query("SELECT count(*) FROM connector_workerprocess") == [(0,)]

    again = site.start("serve", "--port", port, **threads)
    site.wait_for(lambda: site.statuses([sleep, *noops]) == ["Finished"] * 5, 15, "all to finish")
    assert site.action(sleep)["attempts"] == 2
    again.send_signal(signal.SIGTERM)
    assert again.wait(10) == 0, site.logs()


@pytest.mark.parametrize(
    ("max_attempts", "outcome"), [("2", "Finished"), ("1", "Error")], ids=["requeued", "error"]
)
def test_worker_killed_in_the_middle_of_an_action_has_it_recovered_by_the_policy(
    site, max_attempts, outcome
):
    site.env["CONNECTOR_MAX_ATTEMPTS"] = max_attempts
    (pk,) = site.submit({"fetch_action": "Sleep", "params": {"Seconds": "1", "Steps": "100"}})
    first = site.start("runworker", "fetch")
    first_id = site.wait_for_worker(first)
    site.wait_for(
        lambda: json.loads(site.action(pk)["counts"] or "{}").get("SLEEP"), 10, "progress"
    )
    first.send_signal(signal.SIGKILL)
    first.wait(5)
    killed_at = time.monotonic()
    lease_end = parse_time(site.action(pk)["lease_expires_at"])
    assert site.action(pk)["worker"] == first_id

    second = site.start("runworker", "fetch")
    site.wait_for_worker(second)
    site.wait_for(
        lambda: site.action(pk)["worker"] != first_id or site.action(pk)["status"] != "Processing",
        LEASE + 5,
        "the action to be recovered",
    )
    # Recovered within the lease (plus a heartbeat and the second worker's start-up).
    assert time.monotonic() - killed_at < LEASE + 5
    final = site.wait_for(
        lambda: (a := site.action(pk))["status"] in {"Finished", "Error", "Stopped"} and a,
        10,
        "the action to end",
    )
    assert final["status"] == outcome, site.logs()
    log = [row[0] for row in site.query("SELECT message FROM connector_actionlogline")]
    if outcome == "Finished":
        assert final["attempts"] == 2
        assert parse_time(final["started_at"]) >= lease_end
        assert any("stopped responding; action queued again" in line for line in log)
    else:
        assert "tried 1 times" in final["error"]
        assert any("marked Error" in line for line in log)
    second.send_signal(signal.SIGTERM)
    assert second.wait(10) == 0, site.logs()


def test_sigterm_lets_a_running_action_finish_within_the_grace(site):
    worker = site.start("runworker", "fetch", CONNECTOR_POLL_SECONDS="2")
    site.wait_for_worker(worker)
    # Idle: next to no CPU (a wake-up or a 2 s poll, not a busy loop).
    before = cpu_seconds(worker.pid)
    time.sleep(2)
    assert cpu_seconds(worker.pid) - before < 0.2
    (pk,) = site.submit({"fetch_action": "Sleep", "params": {"Seconds": "1.5", "Steps": "150"}})
    site.wait_for(lambda: site.action(pk)["status"] == "Processing", 10, "the Sleep to start")
    signalled = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(10) == 0, site.logs()
    assert time.monotonic() - signalled < 5
    assert site.action(pk)["status"] == "Finished"
    assert site.query("SELECT count(*) FROM connector_workerprocess") == [(0,)]


def test_serve_starts_an_action_submitted_over_http_at_once(site):
    port = free_port()
    # A long poll: only the wake-up through the in-memory layer can start it quickly.
    server = site.start("serve", "--port", str(port), CONNECTOR_POLL_SECONDS="30")
    site.wait_for_worker(server)
    url = f"http://127.0.0.1:{port}/action=Fetch&FetchAction=NoOp&ResponseFormat=simplejson"
    tokens = []
    for _ in range(5):
        with urllib.request.urlopen(url, timeout=10) as response:
            tokens.append(json.load(response)["autnresponse"]["responsedata"]["token"])
        time.sleep(0.05)
    rows = site.wait_for(
        lambda: (
            (
                r := site.query(
                    "SELECT status, queued_at, started_at FROM connector_action WHERE token IN"
                    f" ({','.join('?' * len(tokens))})",
                    *tokens,
                )
            )
            and all(status == "Finished" for status, _, _ in r)
            and r
        ),
        5,
        "the actions to finish",
    )
    for _, queued, started in rows:
        assert (parse_time(started) - parse_time(queued)).total_seconds() < 0.5
    server.send_signal(signal.SIGTERM)
    assert server.wait(10) == 0, site.logs()
