from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import webbrowser
from pathlib import Path

import pytest
from processes import ROOT, free_port

from connector.management.commands.serve import desktop_browser_available


def test_no_browser_is_opened_without_a_desktop(monkeypatch):
    monkeypatch.setattr("sys.platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(webbrowser, "get", lambda: pytest.fail("must not look for a browser"))
    assert not desktop_browser_available()


def test_a_desktop_without_a_browser_opens_nothing(monkeypatch):
    monkeypatch.setattr("sys.platform", "linux")
    monkeypatch.setenv("DISPLAY", ":0")

    def no_browser():
        raise webbrowser.Error("none")

    monkeypatch.setattr(webbrowser, "get", no_browser)
    assert not desktop_browser_available()


def test_a_desktop_with_a_browser_opens_the_dashboard(monkeypatch):
    monkeypatch.setattr("sys.platform", "linux")
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    monkeypatch.setattr(webbrowser, "get", lambda: object())
    assert desktop_browser_available()


# --- Issue 14 item 6 and issue 13 item 20: the banner, commands that work, the bind ---


def test_printed_commands_name_the_interpreter_and_manage_py_that_run(
    monkeypatch, settings, tmp_path
):
    from connector.banner import manage_command

    monkeypatch.chdir(settings.BASE_DIR)
    monkeypatch.setattr("sys.executable", str(settings.BASE_DIR / ".venv" / "bin" / "python"))
    assert manage_command("changepassword admin") == (
        ".venv/bin/python manage.py changepassword admin"
    )
    monkeypatch.chdir(tmp_path)  # elsewhere: absolute paths
    assert manage_command("migrate") == (
        f"{settings.BASE_DIR}/.venv/bin/python {settings.BASE_DIR}/manage.py migrate"
    )


def test_the_banner_says_who_may_call_what_with_the_default_roles():
    from connector.banner import access_lines

    text = "\n".join(access_lines())
    assert "ACI role admin (change, status, view): 127.0.0.1, ::1, without a key" in text
    assert "ACI, any other client: refused" in text
    assert "every process on this machine, of any user, may change the queue" in text
    assert "X-Forwarded-For: ignored" in text


def test_the_banner_warns_of_a_loopback_trusted_proxy_and_names_keys():
    from connector.banner import access_lines

    text = "\n".join(
        access_lines(
            roles={
                "admin": {"actions": ["change"], "clients": ["10.0.0.0/8"], "api_key": "k" * 32}
            },
            trusted_proxies=["127.0.0.1"],
            metrics_clients=["*"],
        )
    )
    assert "ACI role admin (change): 10.0.0.0/8, with its API key (X-API-Key)" in text
    assert "every process on this machine" not in text
    assert "any local process can claim any client address" in text
    assert "/metrics: any address" in text


def test_a_taken_port_is_said_plainly_with_what_to_do():
    from connector.management.commands.serve import bind_failure

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        message = bind_failure("127.0.0.1", port)
    assert f"Port {port} on 127.0.0.1 is already in use" in message
    assert "make run PORT=8001" in message


def _private(root: Path) -> list[str]:
    """Everything under root that a group or other user could read, write or enter."""
    return [
        f"{oct(path.stat().st_mode & 0o777)} {path}"
        for path in [root, *root.rglob("*")]
        if path.stat().st_mode & 0o077
    ]


@pytest.mark.processes
def test_serve_on_a_taken_port_says_so_after_the_attempt_and_keeps_the_password(tmp_path):
    env = _site_env(tmp_path)
    _manage(env, "migrate", "--no-input", "-v", "0")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _manage(env, "serve", "--port", str(port), check=False)
    assert done.returncode != 0
    assert "listening" not in done.stdout.lower()
    assert f"Port {port} on 127.0.0.1 is already in use" in done.stderr
    assert "make run PORT=8001" in done.stderr
    assert "Traceback" not in done.stderr
    # The admin made on this first run keeps its one chance to be shown.
    assert "Created the user admin" in done.stdout


@pytest.mark.processes
def test_state_files_are_private_from_the_first_byte_whatever_the_callers_umask(tmp_path):
    """As another local user: nothing under var/ (database, WAL, SHM, secret key) opens."""
    env = _site_env(tmp_path)
    var = Path(env["CONNECTOR_VAR_DIR"])
    _manage(env, "migrate", "--no-input", "-v", "0")
    port = free_port()
    out = tmp_path / "serve.log"
    with open(out, "wb") as log:
        server = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: os.umask(0o022),
        )
    try:
        deadline = time.monotonic() + 60
        while "Connector listening on" not in out.read_text():
            assert server.poll() is None and time.monotonic() < deadline, out.read_text()
            time.sleep(0.1)
        # A submission: the WAL and its index exist while the server runs.
        urllib.request.urlopen(
            f"http://127.0.0.1:{port}/action=Fetch&FetchAction=Identifiers&ConfigSection=DEMO",
            timeout=10,
        ).read()
        assert (var / "connector.sqlite3-wal").exists()
        assert (var / "connector.sqlite3-shm").exists()
        assert (var / "secret_key").exists()
        assert _private(var) == []
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(60)
    assert _private(var) == []


def _site_env(tmp_path: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "CONNECTOR_CONFIG", "CONNECTOR_UMASK"}
    }
    env.update({"CONNECTOR_VAR_DIR": str(tmp_path / "var"), "PYTHONUNBUFFERED": "1"})
    env.pop("CONNECTOR_DEMO_DIR", None)
    return env


def _manage(
    env: dict[str, str], *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=lambda: os.umask(0o022),
    )
    if check:
        assert done.returncode == 0, done.stderr
    return done
