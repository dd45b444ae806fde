"""A GET through the connector's whole ASGI application, in the test's process."""

from __future__ import annotations

from typing import Any

from asgiref.testing import ApplicationCommunicator


async def get(
    path: str,
    query: bytes = b"",
    *,
    host: bytes = b"127.0.0.1",
    app: Any = None,
    timeout: float = 5,
) -> tuple[int, bytes, dict[bytes, bytes]]:
    """Status, body and headers of ``GET path?query`` from 127.0.0.1, through ``app``
    (the connector's whole ASGI application unless given)."""
    if app is None:
        from connector.asgi import application as app

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "headers": [(b"host", host)],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    communicator = ApplicationCommunicator(app, scope)
    await communicator.send_input({"type": "http.request", "body": b""})
    start = await communicator.receive_output(timeout)
    body = b""
    while True:
        message = await communicator.receive_output(timeout)
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    return start["status"], body, dict(start["headers"])
