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
#: How long a failing channel layer (e.g. Redis down) is left before listening
#: again, doubled after each failure up to the most; the engine polls the
#: database meanwhile, so nothing is lost.
LISTEN_RETRY_SECONDS = 0.25
LISTEN_RETRY_MOST_SECONDS = 2.0
#: After a failure, a receive that has not failed for this long means the
#: channel layer is back (a receive returns only when a message comes).
LISTENING_AGAIN_AFTER_SECONDS = 1.0


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
        #: Channels whose last receive failed (an outage is on while not empty).
        self._failing: set[str] = set()

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
            # Sends from other threads (views, the engine) must run in this loop;
            # nothing outside this process hears a wake-up, so it goes to the engine.
            wakeups.set_home_loop(loop)
            wakeups.set_local_engine(self.engine)
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
                wakeups.set_local_engine(None)

    async def listener(self, channel: str) -> None:
        """Feed the messages of one channel into the single FetchConsumer instance.

        Survives the channel layer failing (Redis down): one warning when the
        first receive fails, retries with a growing pause, one line when a
        receive works again (``_listening_again``). Meanwhile the engine
        claims at every poll and looks for Stops at every poll, not only at
        every heartbeat (``WorkerEngine.messages_lost``).
        """
        retry = LISTEN_RETRY_SECONDS
        while True:
            receiving = asyncio.ensure_future(self.channel_layer.receive(channel))
            try:
                if channel in self._failing:
                    await asyncio.wait({receiving}, timeout=LISTENING_AGAIN_AFTER_SECONDS)
                    if not receiving.done():
                        self._listening_again(channel)
                message = await receiving
            except asyncio.CancelledError:
                receiving.cancel()
                await asyncio.gather(receiving, return_exceptions=True)
                raise
            except Exception as error:
                self._receive_failed(channel, error)
                await asyncio.sleep(retry)
                retry = min(retry * 2, LISTEN_RETRY_MOST_SECONDS)
                continue
            retry = LISTEN_RETRY_SECONDS
            if channel in self._failing:
                self._listening_again(channel)
            if not message.get("type"):
                logger.warning("Message without a type on channel %s dropped", channel)
                continue
            instance_queue = self.get_or_create_application_instance(
                FETCH_CHANNEL, {"type": "channel", "channel": FETCH_CHANNEL}
            )
            await instance_queue.put(message)

    def _receive_failed(self, channel: str, error: Exception) -> None:
        if channel in self._failing:
            logger.debug("Channel %s still failing: %s", channel, error)
            return
        first = not self._failing
        self._failing.add(channel)
        if first:
            logger.warning(
                "The channel layer failed (%s: %s); retrying. Meanwhile wake-ups and Stops"
                " sent to this worker are lost: it claims at every poll (%s s) and looks for"
                " Stops at every poll instead.",
                type(error).__name__,
                error,
                self.engine.poll_seconds,
            )
            self.engine.messages_lost(True)

    def _listening_again(self, channel: str) -> None:
        self._failing.discard(channel)
        if not self._failing:
            logger.info("The channel layer works again; listening on %s", self.channels)
            # What was sent meanwhile is lost: look now instead.
            self.engine.messages_lost(False)

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
