"""What a huge request body costs the web server, with and without connector.intake.

Starts two web processes on one fresh SQLite site: ``manage.py serve
--no-worker`` (daphne through connector.intake, as shipped) and the same daphne
with the intake left out (the behaviour before it: Twisted's own protocol).
Each gets a POST of ``--mib`` MiB (url-encoded, sent in 1 MiB pieces) from an
unauthorised client (127.0.0.2, which holds no role) and from an authorised one
(127.0.0.1), framed with Content-Length and chunked. For each it prints the
server's resident memory growth (sampled every 10 ms; the peak over the
baseline), how many bytes the client got to send before the answer, the time
to the answer, and the ACI error code answered.

    python bench/request_bodies.py [--mib 256]
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PIECE = 1024 * 1024

# daphne's command line with connector.intake left out: the old behaviour.
WITHOUT_INTAKE = (
    "import sys, connector.intake as intake\n"
    "intake.install = lambda: None\n"
    "from daphne.cli import CommandLineInterface\n"
    "sys.argv = ['daphne', *sys.argv[1:]]\n"
    "CommandLineInterface.entrypoint()\n"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_kib(pid: int) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"VmRSS:\s+(\d+)", text)
    return int(found.group(1)) if found else 0


def wait_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited:\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"server did not listen:\n{log.read_text()}")


class Peak:
    """The peak RSS of a process while a block runs, sampled every 10 ms."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._running = False

    def __enter__(self) -> Peak:
        self.base = rss_kib(self.pid)
        self.peak = self.base
        self._running = True
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while self._running:
            self.peak = max(self.peak, rss_kib(self.pid))
            time.sleep(0.01)

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.3)  # what the server does right after the answer counts too
        self._running = False
        self._thread.join()

    @property
    def growth_mib(self) -> float:
        return (self.peak - self.base) / 1024


def post(port: int, source: str, mib: int, *, chunked: bool) -> tuple[int, float, str]:
    """Send the POST; (bytes the client sent, seconds to the answer, the ACI error code)."""
    total = mib * PIECE
    sock = socket.create_connection(("127.0.0.1", port), timeout=120, source_address=(source, 0))
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {total + 5}"
    head = (
        "POST /?action=GetVersion HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\n{framing}\r\n\r\n"
    ).encode()
    sent = 0
    started = time.monotonic()

    def send() -> None:
        nonlocal sent
        piece = b"a" * PIECE
        try:
            sock.sendall(head)
            first = b"Note="
            sock.sendall(b"%x\r\n%s\r\n" % (len(first), first) if chunked else first)
            sent += len(first)
            while sent < total:
                sock.sendall(b"%x\r\n%s\r\n" % (PIECE, piece) if chunked else piece)
                sent += PIECE
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server answered and closed

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    answer = b""
    try:
        while b"</autnresponse>" not in answer:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    except OSError:
        pass
    elapsed = time.monotonic() - started
    sock.close()
    sender.join(30)
    code = re.search(rb"<errorcode>(\w+)</errorcode>", answer)
    shown = code.group(1).decode() if code else (answer.split(b"\r\n", 1)[0].decode() or "none")
    return sent, elapsed, shown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256, help="Body size in MiB.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        var = Path(folder)
        env = {
            **os.environ,
            "CONNECTOR_VAR_DIR": str(var),
            "CONNECTOR_DEMO_DIR": str(var / "demo"),
            "DATABASE_URL": f"sqlite:///{var / 'bench.sqlite3'}",
            "DJANGO_SETTINGS_MODULE": "connector.settings",
            "LOG_LEVEL": "ERROR",
        }
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True
        )
        servers = {}
        for name in ("before (no intake)", "serve (intake)"):
            port = free_port()
            log = var / f"{port}.log"
            if name.startswith("serve"):
                command = [sys.executable, "manage.py", "serve", "--no-worker", "--port", str(port)]
            else:
                command = [sys.executable, "-c", WITHOUT_INTAKE, "-p", str(port)]
                command.append("connector.asgi:application")
            with open(log, "wb") as out:
                process = subprocess.Popen(
                    command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
                )
            wait_listening(port, process, log)
            servers[name] = (port, process)
        try:
            print(f"POST of {args.mib} MiB to /?action=GetVersion; limit 16 MiB")
            print(
                f"{'server':<20} {'client':<22} {'framing':<15} {'RSS growth':>11} "
                f"{'client sent':>12} {'answer after':>13}  answer"
            )
            for name, (port, process) in servers.items():
                for source, who in (
                    ("127.0.0.2", "unauthorised 127.0.0.2"),
                    ("127.0.0.1", "authorised 127.0.0.1"),
                ):
                    for chunked in (False, True):
                        with Peak(process.pid) as peak:
                            sent, elapsed, code = post(port, source, args.mib, chunked=chunked)
                        framing = "chunked" if chunked else "Content-Length"
                        print(
                            f"{name:<20} {who:<22} {framing:<15} {peak.growth_mib:>7.1f} MiB "
                            f"{sent / PIECE:>8.1f} MiB {elapsed:>11.2f} s  {code}",
                            flush=True,
                        )
        finally:
            for _, process in servers.values():
                process.terminate()
                process.wait(30)


if __name__ == "__main__":
    main()
