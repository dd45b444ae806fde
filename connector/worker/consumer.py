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
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        # Unlike AsyncConsumer.__call__: no channel of the layer of its own.
        # The worker server (connector.worker.server) listens on the fetch
        # channel and the process's channel and puts their messages here;
        # the base would also wait on a channel nobody sends to. With Redis
        # that wait sometimes did not end when cancelled, so `runworker`
        # never exited after SIGTERM (issue 14, 7), and while Redis was down
        # it ended this consumer with "Exception inside application".
        self.scope = scope
        self.base_send = send
        while True:
            await self.dispatch(await receive())

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
