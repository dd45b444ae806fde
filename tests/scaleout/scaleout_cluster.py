"""A scale-out installation on loopback: PostgreSQL, a Redis of its own, web servers, workers.

``Cluster`` creates a fresh PostgreSQL database (``connector_scaleout_<pid>_<n>``,
dropped at the end), migrates it once, starts its own ``redis-server`` on a
free port (no persistence, so restarting it disturbs nobody else), web-only
daphne servers and ``runworker fetch`` processes, all sharing one SECRET_KEY
and one var folder. The tests in this folder and ``bench/scaleout.py`` use it.

No orphans: every child runs in a process group of its own and is killed with
its group by ``close()``, by an ``atexit`` hook, and (on Linux) by the kernel
when the process that started it dies (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[2]
#: The maintenance database the test databases are created from.
POSTGRES_URL = os.environ.get(
    "CONNECTOR_SCALEOUT_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres"
)
REDIS_SERVER = os.environ.get("CONNECTOR_SCALEOUT_REDIS_SERVER") or (
    shutil.which("redis-server") or "/usr/bin/redis-server"
)
OPERATOR = "operator"
#: Where RecordRun appends its lines (connector.fetch.diagnostics.RUNS_LOG).
RUNS_LOG = "diagnostics/runs.log"

_children: dict[int, subprocess.Popen[bytes]] = {}
_children_lock = threading.Lock()
_databases = 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def services_missing() -> str | None:
    """Why this machine cannot run a cluster (PostgreSQL or redis-server missing), or None."""
    if not (os.path.isfile(REDIS_SERVER) and os.access(REDIS_SERVER, os.X_OK)):
        return f"no redis-server at {REDIS_SERVER} (set CONNECTOR_SCALEOUT_REDIS_SERVER)"
    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=3) as db:
            db.execute("SELECT 1")
    except psycopg.Error as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        return f"PostgreSQL not reachable at {POSTGRES_URL}: {first_line}"
    return None


def _libc_prctl() -> Any:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


# Looked up here, not in the child: between fork and exec only the call is safe.
_PRCTL = _libc_prctl() if sys.platform == "linux" else None
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: be killed when the parent process dies (Linux)."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(10)


@atexit.register
def _kill_leftovers() -> None:
    with _children_lock:
        left = list(_children.values())
        _children.clear()
    for process in left:
        _kill_group(process)


def drop_abandoned_databases(admin: psycopg.Connection[Any]) -> None:
    """Drop the databases of runs that were killed before they could (their pid is gone).

    Without FORCE: a database still in use (another machine's run) stays.
    """
    names = admin.execute(
        "SELECT datname FROM pg_database WHERE datname LIKE 'connector\\_scaleout\\_%'"
    ).fetchall()
    for (name,) in names:
        pid = name.split("_")[2]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            with contextlib.suppress(psycopg.Error):
                admin.execute(f'DROP DATABASE "{name}"')


class Child:
    """A child process in its own process group, with its output in a log file."""

    def __init__(self, name: str, args: list[str], *, env: dict[str, str], log: Path) -> None:
        self.name = name
        self.log = log
        with open(log, "ab") as out:
            # PR_SET_PDEATHSIG fires when the thread that forked exits: start
            # children from a thread that lives as long as they do (the main one).
            self.process = subprocess.Popen(
                args,
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent if _PRCTL is not None else None,
            )
        with _children_lock:
            _children[self.process.pid] = self.process

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)

    def kill(self) -> None:
        _kill_group(self.process)
        with _children_lock:
            _children.pop(self.process.pid, None)

    def terminate(self, timeout: float = 15) -> int:
        """SIGTERM, then SIGKILL after ``timeout``; return the exit code."""
        self.signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.process.wait(10)
        with _children_lock:
            _children.pop(self.process.pid, None)
        return code

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class Redis:
    """A ``redis-server`` of our own on a loopback port, without persistence."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.folder = folder
        self.env = env
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.child: Child | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        args = [
            REDIS_SERVER,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.folder),
        ]  # fmt: skip
        self.child = Child(
            "redis", args, env=self.env, log=self.folder / f"redis-{self.starts}.log"
        )
        wait_for(self.ping, 15, "redis-server to answer PING", lambda: self.child_output())

    def ping(self) -> bool:
        try:
            return self.command("PING") == "+PONG"
        except OSError:
            return False

    def command(self, *words: str) -> str:
        """One inline command; the first line of the answer (enough for PING and INFO's size)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
            sock.sendall((" ".join(words) + "\r\n").encode())
            return sock.recv(65536).decode(errors="replace").split("\r\n", 1)[0]

    def stop(self) -> None:
        if self.child is not None:
            self.child.kill()
            self.child = None

    def restart(self, down_for: float = 1.0) -> None:
        """Stop it (everything it held is gone) and start it again on the same port."""
        self.stop()
        time.sleep(down_for)
        self.start()

    def child_output(self) -> str:
        return self.child.output() if self.child else ""


def wait_for(
    predicate: Callable[[], Any],
    timeout: float,
    what: str,
    details: Callable[[], str] = lambda: "",
    interval: float = 0.05,
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        if value := predicate():
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"Timed out after {timeout} s waiting for {what}\n{details()}")
        time.sleep(interval)


class WebServer:
    """A web-only daphne of the cluster, and a client of its action endpoint."""

    def __init__(self, cluster: Cluster, name: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.name = name
        self.child = Child(
            name,
            [
                sys.executable, "-m", "daphne",
                "-b", "127.0.0.1", "-p", str(self.port),
                "connector.asgi:application",
            ],
            env=cluster.env,
            log=cluster.folder / f"{name}.log",
        )  # fmt: skip
        self._local = threading.local()

    def wait_until_up(self, timeout: float = 60) -> None:
        def answers() -> bool:
            assert self.child.alive(), self.child.output()
            try:
                return self.aci("GetVersion")["response"] == "SUCCESS"
            except OSError:
                return False

        wait_for(answers, timeout, f"{self.name} to answer", self.child.output, interval=0.2)

    def _connection(self) -> http.client.HTTPConnection:
        """A keep-alive connection of the calling thread."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        return conn

    def aci(self, action: str, **params: str) -> dict[str, Any]:
        """The simplejson ``autnresponse`` of an action (success or error)."""
        query = urllib.parse.urlencode({"ResponseFormat": "simplejson", **params})
        path = f"/action={urllib.parse.quote(action)}&{query}"
        for attempt in range(2):
            conn = self._connection()
            try:
                conn.request("GET", path)
                response = conn.getresponse()
                body = response.read()
                break
            except (http.client.HTTPException, ConnectionError):
                # The server closed a kept-alive connection: one new try.
                conn.close()
                self._local.conn = None
                if attempt:
                    raise
        assert response.status == 200, (response.status, body[:500])
        return dict(json.loads(body)["autnresponse"])

    def submit(self, fetch_action: str, **params: str) -> str:
        answer = self.aci("Fetch", FetchAction=fetch_action, **params)
        assert answer["response"] == "SUCCESS", answer
        return str(answer["responsedata"]["token"])

    def queue_action(self, queue_action: str, **params: str) -> dict[str, Any]:
        return self.aci("QueueInfo", QueueName="fetch", QueueAction=queue_action, **params)

    def status(self, token: str) -> dict[str, Any]:
        answer = self.queue_action("GetStatus", Token=token)
        return dict(answer["responsedata"]["actions"]["action"][0])


class Worker:
    """A ``manage.py runworker fetch`` process of the cluster."""

    def __init__(self, cluster: Cluster, name: str, env: dict[str, str]) -> None:
        self.name = name
        self.cluster = cluster
        self.child = Child(
            name,
            [sys.executable, "manage.py", "runworker", "fetch"],
            env={**cluster.env, **env},
            log=cluster.folder / f"{name}.log",
        )
        self.id = ""

    def wait_until_registered(self, timeout: float = 60) -> str:
        def registered() -> str | None:
            assert self.child.alive(), self.child.output()
            rows = self.cluster.query(
                "SELECT id FROM connector_workerprocess WHERE pid = %s", self.child.pid
            )
            return str(rows[0][0]) if rows else None

        self.id = wait_for(registered, timeout, f"{self.name} to register", self.child.output)
        return self.id


class Cluster:
    """PostgreSQL + Redis + web servers + workers on loopback; see the module docstring."""

    def __init__(
        self,
        folder: Path,
        *,
        lease: float = 2.0,
        heartbeat: float = 0.25,
        poll: float = 3.0,
        threads: int = 4,
        log_level: str = "INFO",
    ) -> None:
        global _databases
        _databases += 1
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.lease = lease
        self.poll = poll
        self.db_name = f"connector_scaleout_{os.getpid()}_{_databases}"
        admin = urllib.parse.urlsplit(POSTGRES_URL)
        self.db_url = urllib.parse.urlunsplit(admin._replace(path=f"/{self.db_name}"))
        self.operator_password = secrets.token_urlsafe(16)
        base_env = {
            key: value
            for key, value in os.environ.items()
            if key not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "CONNECTOR_CONFIG"}
            and not key.startswith("PYTEST")
        }
        self.redis = Redis(folder, base_env)
        self.env = {
            **base_env,
            "DJANGO_SETTINGS_MODULE": "connector.settings",
            "DATABASE_URL": self.db_url,
            "REDIS_URL": self.redis.url,
            # Shared by the servers: a session or a socket signed on one is good on the other.
            "SECRET_KEY": secrets.token_urlsafe(50),
            "CONNECTOR_VAR_DIR": str(folder / "var"),
            "CONNECTOR_DEMO_DIR": str(folder / "demo"),
            "CONNECTOR_EXTRA_FETCH_ACTION_MODULES": "connector.fetch.diagnostics",
            "CONNECTOR_LEASE_SECONDS": str(lease),
            "CONNECTOR_HEARTBEAT_SECONDS": str(heartbeat),
            "CONNECTOR_POLL_SECONDS": str(poll),
            "CONNECTOR_FETCH_THREADS": str(threads),
            "CONNECTOR_SHUTDOWN_GRACE_SECONDS": "5",
            # Thousands of submissions from one client (loopback) in seconds: the
            # per-client rate limit is tested on its own (tests/connector/aci/test_limits.py).
            "CONNECTOR_ACI_SUBMISSIONS_PER_WINDOW": "0",
            "LOG_LEVEL": log_level,
            "PYTHONUNBUFFERED": "1",
        }
        self.servers: list[WebServer] = []
        self.workers: list[Worker] = []
        self._db: psycopg.Connection[Any] | None = None
        self._created = False
        self._started_workers = 0

    # --- Life cycle ----------------------------------------------------------------

    def start(self, *, servers: int = 2, workers: int = 3) -> Cluster:
        """Database, migrations, operator user, Redis, then the processes; wait until ready."""
        try:
            with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
                drop_abandoned_databases(admin)
                admin.execute(f'CREATE DATABASE "{self.db_name}"')
            self._created = True
            self.manage("migrate", "--no-input", "-v", "0")
            self.manage(
                "createsuperuser", "--no-input", "--username", OPERATOR, "--email", "",
                DJANGO_SUPERUSER_PASSWORD=self.operator_password,
            )  # fmt: skip
            self.redis.start()
            self.servers = [
                WebServer(self, f"server-{'AB'[n] if n < 2 else n}") for n in range(servers)
            ]
            for _ in range(workers):
                self.add_worker(wait=False)
            for server in self.servers:
                server.wait_until_up()
            for worker in self.workers:
                worker.wait_until_registered()
        except BaseException:
            self.close()
            raise
        return self

    def manage(self, *args: str, **env: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def add_worker(self, *, wait: bool = True, **env: str) -> Worker:
        self._started_workers += 1
        worker = Worker(self, f"worker-{self._started_workers}", env)
        self.workers.append(worker)
        if wait:
            worker.wait_until_registered()
        return worker

    def remove_worker(self, worker: Worker) -> int:
        """SIGTERM (a graceful shutdown); return its exit code."""
        self.workers.remove(worker)
        return worker.child.terminate()

    def close(self) -> None:
        """Kill every process, stop Redis, drop the database."""
        for child in [*(s.child for s in self.servers), *(w.child for w in self.workers)]:
            child.kill()
        self.redis.stop()
        if self._db is not None:
            with contextlib.suppress(psycopg.Error):
                self._db.close()
            self._db = None
        if self._created:
            with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
            self._created = False

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- Reading the database --------------------------------------------------------

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        if self._db is None or self._db.closed:
            self._db = psycopg.connect(self.db_url, autocommit=True)
        cursor = self._db.execute(sql, params)
        return cursor.fetchall() if cursor.description else []

    def statuses(self, tokens: list[str]) -> dict[str, str]:
        rows = self.query(
            "SELECT token, status FROM connector_action WHERE token = ANY(%s)", tokens
        )
        return dict(rows)

    def count(self, where: str, *params: Any) -> int:
        return int(
            self.query(f"SELECT count(*) FROM connector_action WHERE {where}", *params)[0][0]
        )

    def wait_until_idle(self, timeout: float = 60) -> None:
        """Until no action is Queued or Processing."""
        wait_for(
            lambda: self.count("status IN ('Queued', 'Processing')") == 0,
            timeout,
            "the queue to drain",
            self.logs,
            interval=0.1,
        )

    def runs(self) -> list[tuple[str, str]]:
        """(token, worker) lines RecordRun actions wrote, one per run."""
        path = Path(self.env["CONNECTOR_VAR_DIR"]) / RUNS_LOG
        if not path.exists():
            return []
        return [tuple(line.split(" ", 1)) for line in path.read_text().splitlines()]  # type: ignore[misc]

    # --- Submitting ------------------------------------------------------------------

    def submit_many(
        self, count: int, fetch_action: str = "RecordRun", *, clients: int = 8, **params: str
    ) -> list[tuple[str, str]]:
        """Submit ``count`` actions round-robin through the servers from ``clients``
        threads; return (token, server name) in submission order."""

        def one(n: int) -> tuple[str, str]:
            server = self.servers[n % len(self.servers)]
            return server.submit(fetch_action, **params), server.name

        with ThreadPoolExecutor(clients) as pool:
            return list(pool.map(one, range(count)))

    def submit_direct(self, count: int, fetch_action: str, **params: str) -> None:
        """Queue ``count`` actions through the queue module in one transaction of a
        ``manage.py shell`` (for benchmarks: fast, and no HTTP in the way). Its
        wake-ups stay in that process (no REDIS_URL): pause the queue and resume it after."""
        code = (
            "from django.db import transaction\n"
            "from connector import queue\n"
            "with transaction.atomic():\n"
            f"    for _ in range({int(count)}):\n"
            f"        queue.submit_action(fetch_action={fetch_action!r}, params={params!r})\n"
        )
        self.manage("shell", "-c", code, REDIS_URL="")

    # --- Diagnostics -----------------------------------------------------------------

    def logs(self) -> str:
        children = [*(s.child for s in self.servers), *(w.child for w in self.workers)]
        return "\n".join(f"--- {c.name}\n{c.output()[-4000:]}" for c in children)

    @contextlib.contextmanager
    def serving(self, **start: int) -> Iterator[Cluster]:
        try:
            yield self.start(**start)
        finally:
            self.close()
