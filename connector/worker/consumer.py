"""The Channels consumer of the ``fetch`` channel: wake-ups and stops, nothing more.

Channels runs one instance per channel and handles its messages one after
another, so a handler that did the work would block the next wake-up and every
Stop behind it (DESIGN, queue rule 6). Both handlers only flip a flag of the
process's engine (``connector.worker.engine``) and return at once.
"""

from __future__ import annotations

import logging
from typing import Any

from channels.consumer import AsyncConsumer, get_handler_name

from connector.worker.engine import current_engine

logger = logging.getLogger(__name__)


class FetchConsumer(AsyncConsumer):
    async def dispatch(self, message: dict[str, Any]) -> None:
        # Unlike AsyncConsumer.dispatch: no close_old_connections() thread hop
        # per message (these handlers never touch the database, and the hop
        # is most of a wake-up's latency), and an unknown message is dropped
        # instead of ending the consumer.
        try:
            handler = getattr(self, get_handler_name(message), None)
        except ValueError:
            handler = None
        if handler is None:
            logger.warning("Fetch consumer ignored a message of type %r", message.get("type"))
            return
        await handler(message)

    async def fetch_wake(self, message: dict[str, Any]) -> None:
        engine = current_engine()
        if engine is None:
            logger.warning("Wake-up on the fetch channel but no worker engine in this process")
            return
        engine.wake()

    async def fetch_stop(self, message: dict[str, Any]) -> None:
        engine = current_engine()
        pk = message.get("pk")
        if engine is None or not isinstance(pk, int):
            logger.warning("Stop message %r not for a worker engine of this process", message)
            return
        engine.stop_local(pk)
