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
larger the batches. A batch that takes long (``overdue``) lets the next one
start beside it, so a request waiting for the write lock does not hold
every other. Each request gets its own answer; the answer of a
request whose client went away meanwhile is discarded.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")
A = TypeVar("A")

Loop = asyncio.AbstractEventLoop


class _Line:
    """One event loop's requests: those waiting for a batch, and the batches in flight."""

    def __init__(self) -> None:
        self.waiting: list[tuple[Any, asyncio.Future[Any]]] = []
        #: Batches being answered, and how many of them are overdue.
        self.running = 0
        self.overdue = 0
        #: A batch is about to start (at the loop's next turn).
        self.starting = False


class Batches(Generic[T, A]):
    """See the module docstring. ``answer_all`` answers a list of requests, in order.

    A batch still being answered after ``overdue`` seconds (a wait for the write
    lock, a large listing) no longer holds the requests that come after it: the
    next batch starts beside it, up to ``at_once`` batches at a time.
    """

    def __init__(
        self,
        answer_all: Callable[[list[T]], Awaitable[list[A]]],
        *,
        most: int,
        overdue: float,
        at_once: int,
        discard: Callable[[A], None],
    ) -> None:
        self._answer_all = answer_all
        self.most = most
        self.overdue = overdue
        self.at_once = at_once
        self._discard = discard
        # Per event loop: tests run several.
        self._lines: weakref.WeakKeyDictionary[Loop, _Line] = weakref.WeakKeyDictionary()

    async def answer(self, request: T) -> A:
        """The answer to ``request``, answered with the others of its batch."""
        loop = asyncio.get_running_loop()
        line = self._lines.setdefault(loop, _Line())
        waiter: asyncio.Future[A] = loop.create_future()
        line.waiting.append((request, waiter))
        self._start_soon(loop, line)
        return await waiter

    def _start_soon(self, loop: Loop, line: _Line) -> None:
        """Start the next batch at the loop's next turn (so that the requests this turn
        has started join it), unless a batch in flight will start it when it ends."""
        if line.starting or line.running > line.overdue or line.running >= self.at_once:
            return
        line.starting = True
        loop.call_soon(self._start, loop, line)

    def _start(self, loop: Loop, line: _Line) -> None:
        line.starting = False
        # A request whose client went away before its batch began is not answered.
        waiting = [(request, waiter) for request, waiter in line.waiting if not waiter.done()]
        batch, line.waiting = waiting[: self.most], waiting[self.most :]
        if batch:
            line.running += 1
            loop.create_task(self._run(loop, line, batch))

    async def _run(self, loop: Loop, line: _Line, batch: list[tuple[T, asyncio.Future[A]]]) -> None:
        late = False

        def overdue() -> None:
            nonlocal late
            late = True
            line.overdue += 1
            if line.waiting:
                self._start_soon(loop, line)

        timer = loop.call_later(self.overdue, overdue)
        try:
            answers = await self._answer_all([request for request, _ in batch])
        except Exception as error:
            for _, waiter in batch:
                if not waiter.done():
                    waiter.set_exception(error)
        except BaseException:
            # Cancelled (the loop shuts down): so is every request that waits.
            for _, waiter in [*batch, *line.waiting]:
                waiter.cancel()
            line.waiting = []
            raise
        else:
            for (_, waiter), answer in zip(batch, answers, strict=True):
                if waiter.done():
                    self._discard(answer)
                else:
                    waiter.set_result(answer)
        finally:
            timer.cancel()
            line.running -= 1
            line.overdue -= late
        if line.waiting:
            self._start_soon(loop, line)
