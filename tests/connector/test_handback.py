"""The endpoint's answers, handed back to the event loop in batches (connector.aci.handback)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from connector.aci.handback import HandBack


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(max_workers=4)
    yield pool
    pool.shutdown(wait=True)


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


async def test_each_call_gets_its_own_answer(executor):
    hand_back: HandBack[int] = HandBack(executor, discard=lambda _: None)
    answers = await asyncio.gather(*(hand_back.run(lambda n=n: n * n) for n in range(200)))
    assert answers == [n * n for n in range(200)]


async def test_answers_that_end_together_wake_the_loop_once(executor):
    hand_back: HandBack[int] = HandBack(executor, discard=lambda _: None)
    loop = asyncio.get_running_loop()
    wakes = []
    original = loop.call_soon_threadsafe

    def counted(callback, *args, **kwargs):
        wakes.append(callback)
        return original(callback, *args, **kwargs)

    loop.call_soon_threadsafe = counted  # type: ignore[method-assign]
    try:
        calls = [asyncio.ensure_future(hand_back.run(lambda n=n: n)) for n in range(8)]
        await asyncio.sleep(0)  # the calls are submitted
        # The loop is busy (blocked here) while every call ends.
        wait_until(lambda: len(hand_back._ended.get(loop, [])) == 8)
        assert await asyncio.gather(*calls) == list(range(8))
    finally:
        del loop.call_soon_threadsafe
    assert len(wakes) == 1


async def test_an_exception_reaches_the_caller(executor):
    hand_back: HandBack[int] = HandBack(executor, discard=lambda _: None)

    def fail() -> int:
        raise LookupError("no such row")

    with pytest.raises(LookupError, match="no such row"):
        await hand_back.run(fail)
    # The next answer is not held up by the failure.
    assert await hand_back.run(lambda: 7) == 7


async def test_the_answer_of_a_cancelled_call_is_discarded(executor):
    discarded = []
    hand_back: HandBack[str] = HandBack(executor, discard=discarded.append)
    release = threading.Event()

    def slow() -> str:
        release.wait(10)
        return "answer"

    call = asyncio.ensure_future(hand_back.run(slow))
    await asyncio.sleep(0.01)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    release.set()
    for _ in range(1000):
        if discarded:
            break
        await asyncio.sleep(0.005)
    assert discarded == ["answer"]


def test_an_answer_for_a_closed_loop_is_discarded_and_later_loops_are_served(executor):
    discarded = []
    hand_back: HandBack[str] = HandBack(executor, discard=discarded.append)
    release = threading.Event()
    submitted = threading.Event()

    def slow() -> str:
        submitted.set()
        release.wait(10)
        return "late"

    async def start() -> None:
        asyncio.ensure_future(hand_back.run(slow))
        await asyncio.sleep(0)

    loop = asyncio.new_event_loop()
    loop.run_until_complete(start())
    submitted.wait(10)
    loop.close()
    release.set()
    wait_until(lambda: discarded == ["late"])
    assert hand_back._ended == {}

    async def again() -> str:
        return await hand_back.run(lambda: "served")

    assert asyncio.run(again()) == "served"
