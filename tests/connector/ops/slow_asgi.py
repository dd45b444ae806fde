"""The connector's ASGI application behind a path that answers slowly (for shutdown tests).

``/slow`` waits ``SLOW_SECONDS`` and then lets the connector answer ``/healthz``:
a request that is in flight when the server is told to stop.
"""

from __future__ import annotations

import asyncio
from typing import Any

from connector.asgi import application as connector_application

SLOW_SECONDS = 3.0


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "http" and scope["path"] == "/slow":
        await asyncio.sleep(SLOW_SECONDS)
        scope = {**scope, "path": "/healthz", "raw_path": b"/healthz"}
    await connector_application(scope, receive, send)
