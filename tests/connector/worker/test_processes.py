"""Durability with real processes: restart, SIGKILL, SIGTERM.

Each test runs ``manage.py`` children on their own SQLite file under tmp_path,
with short lease, heartbeat and poll times. Actions are submitted with
``manage.py shell`` (the queue module itself), so these tests do not depend on
the ACI endpoint; only ``test_serve_starts_an_action_submitted_over_http_at_once``
goes through HTTP. The test process reads the children's database with sqlite3.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
import urllib.request

import pytest
from processes import LEASE, cpu_seconds, free_port, parse_time

pytestmark = pytest.mark.processes


def test_serve_stopped_with_actions_queued_runs_them_all_after_restart(site):
    # One thread: the Sleep runs, the NoOps wait behind it.
    threads = {"CONNECTOR_FETCH_THREADS": "1", "CONNECTOR_SHUTDOWN_GRACE_SECONDS": "30"}
    sleep, *noops = site.submit(
        {"fetch_action": "Sleep", "params": {"Seconds": "20", "Steps": "2000"}, "priority": 1},
        *[{"fetch_action": "NoOp", "params": {}} for _ in range(4)],
    )
    port = str(free_port())
    server = site.start("serve", "--port", port, **threads)
    site.wait_for(lambda: site.action(sleep)["status"] == "Processing", 15, "the Sleep to start")
    signalled = time.monotonic()
    server.send_signal(signal.SIGTERM)
    assert server.wait(10) == 0, site.logs()
    # Asked to stop at its next checkpoint, not waited for (issue 14, 2: 32 s).
    assert time.monotonic() - signalled < 5
    # Interrupted by the shutdown: queued again, its attempt given back, not Stopped.
    interrupted = site.action(sleep)
    assert (interrupted["status"], interrupted["attempts"]) == ("Queued", 0)
    assert site.statuses(noops) == ["Queued"] * 4
    assert site.query("SELECT count(*) FROM connector_workerprocess") == [(0,)]
    notes = [row[0] for row in site.query("SELECT note FROM connector_actiontransition")]
    assert any("shut down; action queued again (attempt not spent)" in note for note in notes)

    site.manage(
        "shell", "-c",
        "from connector.models import Action;"
        f" Action.objects.filter(pk={sleep}).update(params={{'Seconds': '0.1', 'Steps': '10'}})",
    )  # fmt: skip
    again = site.start("serve", "--port", port, **threads)
    site.wait_for(lambda: site.statuses([sleep, *noops]) == ["Finished"] * 5, 15, "all to finish")
    assert site.action(sleep)["attempts"] == 1
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


def test_a_killed_workers_action_is_recovered_within_a_lease_and_a_heartbeat(site):
    """The documented bound (docs/deployment.md, "How long recovery takes"): the
    lease runs out at most a lease after the last renewal, and another worker
    finds it at its next heartbeat. Issue 14, 7 measured lease + up to one
    heartbeat against a documented "the lease"."""
    heartbeat = float(site.env["CONNECTOR_HEARTBEAT_SECONDS"])
    (pk,) = site.submit({"fetch_action": "Sleep", "params": {"Seconds": "60", "Steps": "6000"}})
    victim = site.start("runworker", "fetch")
    victim_id = site.wait_for_worker(victim)
    site.wait_for(lambda: site.action(pk)["worker"] == victim_id, 15, "the victim to run it")
    survivor = site.start("runworker", "fetch", CONNECTOR_SHUTDOWN_GRACE_SECONDS="0.5")
    site.wait_for_worker(survivor)
    time.sleep(2 * heartbeat)  # the survivor is in its heartbeat rhythm
    victim.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    victim.wait(5)
    site.wait_for(
        lambda: site.action(pk)["worker"] != victim_id, LEASE + 10, "the action to be recovered"
    )
    took = time.monotonic() - killed
    # Slack for this test's own polling (50 ms) and a busy machine.
    assert took < LEASE + heartbeat + 0.75, took
    notes = [row[0] for row in site.query("SELECT note FROM connector_actiontransition")]
    assert f"Worker {victim_id} stopped responding; action queued again" in notes
    site.wait_for(lambda: site.action(pk)["attempts"] == 2, 5, "the survivor to claim it")
    survivor.send_signal(signal.SIGTERM)
    assert survivor.wait(10) == 0, site.logs()


def test_sigterm_queues_a_running_action_again_unspent_and_exits_at_once(site):
    """Pins the change of issue 14, 2: a running action is no longer waited
    for until the grace is over; it is asked to stop at its next checkpoint."""
    worker = site.start("runworker", "fetch", CONNECTOR_POLL_SECONDS="2")
    site.wait_for_worker(worker)
    # Idle: next to no CPU (a wake-up or a 2 s poll, not a busy loop).
    before = cpu_seconds(worker.pid)
    time.sleep(2)
    assert cpu_seconds(worker.pid) - before < 0.2
    (pk,) = site.submit({"fetch_action": "Sleep", "params": {"Seconds": "20", "Steps": "2000"}})
    site.wait_for(lambda: site.action(pk)["status"] == "Processing", 10, "the Sleep to start")
    signalled = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(10) == 0, site.logs()
    assert time.monotonic() - signalled < 3
    assert (site.action(pk)["status"], site.action(pk)["attempts"]) == ("Queued", 0)
    assert site.query("SELECT count(*) FROM connector_workerprocess") == [(0,)]


@pytest.mark.parametrize("command", [("serve",), ("runworker", "fetch")], ids=lambda c: c[0])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_a_second_signal_exits_at_once_and_the_lease_recovers_the_action(site, command, signum):
    # One step: the Sleep reaches no checkpoint for 30 s, so the graceful
    # shutdown would wait the whole grace for it.
    (pk,) = site.submit({"fetch_action": "Sleep", "params": {"Seconds": "30", "Steps": "1"}})
    args = [*command, "--port", str(free_port())] if command[0] == "serve" else list(command)
    process = site.start(*args, CONNECTOR_SHUTDOWN_GRACE_SECONDS="30")
    worker_id = site.wait_for_worker(process)
    site.wait_for(lambda: site.action(pk)["status"] == "Processing", 10, "the Sleep to start")
    process.send_signal(signum)
    time.sleep(0.5)
    assert process.poll() is None, site.logs()  # waiting for the action's checkpoint
    signalled = time.monotonic()
    process.send_signal(signum)
    assert process.wait(5) == 128 + signum, site.logs()
    assert time.monotonic() - signalled < 2
    assert f"{signum.name} again: exiting at once" in site.logs()
    # Left to its lease: still held by the exited worker until it runs out.
    assert site.action(pk)["worker"] == worker_id
    # Its own grace short: the recovered Sleep reaches no checkpoint for 30 s either.
    again = site.start("runworker", "fetch", CONNECTOR_SHUTDOWN_GRACE_SECONDS="0.5")
    site.wait_for(
        lambda: site.action(pk)["worker"] not in {worker_id},
        LEASE + 5,
        "the lease to run out and the action to be recovered",
    )
    again.send_signal(signal.SIGTERM)
    assert again.wait(10) == 0, site.logs()


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


RESTARTS = int(os.environ.get("CONNECTOR_TEST_RESTARTS", "20"))


@pytest.mark.timeout(120 + RESTARTS * 20)
def test_serve_interrupted_while_synchronize_uses_reader_processes_exits_0_every_time(site):
    """Issue 14, 2: 2 of 7 Ctrl-Cs ended in a segmentation fault after "Connector
    stopped." while a Synchronize ran with its reader processes. Each start here
    runs a Synchronize large enough for reader processes and gets SIGINT at a
    random moment of it, as a terminal's Ctrl-C sends it: to the whole process
    group at once (serve and its reader processes); every exit must be 0 (a
    crash would be -11, and PYTHONFAULTHANDLER puts its stacks in the log)."""
    demo = site.tmp / "demo"
    for n in range(8000):
        folder = demo / f"folder{n % 40}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"doc{n}.txt").write_text(f"Document {n}\n")
    site.manage("shell", "-c", "from connector.demo import ensure_demo_task; ensure_demo_task()")
    env = {"CONNECTOR_SYNCHRONIZE_READERS": "2", "PYTHONFAULTHANDLER": "1"}
    synchronize = {"fetch_action": "Synchronize", "params": {"TaskSections": "DEMO"},
                   "tasks": ["DEMO"]}  # fmt: skip
    chance = random.Random(14)
    outcomes = []
    for _ in range(RESTARTS):
        if not site.query(
            "SELECT 1 FROM connector_action WHERE status IN ('Queued', 'Processing')"
        ):
            site.submit(synchronize)
        server = site.start("serve", "--port", str(free_port()), group=True, **env)
        log = site.processes[-1][1]
        site.wait_for(lambda path=log: "reader processes" in path.read_text(), 30, "the readers")
        time.sleep(chance.uniform(0, 0.6))
        site.interrupt_group(server)
        outcomes.append(server.wait(30))
        text = log.read_text()
        assert "Fatal Python error" not in text, text
        # The Ctrl-C reached the reader processes too, maybe while one was
        # still starting: none may die of it (10 of 25 did before they started
        # with SIGINT blocked, and the pool broke).
        assert "KeyboardInterrupt" not in text, text
        assert "reader processes of Synchronize stopped" not in text, text
    assert outcomes == [0] * RESTARTS, site.logs()[-20000:]
    # Interrupted again and again, never spent: no Synchronize became Error.
    assert site.query("SELECT count(*) FROM connector_action WHERE status = 'Error'") == [(0,)]
    assert site.query("SELECT max(attempts) FROM connector_action")[0][0] <= 1
