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
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from asgiref.sync import async_to_sync
from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer, get_channel_layer

logger = logging.getLogger(__name__)

WAKE = "fetch.wake"
STOP = "fetch.stop"

_home_loop: asyncio.AbstractEventLoop | None = None


def set_home_loop(loop: asyncio.AbstractEventLoop | None) -> None:
    global _home_loop
    _home_loop = loop


def send(channel: str, message: dict[str, Any]) -> None:
    """Send to one channel; never raises (a lost hint is covered by polling)."""
    layer = get_channel_layer()
    if layer is None:
        return
    _deliver(layer, lambda: layer.send(channel, message), f"{message} to {channel}", fallback=True)


def send_group(group: str, message: dict[str, Any]) -> None:
    """Send to every channel of a group; never raises.

    With the in-memory layer and no server loop in this process, nobody can be
    listening, and the message is dropped instead of paying for a loop of its own.
    """
    layer = get_channel_layer()
    if layer is None:
        return
    if isinstance(layer, InMemoryChannelLayer) and not layer.groups.get(group):
        # Nobody in this process listens: spare the event loop a message per change.
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
        elif fallback:

            async def send_here() -> None:
                await sending()

            async_to_sync(send_here)()
    except ChannelFull:
        logger.debug("Channel full for %s; its receiver is awake anyway", what)
    except Exception:
        logger.warning("Could not send %s; polling covers it", what, exc_info=True)


def _log_failure(future: Any) -> None:
    if (
        not future.cancelled()
        and (error := future.exception())
        and not isinstance(error, ChannelFull)
    ):
        logger.warning("Could not send a wake-up: %s", error)


def wake_queue(queue: str) -> None:
    """Tell one worker of the queue that there is work."""
    send(queue, {"type": WAKE, "queue": queue})


def tell_worker_to_stop(*, worker: str, pk: int) -> None:
    """Tell the worker that holds an action to stop it now (it also sees it at its heartbeat)."""
    from connector.models import WorkerProcess

    channel = WorkerProcess.objects.filter(pk=worker).values_list("channel_name", flat=True).first()
    if channel:
        send(channel, {"type": STOP, "pk": pk})
