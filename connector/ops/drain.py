"""Requests in flight get their answer when the web process is told to stop.

On SIGTERM daphne cancels every running application instance and then stops
its reactor, closing the connections. A request in flight then may or may not
get its answer: Django's handler lets the view's thread finish, but whether
the answer is written before the connection is closed is a race (seen both
ways in tests/connector/ops/test_shutdown.py under load). An ACI client would
not learn the token of the action it just queued.

``FinishRequestsOnShutdown`` wraps the HTTP application: when the server
cancels a request, the request goes on, shielded, for up to
``CONNECTOR_HTTP_DRAIN_SECONDS`` and sends its answer the normal way. daphne
waits for the cancelled instances before it closes anything, and serves in
the meantime, so the answer goes out. After that time the request is
cancelled as before. Websockets are not held: the dashboard reconnects.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from django.conf import settings

logger = logging.getLogger(__name__)

#: After the answer, a moment for the server to write it out before it closes
#: the connection (the reactor writes on its next turns).
FLUSH_SECONDS = 0.05


class FinishRequestsOnShutdown:
    """ASGI middleware for the ``http`` scope; see the module docstring."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        request = asyncio.ensure_future(self.app(scope, receive, send))
        try:
            # Shielded: the server's cancellation reaches this coroutine, not the request.
            await asyncio.shield(request)
        except asyncio.CancelledError:
            if request.done():
                raise
            drain = float(settings.CONNECTOR_HTTP_DRAIN_SECONDS)
            logger.info("Stopping: %s gets up to %g s to answer", scope.get("path"), drain)
            try:
                await asyncio.wait_for(asyncio.shield(request), timeout=drain)
                await asyncio.sleep(FLUSH_SECONDS)
            except TimeoutError:
                logger.warning("Stopping: %s did not answer within %g s", scope.get("path"), drain)
                request.cancel()
                await asyncio.gather(request, return_exceptions=True)
            except Exception:
                logger.exception("Stopping: %s failed", scope.get("path"))
            raise
