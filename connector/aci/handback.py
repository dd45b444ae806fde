"""Answers from the endpoint's threads back to the event loop, in batches (issue 17).

``loop.run_in_executor`` wakes the event loop once per call that ends: a
``call_soon_threadsafe``, so a write to the loop's self-pipe, a wake-up of the
loop's thread and a hand-over of the GIL each time. Under load that was a
third of a ``GetVersion``'s CPU in the server (bench/README.md, "Answers
handed back in batches").

``HandBack.run`` runs a call in the executor as ``run_in_executor`` does; what
it returns (or raises) joins a list kept per event loop, and only the first
answer of a batch wakes the loop. By the time the loop takes the list, the
answers that ended meanwhile are in it: one wake-up serves them all. A single
answer costs what it did.

An answer whose waiter has gone (the request was cancelled: its client left,
or the server stopped) or whose loop has closed is given to ``discard``, so
that the response's resources are still released.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, Generic, TypeVar

T = TypeVar("T")

Loop = asyncio.AbstractEventLoop


class HandBack(Generic[T]):
    """See the module docstring."""

    def __init__(self, executor: Executor, *, discard: Callable[[T], None]) -> None:
        self.executor = executor
        self.discard = discard
        self._lock = threading.Lock()
        #: Per event loop: the answers ended and not yet taken, with their waiters.
        self._ended: dict[Loop, list[tuple[asyncio.Future[T], T | None, BaseException | None]]]
        self._ended = {}

    async def run(self, call: Callable[..., T], *args: Any) -> T:
        """``call(*args)`` in one of the executor's threads; its result or its exception."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[T] = loop.create_future()
        self.executor.submit(self._call, loop, waiter, call, args)
        return await waiter

    def _call(
        self, loop: Loop, waiter: asyncio.Future[T], call: Callable[..., T], args: Any
    ) -> None:
        """In the executor's thread: run the call, and add its answer to the loop's list."""
        try:
            answer: tuple[asyncio.Future[T], T | None, BaseException | None]
            answer = (waiter, call(*args), None)
        except BaseException as error:  # handed to the waiter, as run_in_executor does
            answer = (waiter, None, error)
        with self._lock:
            ended = self._ended.setdefault(loop, [])
            ended.append(answer)
            first = len(ended) == 1
        if first:
            try:
                loop.call_soon_threadsafe(self._deliver, loop)
            except RuntimeError:  # the loop is closed: nobody waits any more
                self._deliver(loop, closed=True)

    def _deliver(self, loop: Loop, *, closed: bool = False) -> None:
        """In the loop (or for a closed one): each answer of the list to its waiter."""
        with self._lock:
            ended = self._ended.pop(loop, [])
        for waiter, result, error in ended:
            if closed or waiter.done():
                if error is None:
                    self.discard(result)  # type: ignore[arg-type]
            elif error is None:
                waiter.set_result(result)  # type: ignore[arg-type]
            else:
                waiter.set_exception(error)
