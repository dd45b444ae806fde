"""The endpoint's answers, handed back to the event loop in batches or waited for in place
(connector.aci.handback)."""

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
    hand_back: HandBack[int] = HandBack(executor, threads=4, discard=lambda _: None)
    answers = await asyncio.gather(*(hand_back.run(lambda n=n: n * n) for n in range(200)))
    assert answers == [n * n for n in range(200)]


async def test_answers_that_end_together_wake_the_loop_once(executor, wakes):
    hand_back: HandBack[int] = HandBack(executor, threads=4, discard=lambda _: None)
    loop = asyncio.get_running_loop()
    calls = [asyncio.ensure_future(hand_back.run(lambda n=n: n)) for n in range(8)]
    await asyncio.sleep(0)  # the calls are submitted
    # The loop is busy (blocked here) while every call ends.
    wait_until(lambda: len(hand_back._ended.get(loop, [])) == 8)
    assert await asyncio.gather(*calls) == list(range(8))
    assert len(wakes) == 1


async def test_an_exception_reaches_the_caller(executor):
    hand_back: HandBack[int] = HandBack(executor, threads=4, discard=lambda _: None)

    def fail() -> int:
        raise LookupError("no such row")

    with pytest.raises(LookupError, match="no such row"):
        await hand_back.run(fail)
    # The next answer is not held up by the failure.
    assert await hand_back.run(lambda: 7) == 7


async def test_the_answer_of_a_cancelled_call_is_discarded(executor):
    discarded = []
    hand_back: HandBack[str] = HandBack(executor, threads=4, discard=discarded.append)
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
    hand_back: HandBack[str] = HandBack(executor, threads=4, discard=discarded.append)
    release = threading.Event()
    submitted = threading.Event()

    def slow() -> str:
        submitted.set()
        release.wait(10)
        return "late"

    pending = []

    async def start() -> None:
        pending.append(asyncio.ensure_future(hand_back.run(slow)))
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


# Waiting in place (SQLite): the loop blocks for a quick answer, never for long.


async def test_an_answer_waited_for_in_place_comes_without_waking_the_loop(executor, wakes):
    hand_back: HandBack[str] = HandBack(executor, threads=4, discard=lambda _: None)
    caller = threading.get_ident()
    ran_in = []

    def call() -> str:
        ran_in.append(threading.get_ident())
        return "answer"

    assert await hand_back.run(call, wait_in_place=5.0) == "answer"
    assert ran_in and ran_in[0] != caller, "it still runs in the executor's thread"
    assert wakes == []
    assert hand_back._busy == 0


async def test_an_exception_waited_for_in_place_reaches_the_caller(executor):
    hand_back: HandBack[str] = HandBack(executor, threads=4, discard=lambda _: None)

    def fail() -> str:
        raise LookupError("no such row")

    with pytest.raises(LookupError, match="no such row"):
        await hand_back.run(fail, wait_in_place=5.0)


async def test_the_loop_goes_on_when_an_answer_takes_longer_than_the_wait(executor):
    hand_back: HandBack[str] = HandBack(executor, threads=4, discard=lambda _: None)
    release = threading.Event()

    def slow() -> str:
        release.wait(10)
        return "late"

    # Only the loop, once it no longer waits in place, lets the call end.
    asyncio.get_running_loop().call_soon(release.set)
    started = time.monotonic()
    assert await hand_back.run(slow, wait_in_place=0.05) == "late"
    assert time.monotonic() - started < 5
    assert hand_back._ended == {}


async def test_the_loop_does_not_wait_in_place_for_a_call_that_waits_for_a_thread():
    pool = ThreadPoolExecutor(max_workers=1)
    hand_back: HandBack[str] = HandBack(pool, threads=1, discard=lambda _: None)
    release = threading.Event()

    def hold() -> str:
        release.wait(10)
        return "held"

    try:
        holding = asyncio.ensure_future(hand_back.run(hold))
        await asyncio.sleep(0.01)  # the only thread is taken
        # Were the loop to wait in place for the next call, it could not set the
        # event the thread waits for until the 10 s of its wait were over.
        asyncio.get_running_loop().call_soon(release.set)
        started = time.monotonic()
        assert await hand_back.run(lambda: "next", wait_in_place=10.0) == "next"
        assert time.monotonic() - started < 5
        assert await holding == "held"
    finally:
        release.set()
        pool.shutdown(wait=True)


def test_an_answer_offered_after_the_loop_stopped_waiting_goes_the_usual_way():
    from connector.aci.handback import _InPlace

    given_up = _InPlace()
    assert given_up.wait(0.001) is False
    assert given_up.offer(("late", None)) is False

    answered = _InPlace()
    assert answered.offer(("answer", None)) is True
    assert answered.wait(0.001) is True
    assert answered.answer == ("answer", None)
