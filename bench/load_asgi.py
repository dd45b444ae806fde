"""The connector's ASGI application plus a bare ASGI app at ``/bench/asgi`` (benchmarks only).

The bare app answers in front of everything else of the connector's
application, so a request to it costs daphne (with the connector's request
intake) and nothing more: the floor `bench/endpoint.py` measures the endpoint
against. The connector never serves this module (``bench.load_settings`` only).
"""

from __future__ import annotations

from typing import Any

from connector.asgi import application as connector_application

BARE_PATH = "/bench/asgi"
_HEADERS = [(b"content-type", b"text/plain"), (b"content-length", b"2")]


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "http" and scope["path"] == BARE_PATH:
        await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    await connector_application(scope, receive, send)
