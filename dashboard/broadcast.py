"""Group messages of committed changes of actions, for the dashboard's sockets.

One message per change; through a shared (Redis) layer, the changes of one
process within ``wakeups._Sender.MERGE_SECONDS`` go in one message (a row is
re-rendered from the database anyway, so nothing is lost by merging).

``connector.signals.action_changed`` is sent from ``transaction.on_commit`` in
whatever thread committed: a request's, a worker thread's. The in-memory
channel layer keeps its queues in the event loop of the server, so a send from
another thread must be run in that loop or the waiting consumers are not woken;
the dashboard consumer registers that loop (``connector.wakeups``) when a socket
connects. Like the worker's wake-ups, a broadcast is only a hint: a lost one
costs a stale row until the page's next re-read, never a wrong state.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction

from connector import wakeups

GROUP = "dashboard"
MESSAGE_TYPE = "action.changed"
QUEUE_MESSAGE_TYPE = "queue.changed"


def action_changed(*, pks: Iterable[int], **kwargs: Any) -> None:
    """Receiver of ``action_changed``: tell every connected dashboard."""
    message = {"type": MESSAGE_TYPE, "pks": [int(pk) for pk in pks]}
    if message["pks"]:
        # Through Redis, the changes of the next moments go in one message.
        wakeups.send_group(GROUP, message, merge="pks")


def queue_state_saved(*, instance: Any, **kwargs: Any) -> None:
    """Receiver of QueueState's ``post_save``: a pause or resume, from the dashboard or ACI."""
    name = str(instance.name)
    transaction.on_commit(lambda: queue_changed(queues=[name]))


def queue_changed(*, queues: Iterable[str]) -> None:
    """A queue was paused or resumed: dashboards showing its card re-render it."""
    message = {"type": QUEUE_MESSAGE_TYPE, "queues": [str(name) for name in queues]}
    if message["queues"]:
        wakeups.send_group(GROUP, message)
