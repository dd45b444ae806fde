"""Benchmark of the connector scaled out: PostgreSQL, Redis, separate worker processes.

Uses the scale-out test harness (``tests/scaleout/scaleout_cluster.py``): a
fresh PostgreSQL database (dropped at the end), a ``redis-server`` of its own
on a free loopback port, one web-only daphne server, and ``runworker fetch``
processes with the product's default lease, heartbeat and poll. Measures:

- drain rate of no-op actions with 1, 2 and 4 worker processes
  (``MaximumThreads`` 4 each);
- drain rate of actions that sleep 50 ms, 4 threads per worker, with 1, 2
  and 4 workers, against the ideal of workers x threads x 20 per second;
- submit-to-start latency p50/p99 with 4 idle workers, actions submitted
  one by one through the HTTP endpoint.

For each drain the queue is paused, the actions queued (one transaction of
a ``manage.py shell``), the queue resumed over HTTP; the rate is actions /
(last ``finished_at`` - first ``started_at``), from the database's own
clock. Needs PostgreSQL (``CONNECTOR_SCALEOUT_POSTGRES_URL``, default the
machine's 127.0.0.1:5432) and ``/usr/bin/redis-server``.

    python bench/scaleout.py [--noop 2000] [--sleep-rounds 40] [--latency-samples 200]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "scaleout"))

from harness import process_cpu_seconds  # noqa: E402
from scaleout_cluster import REDIS_SERVER, Cluster, services_missing, wait_for  # noqa: E402

THREADS = 4
SLEEP_SECONDS = 0.05
WORKER_COUNTS = (1, 2, 4)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def cpu_by_part(cluster: Cluster) -> dict[str, dict[int, float]]:
    """CPU seconds so far of the workers, the database's backends for them, and Redis."""
    backends = cluster.query(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        " AND pid <> pg_backend_pid()"
    )
    redis_pid = cluster.redis.child.pid if cluster.redis.child else 0
    return {
        "workers": {w.child.pid: process_cpu_seconds(w.child.pid) for w in cluster.workers},
        "PostgreSQL": {pid: process_cpu_seconds(pid) for (pid,) in backends},
        "Redis": {redis_pid: process_cpu_seconds(redis_pid)},
    }


def clear_actions(cluster: Cluster) -> None:
    """Forget the last measurement's actions and every row that refers to them (logs, audit)."""
    cluster.query("TRUNCATE connector_action CASCADE")


def drain(cluster: Cluster, count: int, fetch_action: str, **params: str) -> float:
    """Queue ``count`` actions with the queue paused, resume, wait; actions per second."""
    server = cluster.servers[0]
    clear_actions(cluster)
    server.queue_action("Pause")
    cluster.submit_direct(count, fetch_action, **params)
    cpu_before = cpu_by_part(cluster)
    server.queue_action("Resume")
    wait_for(
        lambda: cluster.count("status = 'Finished'") == count,
        600,
        f"{count} {fetch_action} actions to finish",
        cluster.logs,
        interval=0.05,
    )
    first, last = cluster.query("SELECT min(started_at), max(finished_at) FROM connector_action")[0]
    (ramp,) = cluster.query(
        "SELECT max(first) - min(first) FROM"
        " (SELECT min(started_at) AS first FROM connector_action GROUP BY worker) AS workers"
    )[0]
    cpu_after = cpu_by_part(cluster)
    per_action = {
        part: sum(cpu_after[part][pid] - before for pid, before in pids.items()) / count * 1000
        for part, pids in cpu_before.items()
    }
    print(
        f"  ({count} {fetch_action}; CPU per action: "
        + ", ".join(f"{part} {ms:.2f} ms" for part, ms in per_action.items())
        + f"; the last worker's first start came {ramp.total_seconds() * 1000:.0f} ms"
        " after the first's)"
    )
    return count / (last - first).total_seconds()


def start_latency(cluster: Cluster, samples: int) -> list[float]:
    """Submit NoOps one at a time (20 ms apart) to idle workers; ms from queued to started."""
    server = cluster.servers[0]
    clear_actions(cluster)
    time.sleep(1)
    tokens = []
    for _ in range(samples):
        tokens.append(server.submit("NoOp"))
        time.sleep(0.02)
    cluster.wait_until_idle(120)
    rows = cluster.query(
        "SELECT extract(epoch FROM started_at - queued_at) * 1000 FROM connector_action"
        " WHERE token = ANY(%s)",
        tokens,
    )
    return [float(ms) for (ms,) in rows]


def machine(cluster: Cluster) -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    (postgres,) = cluster.query("SHOW server_version")[0]
    redis = subprocess.run(
        [REDIS_SERVER, "--version"], capture_output=True, text=True, check=False
    ).stdout.split()
    version = next((word[2:] for word in redis if word.startswith("v=")), "?")
    return (
        f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()},"
        f" PostgreSQL {postgres}, Redis {version}, {platform.system()} {platform.release()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--noop", type=int, default=2000, help="no-op actions per drain")
    parser.add_argument(
        "--sleep-rounds", type=int, default=40, help="50 ms actions per worker thread per drain"
    )
    parser.add_argument("--latency-samples", type=int, default=200)
    args = parser.parse_args()
    if reason := services_missing():
        raise SystemExit(f"Cannot run: {reason}")

    with (
        tempfile.TemporaryDirectory(prefix="connector-scaleout-bench-") as tmp,
        Cluster(
            Path(tmp), lease=30, heartbeat=10, poll=2, threads=THREADS, log_level="WARNING"
        ).serving(servers=1, workers=0) as cluster,
    ):
        print(f"Machine: {machine(cluster)}")
        results: list[tuple[str, int, float, float | None]] = []
        for workers in WORKER_COUNTS:
            while len(cluster.workers) < workers:
                cluster.add_worker()
            rate = drain(cluster, args.noop, "NoOp")
            print(f"Drain, no-op, {workers} worker(s) x {THREADS} threads: {rate:8.0f} actions/s")
            results.append(("no-op", workers, rate, None))
        for workers in WORKER_COUNTS:
            while len(cluster.workers) > workers:
                cluster.remove_worker(cluster.workers[-1])
            while len(cluster.workers) < workers:
                cluster.add_worker()
            count = workers * THREADS * args.sleep_rounds
            rate = drain(cluster, count, "Sleep", Seconds=str(SLEEP_SECONDS), Steps="1")
            ideal = workers * THREADS / SLEEP_SECONDS
            print(
                f"Drain, sleep 50 ms, {workers} worker(s) x {THREADS} threads: {rate:8.1f}"
                f" actions/s of an ideal {ideal:.0f} ({rate / ideal:.1%}, {count} actions)"
            )
            results.append(("sleep", workers, rate, ideal))
        latencies = start_latency(cluster, args.latency_samples)
        print(
            f"Submit-to-start, {len(cluster.workers)} idle workers:"
            f" p50 {percentile(latencies, 0.5):.2f} ms, p99 {percentile(latencies, 0.99):.2f} ms,"
            f" max {max(latencies):.2f} ms ({len(latencies)} samples)"
        )


if __name__ == "__main__":
    main()
