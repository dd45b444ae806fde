"""One group message per committed change of actions, for the dashboard's sockets.

``connector.signals.action_changed`` is sent from ``transaction.on_commit`` in
whatever thread committed: a request's, a worker thread's. The in-memory
channel layer keeps its queues in the event loop of the server, so a send from
another thread must be run in that loop or the waiting consumers are not woken;
the dashboard consumer records that loop when a socket connects. Like the
worker's wake-ups, a broadcast is only a hint: a lost one costs a stale row
until the page's next re-read, never a wrong state.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer

logger = logging.getLogger(__name__)

GROUP = "dashboard"
MESSAGE_TYPE = "action.changed"

_server_loop: asyncio.AbstractEventLoop | None = None


def remember_server_loop(loop: asyncio.AbstractEventLoop) -> None:
    global _server_loop
    _server_loop = loop


def action_changed(*, pks: Iterable[int], **kwargs: Any) -> None:
    """Receiver of ``action_changed``: tell every connected dashboard."""
    message = {"type": MESSAGE_TYPE, "pks": [int(pk) for pk in pks]}
    if not message["pks"]:
        return
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        if isinstance(layer, InMemoryChannelLayer):
            loop = _server_loop
            if loop is None or not loop.is_running():
                # No dashboard socket was ever opened in this process: nobody listens.
                return
            future = asyncio.run_coroutine_threadsafe(layer.group_send(GROUP, message), loop)
            future.add_done_callback(_log_failure)
        else:
            async_to_sync(layer.group_send)(GROUP, message)
    except Exception:
        logger.warning("Could not tell the dashboards about %s", message["pks"], exc_info=True)


def _log_failure(future: Any) -> None:
    if not future.cancelled() and (error := future.exception()):
        logger.warning("Could not tell the dashboards about a change: %s", error)
