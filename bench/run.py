"""Benchmark of the connector core on its embedded default.

Starts ``manage.py serve`` (daphne + the worker in one process, SQLite in WAL
mode, in-memory channel layer) on a fresh database and measures:

- submit rate through the HTTP action endpoint (queue paused, so only the
  endpoint and the insert are measured), with 1 and 4 client threads;
- drain rate of no-op actions by the one worker process (queue resumed);
- submit-to-start latency p50/p99 with an idle worker, and the worker's CPU
  use while idle;
- stop latency p50/p99 (Stop accepted to status Stopped) for an action that
  checkpoints every millisecond.

Times come from the server's own columns (queued_at, started_at,
stop_requested_at, finished_at), so client overhead is not counted in them.

    python bench/run.py [--submits 2000] [--latency-samples 200] [--stop-samples 30]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A ``manage.py serve`` process on a fresh database in a temporary folder."""

    def __init__(self, var_dir: Path, port: int) -> None:
        self.port = port
        self.db_path = var_dir / "connector.sqlite3"
        self.env = {
            **os.environ,
            "CONNECTOR_VAR_DIR": str(var_dir),
            "DATABASE_URL": f"sqlite:///{self.db_path}",
            "CONNECTOR_EXTRA_FETCH_ACTION_MODULES": "connector.fetch.diagnostics",
            "CONNECTOR_DEMO_DIR": str(var_dir / "demo"),
            "LOG_LEVEL": "WARNING",
            # 2,000 submissions from one client: the per-client rate limit
            # (issue 6) would be what is measured.
            "CONNECTOR_ACI_SUBMISSIONS_PER_WINDOW": "0",
        }
        subprocess.run(
            [PYTHON, "manage.py", "migrate", "--no-input", "-v", "0"],
            cwd=ROOT, env=self.env, check=True,
        )  # fmt: skip
        self.log = open(var_dir / "serve.log", "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [PYTHON, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self._wait_until_up()

    def _wait_until_up(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                self.aci("GetVersion")
                return
            if self.process.poll() is not None:
                raise SystemExit(f"serve exited with {self.process.returncode}")
            time.sleep(0.1)
        raise SystemExit("serve did not answer within 30 s")

    def aci(
        self, action: str, conn: http.client.HTTPConnection | None = None, **params: object
    ) -> dict:
        query = urllib.parse.urlencode({"action": action, "ResponseFormat": "simplejson", **params})
        own = conn is None
        conn = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("GET", "/?" + query)
            body = conn.getresponse().read()
        finally:
            if own:
                conn.close()
        answer = json.loads(body)["autnresponse"]
        if answer["response"] != "SUCCESS":
            raise RuntimeError(f"{action} {params}: {answer}")
        return answer.get("responsedata", {})

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=30)

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def submit_many(server: Server, count: int, clients: int) -> float:
    """Submit ``count`` NoOp actions from ``clients`` threads; return actions per second."""
    per_client = count // clients

    def work() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        for _ in range(per_client):
            server.aci("Fetch", conn, FetchAction="NoOp")
        conn.close()

    threads = [threading.Thread(target=work) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return per_client * clients / (time.perf_counter() - started)


def wait_for(server: Server, sql: str, expected: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    with contextlib.closing(server.db()) as db:
        while time.monotonic() < deadline:
            if db.execute(sql).fetchone()[0] >= expected:
                return
            time.sleep(0.05)
    raise SystemExit(f"timed out waiting for {sql!r} to reach {expected}")


def measure_drain(server: Server) -> tuple[int, float]:
    """Resume the paused queue and time the worker draining it (server clock)."""
    with contextlib.closing(server.db()) as db:
        queued = db.execute(
            "SELECT count(*) FROM connector_action WHERE status='Queued'"
        ).fetchone()[0]
    server.aci("QueueInfo", QueueName="fetch", QueueAction="Resume")
    wait_for(server, "SELECT count(*) FROM connector_action WHERE status='Finished'", queued)
    with contextlib.closing(server.db()) as db:
        first, last = db.execute(
            "SELECT min(started_at), max(finished_at) FROM connector_action"
        ).fetchone()
    return queued, queued / (parse_time(last) - parse_time(first)).total_seconds()


def measure_start_latency(server: Server, samples: int) -> tuple[list[float], float]:
    """Submit one action at a time to an idle worker; ms from queued to started."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    tokens = []
    time.sleep(1)
    cpu_before, wall_before = server.cpu_seconds(), time.monotonic()
    time.sleep(5)
    idle_cpu = (server.cpu_seconds() - cpu_before) / (time.monotonic() - wall_before)
    for _ in range(samples):
        tokens.append(server.aci("Fetch", conn, FetchAction="NoOp")["token"])
        time.sleep(0.02)
    conn.close()
    wait_for(
        server,
        "SELECT count(*) = 0 FROM connector_action WHERE status IN ('Queued', 'Processing')",
        1,
    )
    with contextlib.closing(server.db()) as db:
        placeholders = ",".join("?" * len(tokens))
        rows = db.execute(
            f"SELECT queued_at, started_at FROM connector_action WHERE token IN ({placeholders})",
            tokens,
        ).fetchall()
    latencies = [
        (parse_time(started) - parse_time(queued)).total_seconds() * 1000
        for queued, started in rows
        if started
    ]
    if len(latencies) != samples:
        raise SystemExit(f"only {len(latencies)} of {samples} actions started")
    return latencies, idle_cpu


def measure_stop_latency(server: Server, samples: int) -> list[float]:
    """Stop a running Sleep that checkpoints every ms; ms from Stop accepted to Stopped."""
    latencies = []
    for _ in range(samples):
        token = server.aci("Fetch", FetchAction="Sleep", Seconds="60", Steps="60000")["token"]
        deadline = time.monotonic() + 10
        while True:
            status = server.aci(
                "QueueInfo", QueueName="fetch", QueueAction="GetStatus", Token=token
            )
            if status["actions"]["action"][0]["status"] == "Processing":
                break
            if time.monotonic() > deadline:
                raise SystemExit("Sleep action did not start")
            time.sleep(0.01)
        time.sleep(0.05)
        server.aci("QueueInfo", QueueName="fetch", QueueAction="Stop", Token=token)
        deadline = time.monotonic() + 10
        with contextlib.closing(server.db()) as db:
            while True:
                row = db.execute(
                    "SELECT status, stop_requested_at, finished_at FROM connector_action"
                    " WHERE token = ?",
                    [token],
                ).fetchone()
                if row[0] == "Stopped":
                    break
                if time.monotonic() > deadline:
                    raise SystemExit(f"action not Stopped within 10 s: {row}")
                time.sleep(0.01)
        latencies.append((parse_time(row[2]) - parse_time(row[1])).total_seconds() * 1000)
    return latencies


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}, {platform.system()} {platform.release()}"
    )


@contextlib.contextmanager
def running_server() -> Iterator[Server]:
    with tempfile.TemporaryDirectory(prefix="connector-bench-") as tmp:
        server = Server(Path(tmp), free_port())
        try:
            yield server
        finally:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--submits", type=int, default=2000)
    parser.add_argument("--latency-samples", type=int, default=200)
    parser.add_argument("--stop-samples", type=int, default=30)
    args = parser.parse_args()

    print(f"Machine: {machine()}")
    with running_server() as server:
        server.aci("QueueInfo", QueueName="fetch", QueueAction="Pause")
        rate_1 = submit_many(server, args.submits // 2, clients=1)
        rate_4 = submit_many(server, args.submits // 2, clients=4)
        print(f"Submit rate (HTTP, 1 client):          {rate_1:8.0f} actions/s")
        print(f"Submit rate (HTTP, 4 clients):         {rate_4:8.0f} actions/s")
        drained, drain_rate = measure_drain(server)
        print(
            f"Drain rate (no-op, 1 worker process):  {drain_rate:8.0f} actions/s"
            f" ({drained} actions)"
        )
        latencies, idle_cpu = measure_start_latency(server, args.latency_samples)
        print(f"Idle worker CPU use:                   {idle_cpu * 100:8.2f} % of one core")
        print(
            f"Submit-to-start latency (idle worker): p50 {percentile(latencies, 0.5):.2f} ms,"
            f" p99 {percentile(latencies, 0.99):.2f} ms, max {max(latencies):.2f} ms"
            f" ({len(latencies)} samples)"
        )
        stops = measure_stop_latency(server, args.stop_samples)
        print(
            f"Stop latency (checkpoint every 1 ms):  p50 {percentile(stops, 0.5):.2f} ms,"
            f" p99 {percentile(stops, 0.99):.2f} ms, max {max(stops):.2f} ms"
            f" ({len(stops)} samples, mean {statistics.mean(stops):.2f} ms)"
        )


if __name__ == "__main__":
    main()
