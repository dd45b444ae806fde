"""The live dashboard on a real ``serve``: a worker thread's change reaches a browser's socket.

The worker commits in its own thread and the socket lives in daphne's event loop;
this is the path the in-memory channel layer needs the broadcast's loop hand-off for.
"""

from __future__ import annotations

import base64
import os
import re
import socket
import struct
import time

import pytest
from processes import Server

pytestmark = pytest.mark.processes


def sign_in(server: Server) -> str:
    """Sign in as the admin ``serve`` created; return the session cookie."""
    jar, _ = server.sign_in()
    return next(f"{c.name}={c.value}" for c in jar if c.name == "sessionid")


class RawSocket:
    """Just enough of a websocket client to read the server's text frames."""

    def __init__(self, port: int, path: str, cookie: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\nOrigin: http://127.0.0.1:{port}\r\n"
                f"Cookie: {cookie}\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)
        self.status = int(head.split(b" ", 2)[1])

    def _exactly(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data

    def receive(self) -> str:
        first, second = self._exactly(2)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", self._exactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", self._exactly(8))
        payload = self._exactly(length)
        if first & 0x0F == 8:
            raise ConnectionError("closed by the server")
        return payload.decode()

    def close(self) -> None:
        self.sock.close()


def test_a_browser_socket_sees_an_action_go_queued_processing_finished(server):
    cookie = sign_in(server)
    ws = RawSocket(server.port, "/ws/dashboard/", cookie)
    try:
        assert ws.status == 101
        time.sleep(0.2)
        answer = server.aci("Fetch", FetchAction="Sleep", Seconds="0.5", Steps="5")
        assert answer["response"] == "SUCCESS"
        seen: list[str] = []
        deadline = time.monotonic() + 10
        while "Finished" not in seen and time.monotonic() < deadline:
            message = ws.receive()
            status = re.search(r'class="status status-\w+">(\w+)<', message)
            assert 'hx-swap-oob="true"' in message
            if status:
                seen.append(status.group(1))
        # Rows show the state when they are rendered: Queued may already be over.
        assert "Processing" in seen
        assert seen[-1] == "Finished"
    finally:
        ws.close()


def test_a_socket_without_a_session_is_refused(server):
    ws = RawSocket(server.port, "/ws/dashboard/", "sessionid=nothing")
    try:
        assert ws.status == 403
    finally:
        ws.close()
