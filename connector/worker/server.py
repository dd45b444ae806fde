"""The worker's ASGI server: channels' Worker plus the engine and its own channel.

``runworker fetch`` runs it alone; ``serve`` runs it in daphne's event loop.
It listens on the ``fetch`` channel (wake-ups, one worker of many gets each)
and on the process's own channel (Stop messages for the actions it runs), and
feeds both into one FetchConsumer instance.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from channels.layers import InMemoryChannelLayer
from channels.worker import Worker
from django.db import connections

from connector import wakeups
from connector.worker.checkpointer import WalCheckpointer
from connector.worker.engine import WorkerEngine

logger = logging.getLogger(__name__)

FETCH_CHANNEL = "fetch"
#: How long a failing channel layer (e.g. Redis down) is left before listening again;
#: the engine polls the database meanwhile, so nothing is lost.
LISTEN_RETRY_SECONDS = 1.0


class FetchWorkerServer(Worker):
    # The base checks finished instances ten times a second; an idle worker
    # should not wake that often.
    application_checker_interval = 1.0

    def __init__(
        self,
        application: Any,
        channels: list[str],
        channel_layer: Any,
        *,
        engine: WorkerEngine | None = None,
        max_applications: int = 1000,
    ) -> None:
        super().__init__(application, channels, channel_layer, max_applications)
        self.engine = engine or WorkerEngine()
        self.checkpointer = WalCheckpointer()
        self.own_channel = ""
        self._finished = asyncio.Event()
        self._shutdown_task: asyncio.Task[None] | None = None

    async def arun(self) -> None:
        # As the base's arun, but the application checker and the consumer
        # instance end with handle() instead of being left pending in the loop
        # (under serve the loop outlives the worker).
        checker = asyncio.ensure_future(self.application_checker())
        try:
            await self.handle()
        finally:
            checker.cancel()
            futures = [details["future"] for details in self.application_instances.values()]
            for future in futures:
                future.cancel()
            await asyncio.gather(checker, *futures, return_exceptions=True)

    async def handle(self) -> None:
        loop = asyncio.get_running_loop()
        if self._shutdown_task is not None:
            return
        if isinstance(self.channel_layer, InMemoryChannelLayer):
            # Sends from other threads (views, the engine) must run in this loop.
            wakeups.set_home_loop(loop)
        self.own_channel = await self.channel_layer.new_channel()
        self.engine.start(channel_name=self.own_channel)
        self.checkpointer.start()
        listeners = [asyncio.ensure_future(self.listener(channel)) for channel in self.channels]
        listeners.append(asyncio.ensure_future(self.listener(self.own_channel)))
        try:
            await self._finished.wait()
        finally:
            for listener in listeners:
                listener.cancel()
            await asyncio.gather(*listeners, return_exceptions=True)
            await asyncio.get_running_loop().run_in_executor(None, self.checkpointer.stop)
            if isinstance(self.channel_layer, InMemoryChannelLayer):
                wakeups.set_home_loop(None)

    async def listener(self, channel: str) -> None:
        """Feed the messages of one channel into the single FetchConsumer instance."""
        while True:
            try:
                message = await self.channel_layer.receive(channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("Could not receive from channel %s; retrying", channel)
                await asyncio.sleep(LISTEN_RETRY_SECONDS)
                continue
            if not message.get("type"):
                logger.warning("Message without a type on channel %s dropped", channel)
                continue
            instance_queue = self.get_or_create_application_instance(
                FETCH_CHANNEL, {"type": "channel", "channel": FETCH_CHANNEL}
            )
            await instance_queue.put(message)

    def begin_shutdown(self, grace: float | None = None) -> asyncio.Task[None]:
        """Shut the engine down (in a thread) and then end handle(); idempotent.

        Call it in the server's loop. The loop keeps running meanwhile, so
        Stop messages still reach running actions during the grace period.
        """
        if self._shutdown_task is None:
            self._shutdown_task = asyncio.ensure_future(self._shutdown(grace))
        else:
            logger.info("Worker %s is already shutting down", self.engine.id)
        return self._shutdown_task

    async def _shutdown(self, grace: float | None) -> None:
        try:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, _shutdown_engine, self.engine, grace)
        finally:
            self._finished.set()


def _shutdown_engine(engine: WorkerEngine, grace: float | None) -> None:
    try:
        engine.shutdown(grace)
    finally:
        connections.close_all()
