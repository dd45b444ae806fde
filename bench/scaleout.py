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
  one by one through the HTTP endpoint;
- web servers 1 -> 2 (issue 17), on a cluster of its own with two web-only
  daphne servers and no workers (the queue paused: every action stays
  Queued): ``--web-clients`` (16) keep-alive client threads submit
  ``Fetch NoOp`` for ``--web-seconds`` (8) after ``--web-warmup`` (2) seconds,
  first all to server 1, then half to each server. Per phase: submits per
  second, latency p50/p99, errors (any answer but SUCCESS with a token: must
  be 0), and CPU per request (user + system from ``/proc``) of each server
  (over the requests it answered), of the database's backends, of Redis and
  of the clients (this process); then the 2-server / 1-server ratios
  (``--web-rounds`` repeats the pair, for the machine's drift).

For each drain the queue is paused, the actions queued (one transaction of
a ``manage.py shell``), the queue resumed over HTTP; the rate is actions /
(last ``finished_at`` - first ``started_at``), from the database's own
clock. Needs PostgreSQL (``CONNECTOR_SCALEOUT_POSTGRES_URL``, default the
machine's 127.0.0.1:5432) and ``/usr/bin/redis-server``.

    python bench/scaleout.py [--noop 2000] [--sleep-rounds 40] [--latency-samples 200]
                             [--web-servers-only] [--web-clients 16] [--web-seconds 8]
                             [--web-rounds 1]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "scaleout"))

from harness import process_cpu_seconds  # noqa: E402
from scaleout_cluster import (  # noqa: E402
    REDIS_SERVER,
    Cluster,
    WebServer,
    services_missing,
    wait_for,
)

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


def submit_noops(
    server: WebServer, until: float, answered: list[tuple[float, float]], errors: list[str]
) -> None:
    """One client: NoOps through ``server`` on this thread's keep-alive connection until
    ``until``; (when answered, seconds taken) of each good answer, what was wrong with others."""
    while (started := time.monotonic()) < until:
        try:
            answer = server.aci("Fetch", FetchAction="NoOp")
        except Exception as error:
            errors.append(repr(error)[:300])
            continue
        if answer["response"] == "SUCCESS" and answer["responsedata"].get("token"):
            now = time.monotonic()
            answered.append((now, now - started))
        else:
            errors.append(str(answer)[:300])


def cpu_of_web(cluster: Cluster) -> dict[str, dict[int, float]]:
    """CPU seconds so far of each web server, the database's backends, Redis and the clients."""
    parts = cpu_by_part(cluster)
    del parts["workers"]
    return {
        **{s.name: {s.child.pid: process_cpu_seconds(s.child.pid)} for s in cluster.servers},
        **parts,
        "clients": {os.getpid(): process_cpu_seconds(os.getpid())},
    }


def busy_cpu_seconds() -> float:
    """CPU seconds the whole machine has been busy (every core, from /proc/stat)."""
    user, nice, system, _idle, _iowait, irq, softirq = Path("/proc/stat").read_text().split()[1:8]
    return sum(int(n) for n in (user, nice, system, irq, softirq)) / os.sysconf("SC_CLK_TCK")


def web_phase(
    cluster: Cluster, servers: int, clients: int, warmup: float, seconds: float
) -> dict[str, float]:
    """``clients`` threads submit NoOps, spread evenly over the first ``servers`` servers;
    print and return the rate and the CPU per request (ms) of each part."""
    clear_actions(cluster)
    load = os.getloadavg()[0]
    targets = [cluster.servers[n % servers] for n in range(clients)]
    answered: list[list[tuple[float, float]]] = [[] for _ in targets]
    errors: list[str] = []
    until = time.monotonic() + warmup + seconds
    threads = [
        threading.Thread(target=submit_noops, args=(server, until, done, errors), daemon=True)
        for server, done in zip(targets, answered, strict=True)
    ]
    for thread in threads:
        thread.start()
    time.sleep(warmup)
    cpu_before, busy_before, start = cpu_of_web(cluster), busy_cpu_seconds(), time.monotonic()
    time.sleep(seconds)
    cpu_after, busy_after, end = cpu_of_web(cluster), busy_cpu_seconds(), time.monotonic()
    for thread in threads:
        thread.join()
    latencies = []
    requests = dict.fromkeys((s.name for s in cluster.servers), 0)
    for server, done in zip(targets, answered, strict=True):
        in_window = [taken for at, taken in done if start <= at <= end]
        latencies += in_window
        requests[server.name] += len(in_window)
    total = len(latencies)
    queued = cluster.count("status = 'Queued'")
    assert queued == cluster.count("TRUE"), "an action was not left Queued: a worker ran it?"
    cpu = {
        part: sum(cpu_after[part][pid] - before for pid, before in pids.items())
        for part, pids in cpu_before.items()
    }
    per_request = {name: cpu[name] / requests[name] * 1000 for name in requests if requests[name]}
    per_request["web servers"] = sum(cpu[name] for name in requests) / total * 1000
    for part in ("PostgreSQL", "Redis", "clients"):
        per_request[part] = cpu[part] / total * 1000
    rate = total / (end - start)
    ms = sorted(taken * 1000 for taken in latencies)
    print(
        f"Web servers, {clients} clients on {servers} server(s): {rate:7.1f} submits/s,"
        f" p50 {percentile(ms, 0.5):.1f} ms, p99 {percentile(ms, 0.99):.1f} ms,"
        f" {len(errors)} errors ({total} NoOps in {end - start:.1f} s; load {load:.1f} before)"
    )
    for error in errors[:5]:
        print(f"  error: {error}")
    print(
        "  CPU per request: "
        + ", ".join(
            f"{name} {per_request[name]:.2f} ms ({requests[name]} requests)"
            for name in requests
            if requests[name]
        )
        + "; "
        + ", ".join(
            f"{part} {per_request[part]:.2f} ms"
            for part in ("web servers", "PostgreSQL", "Redis", "clients")
        )
    )
    busy = (busy_after - busy_before) / (end - start)
    ours = sum(cpu.values()) / (end - start)
    print(
        f"  the machine busy {busy:.2f} of its {os.cpu_count()} cores, {ours:.2f} of them"
        f" the parts above, {busy - ours:.2f} everything else; {queued} actions Queued at the end"
    )
    return {"rate": rate, **per_request}


def print_ratios(label: str, one: dict[str, float], two: dict[str, float]) -> None:
    print(
        f"{label}: submits/s x{two['rate'] / one['rate']:.2f}; CPU per request "
        + ", ".join(
            f"{part} {one[part]:.2f} -> {two[part]:.2f} ms (x{two[part] / one[part]:.2f})"
            for part in ("web servers", "PostgreSQL", "Redis")
        )
    )


def web_servers(args: argparse.Namespace) -> None:
    """Submit rate and CPU per request with 1 and then 2 web servers (issue 17),
    ``--web-rounds`` times in turn; the ratios of each round and of their means."""
    with (
        tempfile.TemporaryDirectory(prefix="connector-scaleout-bench-") as tmp,
        Cluster(Path(tmp), lease=30, heartbeat=10, poll=2, log_level="WARNING").serving(
            servers=2, workers=0
        ) as cluster,
    ):
        if args.web_servers_only:
            print(f"Machine: {machine(cluster)}")
        cluster.servers[0].queue_action("Pause")
        rounds = []
        for n in range(args.web_rounds):
            one, two = (
                web_phase(cluster, servers, args.web_clients, args.web_warmup, args.web_seconds)
                for servers in (1, 2)
            )
            print_ratios(f"Web servers 2 / 1, round {n + 1}", one, two)
            rounds.append((one, two))
        if len(rounds) > 1:
            one, two = (
                {key: statistics.fmean(r[phase][key] for r in rounds) for key in rounds[0][phase]}
                for phase in (0, 1)
            )
            print_ratios(f"Web servers 2 / 1, means of {len(rounds)} rounds", one, two)


def drains_and_latency(args: argparse.Namespace) -> None:
    """The drains with 1, 2 and 4 workers and the submit-to-start latency."""
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--noop", type=int, default=2000, help="no-op actions per drain")
    parser.add_argument(
        "--sleep-rounds", type=int, default=40, help="50 ms actions per worker thread per drain"
    )
    parser.add_argument("--latency-samples", type=int, default=200)
    parser.add_argument(
        "--web-servers-only", action="store_true", help="only the 1 -> 2 web servers measurement"
    )
    parser.add_argument("--web-clients", type=int, default=16, help="keep-alive client threads")
    parser.add_argument("--web-seconds", type=float, default=8, help="measured seconds per phase")
    parser.add_argument("--web-warmup", type=float, default=2, help="seconds before measuring")
    parser.add_argument("--web-rounds", type=int, default=1, help="1 then 2 servers, this often")
    args = parser.parse_args()
    if reason := services_missing():
        raise SystemExit(f"Cannot run: {reason}")
    if not args.web_servers_only:
        drains_and_latency(args)
    web_servers(args)


if __name__ == "__main__":
    main()
