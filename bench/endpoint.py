"""CPU per request of the action endpoint against the server's floor (issue 17).

Starts ``manage.py serve`` (the embedded default: one daphne process with the
worker, as `make run`) through ``bench/load.py``'s ``Server``, on SQLite and
then on PostgreSQL (``--postgres``, a database it creates and drops), and
measures in the same run, each at 1 and at ``--clients`` (50) keep-alive
clients for ``--seconds`` (8) after a short warm-up, in ``--rounds`` (3)
rounds that each measure every type for a part of that time, added up (the
speed of a shared machine drifts by half within minutes: measured type by
type, one type's figures were taken on a faster machine than another's):

- ``asgi``: a bare ASGI app served by the same daphne (``bench.load_asgi``);
- ``view``: a bare Django view through the connector's middleware (``bench.load_site``);
- ``getversion``: ``action=GetVersion``;
- ``fetch``: ``action=Fetch&FetchAction=Synchronize&TaskSections=BENCH`` (a
  durable insert with its audit entry and wake-up; the queue is paused so the
  worker runs none of them and costs nothing);
- ``getstatus``: ``QueueInfo GetStatus`` by one of those tokens;
- ``cancel``: ``QueueInfo Cancel`` of one of them, each token cancelled once.

For each: the server process's CPU time per request (from ``/proc/PID/stat``
before and after: user + system of all its threads, so daphne, Django and the
idle worker), requests per second, latency p50/p99, errors (any non-200 or
non-SUCCESS answer: must be 0); then each row's ratios to the bare ASGI app.
CPU per request holds on a loaded machine; req/s and latency do not (the
clients share the cores with the server, and on a shared machine with
everything else): compare those only within one run.

``--profile KIND`` samples the server with py-spy (all threads) during the
``--clients`` phase of that request type (repeatable), saves the raw stacks to
``--profile-dir`` and prints the functions with the most samples, by their own
time and including what they call.

    python bench/endpoint.py [--clients 50] [--seconds 8] [--rounds 3]
                             [--postgres URL | --no-postgres]
                             [--profile fetch --profile getstatus]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from harness import process_cpu_seconds
from load import ROOT, Server, percentile

KINDS = ("asgi", "view", "getversion", "fetch", "getstatus", "cancel")
DEFAULT_POSTGRES = "postgres://postgres@127.0.0.1:5432/endpoint_bench"
TASK = "BENCH"


def aci(**params: str) -> str:
    return "/?" + urllib.parse.urlencode({**params, "ResponseFormat": "simplejson"})


class Tokens:
    """Tokens returned by Fetch: GetStatus reads any, Cancel takes each once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.all: list[str] = []
        self.uncancelled: list[str] = []

    def add(self, token: str) -> None:
        with self.lock:
            self.all.append(token)
            self.uncancelled.append(token)

    def any(self, rng: random.Random) -> str:
        return rng.choice(self.all)

    def take(self) -> str | None:
        with self.lock:
            return self.uncancelled.pop() if self.uncancelled else None


def target(kind: str, tokens: Tokens, rng: random.Random) -> str | None:
    """The request target of one request of ``kind`` (None: nothing left to do)."""
    if kind == "asgi":
        return "/bench/asgi"
    if kind == "view":
        return "/bench/bare"
    if kind == "getversion":
        return aci(action="GetVersion")
    if kind == "fetch":
        return aci(action="Fetch", FetchAction="Synchronize", TaskSections=TASK)
    if kind == "getstatus":
        return aci(
            action="QueueInfo", QueueName="fetch", QueueAction="GetStatus", Token=tokens.any(rng)
        )
    token = tokens.take()
    if token is None:
        return None
    return aci(action="QueueInfo", QueueName="fetch", QueueAction="Cancel", Token=token)


def check(kind: str, status: int, body: bytes, tokens: Tokens) -> str | None:
    """What is wrong with an answer (None: a correct one); keeps Fetch's tokens."""
    if status != 200:
        return f"HTTP {status}: {body[:200]!r}"
    if kind in ("asgi", "view"):
        return None if body == b"ok" else f"body {body[:200]!r}"
    try:
        answer = json.loads(body)["autnresponse"]
    except (ValueError, KeyError):
        return f"unreadable: {body[:200]!r}"
    if answer.get("response") != "SUCCESS":
        return json.dumps(answer)[:300]
    if kind == "fetch":
        tokens.add(answer["responsedata"]["token"])
    return None


@dataclass
class Phase:
    kind: str
    clients: int
    requests: int = 0
    seconds: float = 0.0
    cpu: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: The phases of each round this one adds up (``--rounds``).
    rounds: list[Phase] = field(default_factory=list)

    def add(self, other: Phase) -> None:
        self.requests += other.requests
        self.seconds += other.seconds
        self.cpu += other.cpu
        self.latencies += other.latencies
        self.errors += other.errors
        self.rounds.append(other)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms(self) -> float:
        return self.cpu / self.requests * 1000 if self.requests else float("nan")


def client_loop(
    server: Server, phase: Phase, until: float, tokens: Tokens, lock: threading.Lock, seed: int
) -> None:
    import http.client

    rng = random.Random(seed)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    latencies: list[float] = []
    errors: list[str] = []
    while time.monotonic() < until:
        path = target(phase.kind, tokens, rng)
        if path is None:
            break
        started = time.perf_counter()
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            body = response.read()
        except Exception as error:
            errors.append(repr(error))
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
            continue
        latencies.append(time.perf_counter() - started)
        if problem := check(phase.kind, response.status, body, tokens):
            errors.append(problem)
    conn.close()
    with lock:
        phase.latencies += latencies
        phase.errors += errors


def run_phase(server: Server, kind: str, clients: int, seconds: float, tokens: Tokens) -> Phase:
    phase = Phase(kind, clients)
    lock = threading.Lock()
    until = time.monotonic() + seconds
    threads = [
        threading.Thread(
            target=client_loop, args=(server, phase, until, tokens, lock, n), daemon=True
        )
        for n in range(clients)
    ]
    cpu_before = process_cpu_seconds(server.process.pid)
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    phase.seconds = time.monotonic() - started
    phase.cpu = process_cpu_seconds(server.process.pid) - cpu_before
    phase.requests = len(phase.latencies)
    return phase


class Profiler:
    """py-spy sampling the server process until stopped: the thread holding the GIL, so CPU."""

    def __init__(self, pid: int, out: Path) -> None:
        py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        self.out = out
        self.process = subprocess.Popen(
            [py_spy, "record", "--pid", str(pid), "--format", "raw", "--rate", "250", "--gil",
             "--output", str(out), "--nonblocking"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(1)  # attaching

    def stop(self) -> None:
        self.process.send_signal(2)  # SIGINT: py-spy writes what it has
        self.process.wait(timeout=60)


def print_profile(path: Path, top: int) -> None:
    """The functions with most samples: on top of the stack (self), anywhere on it (total)."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [frame.rsplit(" (", 1)[0] + " (" + _short(frame) for frame in stack.split(";")]
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    print(f"  {samples} samples; self:")
    for frame, count in own.most_common(top):
        print(f"    {count / samples:6.1%}  {frame}")
    print("  total (self + callees), outside the event loop's and thread pool's own frames:")
    shown = 0
    for frame, count in total.most_common():
        if count / samples > 0.97:
            continue
        print(f"    {count / samples:6.1%}  {frame}")
        shown += 1
        if shown == top:
            break


def _short(frame: str) -> str:
    where = frame.rsplit(" (", 1)[1] if " (" in frame else ")"
    for prefix in ("site-packages/", str(ROOT) + "/"):
        if prefix in where:
            where = where.split(prefix, 1)[1]
    return where


def measure(
    label: str,
    database_url: str | None,
    args: argparse.Namespace,
) -> list[Phase]:
    print(f"\n== {label}")
    with tempfile.TemporaryDirectory(prefix="connector-endpoint-") as tmp:
        server = Server(
            Path(tmp),
            database_url=database_url,
            env={"CONNECTOR_MAX_QUEUED_ACTIONS": "0", "SECRET_KEY": "bench-endpoint-" + "x" * 40},
        )
        try:
            server.manage(
                "shell",
                "-c",
                "from connector.models import FetchTask; "
                f"FetchTask.objects.create(name={TASK!r}, directory_paths=[{tmp!r}])",
            )
            tokens = Tokens()
            pause = run_once(
                server, aci(action="QueueInfo", QueueName="fetch", QueueAction="Pause")
            )
            if pause:
                raise SystemExit(f"pausing the queue failed: {pause}")
            phases = {
                (kind, clients): Phase(kind, clients)
                for kind in KINDS
                if kind in args.kinds
                for clients in (1, args.clients)
            }
            seconds = args.seconds / args.rounds
            for round_ in range(args.rounds):
                for kind in KINDS:
                    if kind not in args.kinds:
                        continue
                    run_phase(server, kind, 1, args.warmup, tokens)
                    for clients in (1, args.clients):
                        profiler = None
                        last = round_ == args.rounds - 1
                        if last and clients == args.clients and kind in args.profile:
                            name = f"endpoint-{label.split()[0].lower()}-{kind}.txt"
                            profiler = Profiler(server.process.pid, args.profile_dir / name)
                        phase = run_phase(server, kind, clients, seconds, tokens)
                        if profiler:
                            profiler.stop()
                            print(f"\nProfile of {kind} at {clients} clients ({profiler.out}):")
                            print_profile(profiler.out, args.top)
                        phases[kind, clients].add(phase)
        finally:
            server.stop()
    report(list(phases.values()))
    return list(phases.values())


def run_once(server: Server, path: str) -> str | None:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return check("control", response.status, response.read(), Tokens())
    finally:
        conn.close()


def report(phases: list[Phase]) -> None:
    floor = {p.clients: p for p in phases if p.kind == "asgi"}
    print(
        f"\n  {'request':<11}{'clients':>8}{'requests':>9}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>9}"
        f"{'CPU ms/req':>11}{'x CPU':>7}{'% req/s':>8}{'errors':>7}"
    )
    for p in phases:
        base = floor[p.clients]
        print(
            f"  {p.kind:<11}{p.clients:>8}{p.requests:>9}{p.rate:>8.0f}"
            f"{percentile(p.latencies, 0.5) * 1000:>8.1f}"
            f"{percentile(p.latencies, 0.99) * 1000:>9.1f}"
            f"{p.cpu_ms:>11.3f}{p.cpu_ms / base.cpu_ms:>7.1f}{p.rate / base.rate:>8.1%}"
            f"{len(p.errors):>7}"
        )
    if any(len(p.rounds) > 1 for p in phases):
        print("\n  x CPU in each round (the bare ASGI app measured in the same round):")
        for p in phases:
            if p.kind != "asgi":
                ratios = [
                    mine.cpu_ms / base.cpu_ms
                    for mine, base in zip(p.rounds, floor[p.clients].rounds, strict=True)
                ]
                print(f"  {p.kind:<11}{p.clients:>8}  " + "  ".join(f"{r:.1f}" for r in ratios))
    for p in phases:
        for sample in p.errors[:3]:
            print(f"    {p.kind} error: {sample}")


def fresh_postgres(url: str) -> Callable[[], None]:
    """Create the database of ``url`` afresh; a function that drops it."""
    name = urllib.parse.urlparse(url).path.lstrip("/")
    admin = url.rsplit("/", 1)[0] + "/postgres"

    def drop() -> None:
        with psycopg.connect(admin, autocommit=True) as db:
            db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    drop()
    with psycopg.connect(admin, autocommit=True) as db:
        db.execute(f'CREATE DATABASE "{name}"')
    return drop


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--warmup", type=float, default=1)
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="measure every request type this many times, --seconds split between them, "
        "and add up: a machine whose speed drifts weighs on every type alike",
    )
    parser.add_argument(
        "--postgres", default=os.environ.get("BENCH_POSTGRES_URL", DEFAULT_POSTGRES)
    )
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    parser.add_argument(
        "--kinds",
        nargs="+",
        choices=KINDS,
        default=list(KINDS),
        help="request types to measure (asgi, the floor, always; getstatus and cancel need fetch)",
    )
    parser.add_argument("--profile", action="append", default=[], choices=KINDS)
    parser.add_argument("--profile-dir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    args.kinds = ["asgi", *args.kinds]
    print(
        f"Machine: {platform.node()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f},"
        f" Python {platform.python_version()}, SQLite {sqlite3.sqlite_version};"
        f" 1 and {args.clients} clients, {args.seconds:g} s each"
    )
    failed = False
    if not args.no_sqlite:
        phases = measure("SQLite (serve, WAL)", None, args)
        failed |= any(p.errors for p in phases)
    if not args.no_postgres:
        drop = fresh_postgres(args.postgres)
        try:
            phases = measure("PostgreSQL (serve)", args.postgres, args)
            failed |= any(p.errors for p in phases)
        finally:
            drop()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
