"""Requests that come while earlier ones are answered are answered together (SQLite).

On SQLite the endpoint's answers are CPU in this process, and a submission's
commit is most of its cost: SQLite writes every page a transaction changed
(the action's row and a dozen index pages, the audit entry's, the task rows')
to the write-ahead log and syncs it. Answered one by one, 50 clients' Fetches
each paid that; answered together, in one thread and one transaction
(``EndpointHandler.respond_together``, ``connector.group_commit.SharedTransaction``),
they share the pages and the sync (bench/README.md, "Requests answered together").

``Batches.answer`` queues a request and starts a batch if none is being
answered on this event loop; the requests that arrive while a batch is
answered wait for the next one, at most ``most`` to a batch. So a lone
request is answered at once, as before, and the busier the endpoint, the
larger the batches. Each request gets its own answer; the answer of a
request whose client went away meanwhile is discarded.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
A = TypeVar("A")

Loop = asyncio.AbstractEventLoop


class Batches(Generic[T, A]):
    """See the module docstring. ``answer_all`` answers a list of requests, in order."""

    def __init__(
        self,
        answer_all: Callable[[list[T]], Awaitable[list[A]]],
        *,
        most: int,
        discard: Callable[[A], None],
    ) -> None:
        self._answer_all = answer_all
        self.most = most
        self._discard = discard
        # Per event loop (tests run several): the requests waiting for the next batch.
        self._waiting: weakref.WeakKeyDictionary[Loop, list[tuple[T, asyncio.Future[A]]]]
        self._waiting = weakref.WeakKeyDictionary()
        #: The loops on which a batch is being answered.
        self._busy: weakref.WeakSet[Loop] = weakref.WeakSet()

    async def answer(self, request: T) -> A:
        """The answer to ``request``, answered with the others of its batch."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[A] = loop.create_future()
        self._waiting.setdefault(loop, []).append((request, waiter))
        if loop not in self._busy:
            self._busy.add(loop)
            # After the other requests this turn of the loop has started: they join.
            loop.call_soon(self._next, loop)
        return await waiter

    def _next(self, loop: Loop) -> None:
        """Start answering the requests that wait, if any; else the loop is idle."""
        # A request whose client went away before its batch began is not answered.
        waiting = [
            (request, waiter)
            for request, waiter in self._waiting.get(loop, [])
            if not waiter.done()
        ]
        batch, self._waiting[loop] = waiting[: self.most], waiting[self.most :]
        if batch:
            loop.create_task(self._run(loop, batch))
        else:
            self._busy.discard(loop)

    async def _run(self, loop: Loop, batch: list[tuple[T, asyncio.Future[A]]]) -> None:
        try:
            answers = await self._answer_all([request for request, _ in batch])
        except Exception as error:
            for _, waiter in batch:
                if not waiter.done():
                    waiter.set_exception(error)
        except BaseException:
            # Cancelled (the loop shuts down): so is every request that waits.
            for _, waiter in [*batch, *self._waiting.pop(loop, [])]:
                waiter.cancel()
            self._busy.discard(loop)
            raise
        else:
            for (_, waiter), answer in zip(batch, answers, strict=True):
                if waiter.done():
                    self._discard(answer)
                else:
                    waiter.set_result(answer)
        self._next(loop)
