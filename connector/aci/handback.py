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

``run(..., wait_in_place=seconds)`` makes the loop wait for the answer where
it is, blocked, for up to ``seconds``, and take it straight from the thread.
That pays where answering is CPU of this process (SQLite): while the loop
ran Python, every database call of an endpoint thread (each lets go of the
GIL and must take it back) made the two threads hand the GIL to each other,
and a GetStatus cost the server twice the CPU it costs alone (bench/README.md,
"The loop waits in place"). A call still running
after ``seconds``, or one that would have to wait for a busy thread, is
handed back as any other, so the loop is never held longer than that.
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

    def __init__(self, executor: Executor, *, threads: int, discard: Callable[[T], None]) -> None:
        self.executor = executor
        #: The executor's threads: a call waited for in place must find one free.
        self.threads = threads
        self.discard = discard
        self._lock = threading.Lock()
        #: Calls submitted and not yet ended.
        self._busy = 0
        #: Per event loop: the answers ended and not yet taken, with their waiters.
        self._ended: dict[Loop, list[tuple[asyncio.Future[T], T | None, BaseException | None]]]
        self._ended = {}

    async def run(self, call: Callable[..., T], *args: Any, wait_in_place: float = 0.0) -> T:
        """``call(*args)`` in one of the executor's threads; its result or its exception.

        ``wait_in_place``: see the module docstring.
        """
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[T] = loop.create_future()
        with self._lock:
            free = self._busy < self.threads
            self._busy += 1
        in_place = _InPlace() if wait_in_place > 0 and free else None
        self.executor.submit(self._call, loop, waiter, call, args, in_place)
        if in_place is not None and in_place.wait(wait_in_place):
            result, error = in_place.answer
            if error is not None:
                raise error
            return result  # type: ignore[no-any-return]
        return await waiter

    def _call(
        self,
        loop: Loop,
        waiter: asyncio.Future[T],
        call: Callable[..., T],
        args: Any,
        in_place: _InPlace | None,
    ) -> None:
        """In the executor's thread: run the call; its answer to the loop if it waits
        in place, else to the loop's list."""
        try:
            answer: tuple[asyncio.Future[T], T | None, BaseException | None]
            answer = (waiter, call(*args), None)
        except BaseException as error:  # handed to the waiter, as run_in_executor does
            answer = (waiter, None, error)
        with self._lock:
            self._busy -= 1
        if in_place is not None and in_place.offer(answer[1:]):
            return
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


class _InPlace:
    """One answer, for an event loop that waits for it in place, until it stops waiting."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._waiting = True
        self.answer: tuple[Any, BaseException | None] = (None, None)

    def offer(self, answer: tuple[Any, BaseException | None]) -> bool:
        """In the thread: give the answer, if the loop still waits; False if it gave up."""
        with self._lock:
            if not self._waiting:
                return False
            self.answer = answer
            self._ready.set()
            return True

    def wait(self, seconds: float) -> bool:
        """In the loop: wait up to ``seconds``; True if the answer came, else give up."""
        if self._ready.wait(seconds):
            return True
        with self._lock:
            self._waiting = False
            return self._ready.is_set()
