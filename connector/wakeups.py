"""Messages to workers over the channel layer: wake-ups and stops.

A message is only a hint: channel layers deliver at most once and drop when
full, and workers poll the database anyway, so a failed send is logged and
forgotten. Call these after the commit (``transaction.on_commit``).

The in-memory channel layer keeps its queues in one event loop (the server's);
a send from another thread must be run in that loop, or the waiting receiver
is not woken. The worker server registers that loop here when it starts.
"""

from __future__ import annotations

import asyncio
import logging
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
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        loop = _home_loop
        if isinstance(layer, InMemoryChannelLayer) and loop is not None and loop.is_running():
            future = asyncio.run_coroutine_threadsafe(layer.send(channel, message), loop)
            future.add_done_callback(_log_failure)
        else:
            async_to_sync(layer.send)(channel, message)
    except ChannelFull:
        logger.debug("Channel %s is full; its worker is awake anyway", channel)
    except Exception:
        logger.warning(
            "Could not send %s to %s; the worker's poll covers it", message, channel, exc_info=True
        )


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
