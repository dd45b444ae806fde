"""Real connector processes for tests: an installation in a temporary folder.

Each ``Site`` has its own SQLite file and var folder, short lease, heartbeat
and poll times, and the diagnostic fetch actions. The test process reads the
children's database with sqlite3.
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
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
        #: The processes started as leaders of their own process group.
        self.groups: set[int] = set()
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

    def start(self, *args: str, group: bool = False, **env: str) -> subprocess.Popen[bytes]:
        """Start ``manage.py args``; with ``group``, as the leader of a process group
        of its own, as a shell starts a foreground job (see ``interrupt_group``)."""
        log = self.tmp / f"process-{len(self.processes)}.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [sys.executable, "manage.py", *args],
                cwd=ROOT,
                env={**self.env, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
                process_group=0 if group else None,
            )
        self.processes.append((process, log))
        if group:
            self.groups.add(process.pid)
        return process

    @staticmethod
    def interrupt_group(process: subprocess.Popen[bytes]) -> None:
        """SIGINT to the process and every child of its group at once, as a
        terminal's Ctrl-C sends it to the foreground job (``start(group=True)``)."""
        os.killpg(process.pid, signal.SIGINT)

    def logs(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text()}" for _, log in self.processes)

    def stop_all(self) -> None:
        for process, _ in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(10)
            if process.pid in self.groups:
                # Its children too (reader processes), whatever became of it.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)

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


class Server:
    """A ``manage.py serve`` process of a site, and a client of its action endpoint."""

    def __init__(self, site: Site, **env: str) -> None:
        self.site = site
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.process = site.start("serve", "--port", str(self.port), **env)
        site.wait_for_worker(self.process)

    def aci(self, action: str, **params: str) -> dict[str, Any]:
        """The simplejson ``autnresponse`` of an action (success or error)."""
        query = urllib.parse.urlencode({"ResponseFormat": "simplejson", **params})
        url = f"{self.base}/action={urllib.parse.quote(action)}&{query}"
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200
            return dict(json.load(response)["autnresponse"])

    def status(self, token: str) -> dict[str, Any]:
        answer = self.aci("QueueInfo", QueueName="fetch", QueueAction="GetStatus", Token=token)
        return dict(answer["responsedata"]["actions"]["action"][0])

    def wait_for_status(self, token: str, *statuses: str, timeout: float = 15) -> dict[str, Any]:
        return dict(
            self.site.wait_for(
                lambda: (s := self.status(token))["status"] in statuses and s,
                timeout,
                f"{token} to be {' or '.join(statuses)}",
            )
        )

    def admin_password(self) -> str:
        """The password of the admin user, as ``serve`` printed it on its first start."""
        printed = self.site.wait_for(
            lambda: re.search(r"password \(shown only now\) is:\s+(\S+)", self.site.logs()),
            10,
            "the admin password in serve's output",
        )
        return str(printed.group(1))

    def sign_in(self) -> tuple[http.cookiejar.CookieJar, Any]:
        """Sign in as that admin through the login form; return the cookies and the page reached."""
        return sign_in_at(self.base, "admin", self.admin_password())


def sign_in_at(base: str, username: str, password: str) -> tuple[http.cookiejar.CookieJar, Any]:
    """Sign in through the login form of the server at ``base``; return the cookies and
    the page reached."""
    jar = http.cookiejar.CookieJar()
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = browser.open(f"{base}/accounts/login/", timeout=10).read().decode()
    found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert found, "no CSRF token on the login page"
    form = urllib.parse.urlencode(
        {"username": username, "password": password, "csrfmiddlewaretoken": found.group(1)}
    ).encode()
    request = urllib.request.Request(
        f"{base}/accounts/login/", data=form, headers={"Referer": base + "/"}
    )
    return jar, browser.open(request, timeout=10)
