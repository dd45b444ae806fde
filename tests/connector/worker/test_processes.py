"""Durability with real processes: restart, SIGKILL, SIGTERM.

Each test runs ``manage.py`` children on their own SQLite file under tmp_path,
with short lease, heartbeat and poll times. Actions are submitted with
``manage.py shell`` (the queue module itself), so these tests do not depend on
the ACI endpoint; only ``test_serve_starts_an_action_submitted_over_http_at_once``
goes through HTTP. The test process reads the children's database with sqlite3.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.processes

ROOT = Path(__file__).resolve().parents[3]
LEASE = 1.5


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Site:
    """A connector installation in a temporary folder, and the processes running it."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.db_path = tmp / "connector.sqlite3"
        self.env = {
            key: value
            for key, value in os.environ.items()
            if key not in {"DATABASE_URL", "REDIS_URL", "CONNECTOR_CONFIG"}
        }
        self.env.update(
            {
                "CONNECTOR_VAR_DIR": str(tmp),
                "CONNECTOR_DEMO_DIR": str(tmp / "demo"),
                "DATABASE_URL": f"sqlite:///{self.db_path}",
                "CONNECTOR_EXTRA_FETCH_ACTION_MODULES": "connector.fetch.diagnostics",
                "CONNECTOR_LEASE_SECONDS": str(LEASE),
                "CONNECTOR_HEARTBEAT_SECONDS": "0.25",
                "CONNECTOR_POLL_SECONDS": "0.2",
                "CONNECTOR_SHUTDOWN_GRACE_SECONDS": "10",
                "LOG_LEVEL": "INFO",
                "PYTHONUNBUFFERED": "1",
            }
        )
        self.processes: list[tuple[subprocess.Popen[bytes], Path]] = []
        self.manage("migrate", "--no-input", "-v", "0")

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def submit(self, *actions: dict[str, Any]) -> list[int]:
        """Submit actions (submit_action keyword arguments) through the queue module."""
        code = (
            "import json, sys\n"
            "from connector import queue\n"
            f"actions = json.loads({json.dumps(json.dumps(actions))})\n"
            "print(json.dumps([queue.submit_action(**a).pk for a in actions]))\n"
        )
        return list(json.loads(self.manage("shell", "-c", code).strip().splitlines()[-1]))

    def start(self, *args: str, **env: str) -> subprocess.Popen[bytes]:
        log = self.tmp / f"process-{len(self.processes)}.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [sys.executable, "manage.py", *args],
                cwd=ROOT,
                env={**self.env, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.processes.append((process, log))
        return process

    def logs(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text()}" for _, log in self.processes)

    def stop_all(self) -> None:
        for process, _ in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(10)

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with contextlib.closing(sqlite3.connect(self.db_path, timeout=30)) as db:
            return db.execute(sql, params).fetchall()

    def action(self, pk: int) -> dict[str, Any]:
        with contextlib.closing(sqlite3.connect(self.db_path, timeout=30)) as db:
            db.row_factory = sqlite3.Row
            row = db.execute("SELECT * FROM connector_action WHERE id = ?", [pk]).fetchone()
            return dict(row)

    def wait_for(self, predicate: Any, timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if value := predicate():
                return value
            time.sleep(0.05)
        raise AssertionError(f"Timed out after {timeout} s waiting for {what}\n{self.logs()}")

    def wait_for_worker(self, process: subprocess.Popen[bytes], timeout: float = 15) -> str:
        """Wait until the process registered its worker; return the worker id."""

        def registered() -> str | None:
            assert process.poll() is None, self.logs()
            rows = self.query("SELECT id FROM connector_workerprocess WHERE pid = ?", process.pid)
            return rows[0][0] if rows else None

        return str(self.wait_for(registered, timeout, "the worker to register"))

    def statuses(self, pks: list[int]) -> list[str]:
        return [self.action(pk)["status"] for pk in pks]


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    installation = Site(tmp_path)
    try:
        yield installation
    finally:
        installation.stop_all()


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
