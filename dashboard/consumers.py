"""The live dashboard's websocket: changed actions' rows, as htmx out-of-band swaps.

The rows are the same partial the list view renders
(``dashboard/actions.html#action-row``), so a row looks the same whether it
came over HTTP or over the socket. The socket only sends; the page's buttons
are ordinary (htmx) POSTs with their own permission checks.

The overview page connects with ``?overview=1`` and gets, instead of rows, the
cards of the queues whose actions changed (``dashboard/home.html#queue-card``).
A card costs a few grouped queries, so it is sent at most once per
``OVERVIEW_INTERVAL_SECONDS`` per socket: the first change is sent at once, the
changes during the following interval together at its end. A storm of a
thousand changes a second costs one card a second. The cards' figures are read
once for all the sockets of a process where that is safe (``shared_overview``):
with a million actions, counting them by status is most of a card's cost.

A socket belongs to the session it was opened with: when that session signs
out, the socket is closed at once (``dashboard.signout``) and sends nothing
more. A user who lost the view permission or was made inactive, or whose
session ended otherwise (expired, flushed elsewhere, the password changed), is
noticed at the next change after ``PERMISSION_RECHECK_SECONDS``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from importlib import import_module
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.contrib import auth
from django.http import HttpRequest
from django.template.loader import render_to_string

from connector import queue, wakeups
from dashboard import broadcast, queries, signout

logger = logging.getLogger(__name__)

VIEW_PERMISSION = "connector.view_action"
OPERATE_PERMISSION = "connector.change_action"
#: A user's permissions are read again after this long, so a revoked one ends the socket.
PERMISSION_RECHECK_SECONDS = 30.0
#: The overview's cards are sent at most this often per socket (see the docstring).
OVERVIEW_INTERVAL_SECONDS = 1.0


_shared_cards: dict[frozenset[str], tuple[float, list[queries.QueueCard]]] = {}


def shared_overview(queues: set[str], *, changed_at: float) -> list[queries.QueueCard]:
    """The cards of these queues, read at or after ``changed_at`` (a ``time.monotonic()``).

    A read another socket made after this socket heard of its latest change
    already shows that change, so it serves this socket too.
    """
    key = frozenset(queues)
    hit = _shared_cards.get(key)
    if hit is not None and hit[0] >= changed_at:
        return hit[1]
    read_at = time.monotonic()
    cards = queries.queue_overview(names=queues)
    _shared_cards.clear()  # one entry: there are few queues, and older reads are stale
    _shared_cards[key] = (read_at, cards)
    return cards


class DashboardConsumer(AsyncWebsocketConsumer):
    user_pk: Any = None
    session_key: str | None = None
    may_operate = False
    checked_at = 0.0
    shows_overview = False
    #: Set once the socket is being closed: nothing more is sent on it.
    ended = False

    async def connect(self) -> None:
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        self.shows_overview = query.get("overview") == ["1"]
        self.dirty_queues: set[str] = set()
        self.overview_task: asyncio.Task[None] | None = None
        self.overview_sent_at = 0.0
        self.changed_at = 0.0
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close()
            return
        self.user_pk = user.pk
        session = self.scope.get("session")
        self.session_key = session.session_key if session is not None else None
        if not await self._allowed():
            logger.warning("Dashboard socket refused to %s: no view permission", user)
            await self.close()
            return
        wakeups.set_home_loop(asyncio.get_running_loop())
        if self.session_key:
            await self.channel_layer.group_add(
                signout.session_group(self.session_key), self.channel_name
            )
        await self.channel_layer.group_add(broadcast.GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        self.ended = True
        if task := getattr(self, "overview_task", None):
            task.cancel()
        await self.channel_layer.group_discard(broadcast.GROUP, self.channel_name)
        if self.session_key:
            await self.channel_layer.group_discard(
                signout.session_group(self.session_key), self.channel_name
            )

    async def session_ended(self, event: dict[str, Any]) -> None:
        """The session signed out (``dashboard.signout``): close now, send nothing more."""
        await self._end()

    async def _end(self) -> None:
        if self.ended:
            return
        self.ended = True
        if task := getattr(self, "overview_task", None):
            task.cancel()
        await self.close()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        # The page sends no commands over the socket: its buttons are POSTs.
        return

    async def action_changed(self, event: dict[str, Any]) -> None:
        if not await self._still_allowed():
            return
        if self.shows_overview:
            queues: set[str] = set()
            # In a storm every queue is soon due for its card: no query per change then.
            if not self.dirty_queues.issuperset(queue.queue_names()):
                pks = [int(pk) for pk in event.get("pks", [])]
                queues = await database_sync_to_async(queries.queues_of)(pks)
            self._overview_changed(queues)
            return
        try:
            html = await database_sync_to_async(self._render_rows)(list(event.get("pks", [])))
        except Exception:
            # A row that cannot be rendered must not end the socket for every other row.
            logger.exception("Could not render dashboard rows %s", event.get("pks"))
            return
        if html and not self.ended:
            await self.send(text_data=html)

    async def queue_changed(self, event: dict[str, Any]) -> None:
        if self.shows_overview and await self._still_allowed():
            self._overview_changed({str(name) for name in event.get("queues", [])})

    def _overview_changed(self, queues: set[str]) -> None:
        """Note the queues; send their cards now, or at the end of the interval."""
        self.dirty_queues |= queues
        self.changed_at = time.monotonic()
        if not self.dirty_queues or self.overview_task is not None:
            return
        delay = self.overview_sent_at + OVERVIEW_INTERVAL_SECONDS - time.monotonic()
        self.overview_task = asyncio.create_task(self._send_overview(max(0.0, delay)))

    async def _send_overview(self, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        if self.ended:
            return
        queues, self.dirty_queues = self.dirty_queues, set()
        # Changes from here on start the next round.
        self.overview_task = None
        self.overview_sent_at = time.monotonic()
        try:
            html = await database_sync_to_async(self._render_cards)(queues, self.changed_at)
        except Exception:
            logger.exception("Could not render the overview cards of %s", sorted(queues))
            return
        if html and not self.ended:
            await self.send(text_data=html)

    async def _still_allowed(self) -> bool:
        """False (and the socket closed) once the user lost the view permission."""
        if self.ended:
            return False
        stale = time.monotonic() - self.checked_at > PERMISSION_RECHECK_SECONDS
        if stale and not await self._allowed():
            await self._end()
            return False
        return not self.ended

    async def _allowed(self) -> bool:
        allowed, may_operate = await database_sync_to_async(self._permissions)()
        self.may_operate = may_operate
        self.checked_at = time.monotonic()
        return allowed

    def _permissions(self) -> tuple[bool, bool]:
        # The session read again, as a request would read it: signed out, expired,
        # or no longer valid since the password changed (Django's session hash), it
        # no longer names the user, nor does it for a user made inactive.
        request = HttpRequest()
        request.session = import_module(settings.SESSION_ENGINE).SessionStore(self.session_key)
        # A fresh user each time: the permission cache lives on the instance.
        user = auth.get_user(request)
        if not user.is_authenticated or str(user.pk) != str(self.user_pk):
            return False, False
        return user.has_perm(VIEW_PERMISSION), user.has_perm(OPERATE_PERMISSION)

    def _render_rows(self, pks: list[int]) -> str:
        return "".join(
            render_to_string(
                "dashboard/actions.html#action-row",
                {"action": action, "can_operate": self.may_operate, "oob": True},
            )
            for action in queries.actions_for_rows(pks)
        )

    def _render_cards(self, queues: set[str], changed_at: float) -> str:
        return "".join(
            render_to_string(
                "dashboard/home.html#queue-card",
                {"q": card, "can_operate": self.may_operate, "oob": True},
            )
            for card in shared_overview(queues, changed_at=changed_at)
        )
