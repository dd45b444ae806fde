"""Messages over the channel layer: wake-ups and stops for workers, news for dashboards.

A message is only a hint: channel layers deliver at most once and drop when
full, and workers poll the database anyway, so a failed send is logged and
forgotten. Call these after the commit (``transaction.on_commit``).

The in-memory channel layer keeps its queues in one event loop (the server's);
a send from another thread must be run in that loop, or the waiting receiver
is not woken. The worker server and the dashboard's consumer register that
loop here when they start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from asgiref.sync import async_to_sync
from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer, get_channel_layer

logger = logging.getLogger(__name__)

WAKE = "fetch.wake"
STOP = "fetch.stop"

_home_loop: asyncio.AbstractEventLoop | None = None
_local_engine: LocalEngine | None = None


class LocalEngine(Protocol):
    """What a wake-up needs of the worker engine of this process."""

    queues: dict[str, int]

    def wake(self) -> None: ...


def set_home_loop(loop: asyncio.AbstractEventLoop | None) -> None:
    global _home_loop
    _home_loop = loop


def set_local_engine(engine: LocalEngine | None) -> None:
    """The engine that every wake-up of this process reaches (in-memory layer only).

    The in-memory layer has no other listener than this process's worker, so
    a wake-up goes to its engine directly: a condition's notify, instead of a
    message through the server's event loop and the consumer (about a sixth of
    a Fetch's CPU under ``serve``; bench/README.md, "Endpoint CPU per request").
    """
    global _local_engine
    _local_engine = engine


def send(channel: str, message: dict[str, Any]) -> None:
    """Send to one channel; never raises (a lost hint is covered by polling)."""
    layer = get_channel_layer()
    if layer is None:
        return
    _deliver(layer, lambda: layer.send(channel, message), f"{message} to {channel}", fallback=True)


def send_group(group: str, message: dict[str, Any], *, merge: str = "") -> None:
    """Send to every channel of a group; never raises.

    With the in-memory layer and no server loop in this process, nobody can be
    listening, and the message is dropped instead of paying for a loop of its own.

    ``merge`` names a list in the message: with a shared layer, messages of the
    same group and type that come within ``_Sender.MERGE_SECONDS`` go as one,
    with their lists joined (see ``_Sender.send_merged``).
    """
    layer = get_channel_layer()
    if layer is None:
        return
    if isinstance(layer, InMemoryChannelLayer) and not layer.groups.get(group):
        # Nobody in this process listens: spare the event loop a message per change.
        return
    if merge and not isinstance(layer, InMemoryChannelLayer):
        try:
            _sender.send_merged(layer, group, message, merge)
        except Exception:
            logger.warning("Could not send %s to group %s", message, group, exc_info=True)
        return
    _deliver(
        layer,
        lambda: layer.group_send(group, message),
        f"{message} to group {group}",
        fallback=not isinstance(layer, InMemoryChannelLayer),
    )


def _deliver(
    layer: Any, sending: Callable[[], Coroutine[Any, Any, None]], what: str, *, fallback: bool
) -> None:
    try:
        loop = _home_loop
        if isinstance(layer, InMemoryChannelLayer) and loop is not None and loop.is_running():
            future = asyncio.run_coroutine_threadsafe(sending(), loop)
            future.add_done_callback(_log_failure)
        elif fallback and not isinstance(layer, InMemoryChannelLayer):
            _sender.send(sending, what)
        elif fallback:

            async def send_here() -> None:
                await sending()

            async_to_sync(send_here)()
    except ChannelFull:
        logger.debug("Channel full for %s; its receiver is awake anyway", what)
    except Exception:
        logger.warning("Could not send %s; polling covers it", what, exc_info=True)


class _Sender:
    """One event loop per process, in a thread of its own, for sends to a shared layer.

    A shared (Redis) layer keeps its connections per event loop: sent with
    ``async_to_sync``, each message made a loop and a connection of its own,
    about 5 ms of a worker thread twice per action (bench/README.md, scale-out).
    Here ``CONNECTIONS`` connections are kept, and the committing thread does
    not wait for the send. At most ``MAX_PENDING`` sends wait; beyond that a
    hint is dropped, as a full channel would drop it; so are those still
    waiting when the process exits (polling covers both).
    """

    MAX_PENDING = 1000
    CONNECTIONS = 2
    #: How long a mergeable message waits for like ones to join it.
    MERGE_SECONDS = 0.05

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._pending = 0
        self._sending = asyncio.Semaphore(self.CONNECTIONS)
        # Mergeable messages waiting to be sent, by (group, type).
        self._merging: dict[tuple[str, str], dict[str, Any]] = {}

    def send(self, sending: Callable[[], Coroutine[Any, Any, None]], what: str) -> None:
        with self._lock:
            if self._pending >= self.MAX_PENDING:
                logger.debug("%s sends waiting; %s dropped", self._pending, what)
                return
            self._pending += 1
            loop = self._running_loop()
        future = asyncio.run_coroutine_threadsafe(self._bounded(sending), loop)
        future.add_done_callback(self._done)

    def send_merged(self, layer: Any, group: str, message: dict[str, Any], field: str) -> None:
        """Send ``message`` to ``group`` in ``MERGE_SECONDS``, together with the like
        messages (same group and type) that come meanwhile: one send, their
        ``field`` lists joined without repeats.

        The dashboard's news of changed actions: two per action, each a
        group_send of two Redis commands, cost a worker draining short actions
        more Python time than its claims and finishes together (bench/README.md,
        scale-out). Merged, a process sends at most 1 / MERGE_SECONDS a second.
        """
        key = (group, str(message["type"]))
        with self._lock:
            loop = self._running_loop()
            waiting = self._merging.get(key)
            if waiting is not None:
                waiting[field].extend(message[field])
                return
            if self._pending >= self.MAX_PENDING:
                logger.debug("%s sends waiting; %s to %s dropped", self._pending, message, group)
                return
            self._pending += 1
            self._merging[key] = {**message, field: list(message[field])}
        future = asyncio.run_coroutine_threadsafe(self._merged(layer, key, field), loop)
        future.add_done_callback(self._done)

    async def _merged(self, layer: Any, key: tuple[str, str], field: str) -> None:
        await asyncio.sleep(self.MERGE_SECONDS)
        with self._lock:
            message = self._merging.pop(key)
        message[field] = list(dict.fromkeys(message[field]))
        await self._bounded(lambda: layer.group_send(key[0], message))

    async def _bounded(self, sending: Callable[[], Coroutine[Any, Any, None]]) -> None:
        # The layer takes a pooled connection per send under way: a burst of
        # sends at once would open as many connections to Redis.
        async with self._sending:
            await sending()

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        # A forked child inherits the loop but not its thread: it makes its own.
        alive = self._thread is not None and self._thread.is_alive()
        if self._loop is None or not alive or self._pid != os.getpid():
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(
                target=self._loop.run_forever, name="channel-layer-sender", daemon=True
            )
            self._thread.start()
            self._pid = os.getpid()
            self._pending = 0
            self._sending = asyncio.Semaphore(self.CONNECTIONS)
            # Those were the old loop's to send.
            self._merging = {}
        return self._loop

    def close(self) -> None:
        """Stop the loop and join its thread: the process is about to exit.

        Sends still waiting are dropped (polling covers them). A daemon thread
        left running while the interpreter finalizes can crash it (issue 14, 2).
        """
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None or self._pid != os.getpid():
            return
        if thread.is_alive():
            cancelled = asyncio.run_coroutine_threadsafe(_cancel_the_others(), loop)
            with contextlib.suppress(Exception):
                cancelled.result(2)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        if not thread.is_alive():
            loop.close()

    def _done(self, future: Any) -> None:
        with self._lock:
            self._pending -= 1
        _log_failure(future)


_sender = _Sender()


async def _cancel_the_others() -> None:
    others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in others:
        task.cancel()
    await asyncio.gather(*others, return_exceptions=True)


def close() -> None:
    """Stop this process's sending thread, if it has one (``serve`` and
    ``runworker`` call this last; a later send starts it again)."""
    _sender.close()


def _log_failure(future: Any) -> None:
    if (
        not future.cancelled()
        and (error := future.exception())
        and not isinstance(error, ChannelFull)
    ):
        logger.warning("Could not send a wake-up: %s", error)


def wake_queue(queue: str) -> None:
    """Tell one worker of the queue that there is work."""
    engine = _local_engine
    if engine is not None and queue in engine.queues:
        engine.wake()
        return
    send(queue, {"type": WAKE, "queue": queue})


def wake_workers(queue: str) -> None:
    """Tell every running worker that the queue has work (on Resume: all can start at once).

    ``wake_queue`` reaches one worker; after a Resume the others would wait for
    their next poll (bench/README.md, scale-out). Each worker hears this on its
    own channel.
    """
    from connector.models import WorkerProcess

    channels = (
        WorkerProcess.objects.filter(stopping=False)
        .exclude(channel_name="")
        .values_list("channel_name", flat=True)
    )
    for channel in channels:
        send(channel, {"type": WAKE, "queue": queue})


def tell_worker_to_stop(*, worker: str, pk: int) -> None:
    """Tell the worker that holds an action to stop it now (it also sees it at its heartbeat)."""
    from connector.models import WorkerProcess

    channel = WorkerProcess.objects.filter(pk=worker).values_list("channel_name", flat=True).first()
    if channel:
        send(channel, {"type": STOP, "pk": pk})
