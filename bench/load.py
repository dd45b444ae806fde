"""Load benchmark of the action endpoint against `make run`'s server (issue 6).

Starts ``manage.py serve`` (the embedded default: daphne and the worker in one
process, SQLite in WAL mode, the in-memory channel layer) on a free port with a
fresh var folder, and then:

1. ``--clients`` client threads (50) for ``--seconds`` (60), each on its own
   keep-alive connection, in a loop: submit (35 %; ``Fetch``: ``NoOp`` at
   priority 1, one in ten a 2 s ``Sleep`` at priority 0), poll one of its
   tokens (50 %; ``QueueInfo GetStatus``) or cancel one of its last sleeps
   (15 %; ``QueueInfo Cancel``; "not queued" is a correct answer for an action
   that already runs or ran). A signed-in websocket client stays
   connected to ``/ws/dashboard/`` all the time and counts what it receives.
2. The same clients for the same time against a bare Django view on the same
   server (same daphne, same middleware; ``bench.load_site``), for the
   endpoint's overhead as a ratio.
3. After the load, waits for the queue to drain and checks that every token a
   client received is in the database, Finished, Cancelled or still running
   (none lost).

Prints requests per second, p50/p99 latency per request type, errors (any
transport failure, non-200 answer, unreadable body, or ACI error other than
"not queued" for a Cancel: must be 0) and the check.

The server runs with ``CONNECTOR_ACI_SUBMISSIONS_PER_WINDOW=0``: all clients
share 127.0.0.1, and the rate limit would otherwise be what is measured.

    python bench/load.py [--clients 50] [--seconds 60] [--bare-seconds 60]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import http.cookiejar
import json
import os
import platform
import random
import re
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections import defaultdict
from pathlib import Path

from websockets.sync.client import connect as ws_connect

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
USER, PASSWORD = "bench", "bench-load-password-1"
FINAL = {"Finished", "Error", "Cancelled", "Stopped"}
#: ACI errors that are correct answers under this load (a Cancel that lost to the worker).
EXPECTED_ERRORS = {"cancel": {"ERRORNOTQUEUED"}}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """``manage.py serve`` on a fresh var folder (and, by default, a fresh SQLite database).

    ``database_url`` puts it on another (migrated here) database; ``env`` adds
    or overrides environment variables of the server and its manage.py runs.
    """

    def __init__(
        self,
        var_dir: Path,
        *,
        database_url: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.db_path = var_dir / "connector.sqlite3"
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "bench.load_settings",
            "PYTHONPATH": str(ROOT),
            "CONNECTOR_VAR_DIR": str(var_dir),
            "CONNECTOR_DEMO_DIR": str(var_dir / "demo"),
            "DATABASE_URL": database_url or f"sqlite:///{self.db_path}",
            "CONNECTOR_EXTRA_FETCH_ACTION_MODULES": "connector.fetch.diagnostics",
            "CONNECTOR_ACI_SUBMISSIONS_PER_WINDOW": "0",
            "LOG_LEVEL": "WARNING",
            "DJANGO_SUPERUSER_PASSWORD": PASSWORD,
            **(env or {}),
        }
        for name in ("REDIS_URL", "CONNECTOR_CONFIG"):
            self.env.pop(name, None)
        self.manage("migrate", "--no-input", "-v", "0")
        self.manage("createsuperuser", "--no-input", "--username", USER, "--email", "b@example.com")
        self.log = open(var_dir / "serve.log", "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [PYTHON, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"{self.base}/action=GetVersion", timeout=5).read()
                return
            if self.process.poll() is not None:
                raise SystemExit(f"serve exited with {self.process.returncode}")
            time.sleep(0.2)
        raise SystemExit("serve did not answer within 60 s")

    def manage(self, *args: str) -> None:
        subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=self.env, check=True)

    def session_cookie(self) -> str:
        """Sign in through the login form; the Cookie header of the signed-in session."""
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        page = opener.open(f"{self.base}/accounts/login/", timeout=30).read().decode()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        if not token:
            raise SystemExit("no CSRF token on the login page")
        form = urllib.parse.urlencode(
            {"username": USER, "password": PASSWORD, "csrfmiddlewaretoken": token.group(1)}
        ).encode()
        request = urllib.request.Request(
            f"{self.base}/accounts/login/", data=form, headers={"Referer": self.base + "/"}
        )
        opener.open(request, timeout=30).read()
        cookies = {cookie.name: cookie.value for cookie in jar}
        if "sessionid" not in cookies:
            raise SystemExit("signing in failed: no session cookie")
        return "; ".join(f"{name}={value}" for name, value in cookies.items())

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


class SocketWatcher(threading.Thread):
    """The dashboard's websocket, connected all along; counts messages and disconnects."""

    def __init__(self, server: Server, cookie: str) -> None:
        super().__init__(daemon=True)
        self.url = f"ws://127.0.0.1:{server.port}/ws/dashboard/"
        self.headers = {"Cookie": cookie}
        self.origin = server.base
        self.messages = 0
        self.disconnects = 0
        self.connected = threading.Event()
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                with ws_connect(
                    self.url, origin=self.origin, additional_headers=self.headers, open_timeout=30
                ) as socket_:
                    self.connected.set()
                    while not self.done.is_set():
                        with contextlib.suppress(TimeoutError):
                            socket_.recv(timeout=0.5)
                            self.messages += 1
            except Exception as error:
                if not self.done.is_set():
                    self.disconnects += 1
                    print(f"  websocket dropped: {error!r}", file=sys.stderr)
                    time.sleep(0.5)


class Results:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, int] = defaultdict(int)
        self.error_samples: list[str] = []
        self.tokens: list[str] = []
        self.cancelled = 0

    def record(self, kind: str, seconds: float) -> None:
        with self.lock:
            self.latencies[kind].append(seconds)

    def error(self, kind: str, what: str) -> None:
        with self.lock:
            self.errors[kind] += 1
            if len(self.error_samples) < 5:
                self.error_samples.append(f"{kind}: {what[:300]}")


def _aci(conn: http.client.HTTPConnection, params: dict[str, str]) -> tuple[int, bytes]:
    query = urllib.parse.urlencode({**params, "ResponseFormat": "simplejson"})
    conn.request("GET", "/?" + query)
    response = conn.getresponse()
    return response.status, response.read()


def aci_client(port: int, until: float, results: Results, seed: int) -> None:
    rng = random.Random(seed)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    mine: list[str] = []
    sleeps: list[str] = []
    while time.monotonic() < until:
        roll = rng.random()
        if roll < 0.35 or not mine:
            kind = "submit"
            # No-ops first; the 2 s sleeps fill the worker's threads, so some
            # actions wait in the queue and some Cancels find one to cancel.
            params = {"action": "Fetch", "FetchAction": "NoOp", "Priority": "1"}
            if rng.random() < 0.1:
                params.update(FetchAction="Sleep", Seconds="2", Steps="20", Priority="0")
        elif roll < 0.85:
            kind = "getstatus"
            params = {"action": "QueueInfo", "QueueName": "fetch", "QueueAction": "GetStatus"}
            params["Token"] = rng.choice(mine)
        else:
            kind = "cancel"
            params = {"action": "QueueInfo", "QueueName": "fetch", "QueueAction": "Cancel"}
            params["Token"] = rng.choice(sleeps[-3:] or mine[-3:])
        started = time.perf_counter()
        try:
            status, body = _aci(conn, params)
        except Exception as error:
            results.error(kind, repr(error))
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            continue
        results.record(kind, time.perf_counter() - started)
        if status != 200:
            results.error(kind, f"HTTP {status}: {body[:200]!r}")
            continue
        try:
            answer = json.loads(body)["autnresponse"]
        except ValueError:
            results.error(kind, f"unreadable: {body[:200]!r}")
            continue
        if answer["response"] != "SUCCESS":
            code = answer["responsedata"]["error"]["errorcode"]
            if code not in EXPECTED_ERRORS.get(kind, set()):
                results.error(kind, json.dumps(answer))
            continue
        if kind == "cancel":
            with results.lock:
                results.cancelled += 1
        if kind == "submit":
            token = answer["responsedata"]["token"]
            mine.append(token)
            if params["FetchAction"] == "Sleep":
                sleeps.append(token)
            with results.lock:
                results.tokens.append(token)
    conn.close()


def bare_client(port: int, until: float, results: Results, seed: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    while time.monotonic() < until:
        started = time.perf_counter()
        try:
            conn.request("GET", "/bench/bare")
            response = conn.getresponse()
            body = response.read()
        except Exception as error:
            results.error("bare", repr(error))
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            continue
        results.record("bare", time.perf_counter() - started)
        if response.status != 200 or body != b"ok":
            results.error("bare", f"HTTP {response.status}: {body[:200]!r}")
    conn.close()


def run_load(client, port: int, clients: int, seconds: float) -> tuple[Results, float]:
    results = Results()
    until = time.monotonic() + seconds
    threads = [
        threading.Thread(target=client, args=(port, until, results, n), daemon=True)
        for n in range(clients)
    ]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, time.monotonic() - started


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def report(title: str, results: Results, elapsed: float) -> float:
    total = sum(len(v) for v in results.latencies.values())
    rate = total / elapsed
    print(f"\n{title}: {total} requests in {elapsed:.1f} s = {rate:,.0f} req/s")
    print(f"  {'type':<10} {'requests':>9} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for kind in sorted(results.latencies):
        values = results.latencies[kind]
        print(
            f"  {kind:<10} {len(values):>9} {len(values) / elapsed:>7.0f}"
            f" {percentile(values, 0.5) * 1000:>8.1f} {percentile(values, 0.99) * 1000:>8.1f}"
            f" {results.errors.get(kind, 0):>7}"
        )
    errors = sum(results.errors.values())
    print(f"  errors: {errors}")
    if "cancel" in results.latencies:
        print(f"  cancels that found their action queued: {results.cancelled}")
    for sample in results.error_samples:
        print(f"    {sample}")
    return rate


def check_tokens(db_path: Path, tokens: list[str], drain_seconds: float) -> bool:
    """Every token in the database, final or running; waits for the queue to drain first."""
    deadline = time.monotonic() + drain_seconds
    with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)) as db:
        while time.monotonic() < deadline:
            (queued,) = db.execute(
                "SELECT COUNT(*) FROM connector_action WHERE status = 'Queued'"
            ).fetchone()
            if not queued:
                break
            time.sleep(0.5)
        statuses = dict(db.execute("SELECT token, status FROM connector_action").fetchall())
    missing = [token for token in tokens if token not in statuses]
    counts: dict[str, int] = defaultdict(int)
    for token in tokens:
        if token in statuses:
            counts[statuses[token]] += 1
    unsettled = sum(n for status, n in counts.items() if status not in FINAL | {"Processing"})
    print(
        f"\nTokens: {len(tokens)} received, {len(tokens) - len(missing)} in the database, "
        f"{len(missing)} lost; by status: "
        + ", ".join(f"{status} {n}" for status, n in sorted(counts.items()))
    )
    ok = not missing and not unsettled
    print("Check: every submitted token is final or running:", "OK" if ok else "FAILED")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--bare-seconds", type=float, default=None, help="default: --seconds")
    parser.add_argument("--drain-seconds", type=float, default=120)
    args = parser.parse_args()
    bare_seconds = args.seconds if args.bare_seconds is None else args.bare_seconds
    print(
        f"Machine: {platform.node()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}; {args.clients} clients, {args.seconds:g} s + "
        f"{bare_seconds:g} s (bare)"
    )
    with tempfile.TemporaryDirectory(prefix="connector-load-") as tmp:
        server = Server(Path(tmp))
        try:
            watcher = SocketWatcher(server, server.session_cookie())
            watcher.start()
            if not watcher.connected.wait(30):
                raise SystemExit("the dashboard websocket did not connect")
            aci, aci_elapsed = run_load(aci_client, server.port, args.clients, args.seconds)
            messages_during_aci = watcher.messages
            bare, bare_elapsed = run_load(bare_client, server.port, args.clients, bare_seconds)
            watcher.done.set()
            aci_rate = report("Action endpoint (submit, GetStatus, Cancel)", aci, aci_elapsed)
            bare_rate = report("Bare Django view, same server and middleware", bare, bare_elapsed)
            aci_all = [v for values in aci.latencies.values() for v in values]
            bare_all = bare.latencies["bare"]
            print(
                f"\nOverhead of the endpoint: {bare_rate / aci_rate:.2f}x the bare view's time "
                f"per request by throughput; p50 {statistics.median(aci_all) * 1000:.1f} ms vs "
                f"{statistics.median(bare_all) * 1000:.1f} ms = "
                f"{statistics.median(aci_all) / statistics.median(bare_all):.2f}x"
            )
            print(
                f"Websocket: connected throughout ({watcher.disconnects} disconnects), "
                f"{messages_during_aci} messages during the endpoint load, "
                f"{watcher.messages} in all"
            )
            ok = check_tokens(server.db_path, aci.tokens, args.drain_seconds)
            errors = sum(aci.errors.values()) + sum(bare.errors.values())
        finally:
            server.stop()
    return 0 if ok and not errors and not watcher.disconnects else 1


if __name__ == "__main__":
    sys.exit(main())
