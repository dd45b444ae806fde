"""connector.aci.batches: requests that come while a batch is answered form the next one."""

from __future__ import annotations

import asyncio

import pytest

from connector.aci.batches import Batches


class Answerer:
    """``answer_all`` of a test: records each batch; holds it while ``hold`` is clear."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.hold = asyncio.Event()
        self.hold.set()
        self.started = asyncio.Event()
        self.fail: BaseException | None = None

    async def __call__(self, requests: list[str]) -> list[str]:
        self.batches.append(list(requests))
        self.started.set()
        await self.hold.wait()
        if self.fail is not None:
            error, self.fail = self.fail, None
            raise error
        return [f"answer to {request}" for request in requests]


def batches_of(
    answerer: Answerer, *, most: int = 32, overdue: float = 60, discarded: list[str] | None = None
) -> Batches[str, str]:
    return Batches(
        answerer,
        most=most,
        overdue=overdue,
        at_once=2,
        discard=(discarded if discarded is not None else []).append,
    )


async def test_a_lone_request_is_a_batch_of_one():
    answerer = Answerer()
    assert await batches_of(answerer).answer("a") == "answer to a"
    assert answerer.batches == [["a"]]


async def test_requests_started_together_are_one_batch():
    answerer = Answerer()
    batches = batches_of(answerer)
    answers = await asyncio.gather(*(batches.answer(name) for name in "abc"))
    assert answers == ["answer to a", "answer to b", "answer to c"]
    assert answerer.batches == [["a", "b", "c"]]


async def test_requests_that_come_while_a_batch_is_answered_wait_for_the_next():
    answerer = Answerer()
    answerer.hold.clear()
    batches = batches_of(answerer)
    first = asyncio.create_task(batches.answer("first"))
    await answerer.started.wait()
    later = [asyncio.create_task(batches.answer(name)) for name in ("b", "c", "d")]
    await asyncio.sleep(0.01)
    assert answerer.batches == [["first"]], "one batch at a time"
    answerer.hold.set()
    assert await first == "answer to first"
    assert await asyncio.gather(*later) == ["answer to b", "answer to c", "answer to d"]
    assert answerer.batches == [["first"], ["b", "c", "d"]]


async def test_a_batch_holds_at_most_most_requests():
    answerer = Answerer()
    batches = batches_of(answerer, most=2)
    answers = await asyncio.gather(*(batches.answer(name) for name in "abcde"))
    assert answers == [f"answer to {name}" for name in "abcde"]
    assert answerer.batches == [["a", "b"], ["c", "d"], ["e"]]


async def test_a_request_whose_client_went_away_before_its_batch_is_not_answered():
    answerer = Answerer()
    answerer.hold.clear()
    batches = batches_of(answerer)
    first = asyncio.create_task(batches.answer("first"))
    await answerer.started.wait()
    gone = asyncio.create_task(batches.answer("gone"))
    kept = asyncio.create_task(batches.answer("kept"))
    await asyncio.sleep(0)
    gone.cancel()
    answerer.hold.set()
    assert (await first, await kept) == ("answer to first", "answer to kept")
    assert gone.cancelled()
    assert answerer.batches == [["first"], ["kept"]]


async def test_the_answer_of_a_request_whose_client_went_away_during_its_batch_is_discarded():
    answerer = Answerer()
    answerer.hold.clear()
    discarded: list[str] = []
    batches = batches_of(answerer, discarded=discarded)
    gone = asyncio.create_task(batches.answer("gone"))
    kept = asyncio.create_task(batches.answer("kept"))
    await answerer.started.wait()
    gone.cancel()
    answerer.hold.set()
    assert await kept == "answer to kept"
    assert gone.cancelled()
    assert discarded == ["answer to gone"]


async def test_an_error_reaches_every_request_of_its_batch_and_the_next_batch_runs():
    answerer = Answerer()
    answerer.hold.clear()
    answerer.fail = RuntimeError("broken")
    batches = batches_of(answerer)
    failing = [asyncio.create_task(batches.answer(name)) for name in "ab"]
    await answerer.started.wait()
    later = asyncio.create_task(batches.answer("c"))
    await asyncio.sleep(0)
    answerer.hold.set()
    for task in failing:
        with pytest.raises(RuntimeError, match="broken"):
            await task
    assert await later == "answer to c"
    assert answerer.batches == [["a", "b"], ["c"]]


async def test_an_overdue_batch_lets_the_next_one_start_beside_it():
    answerer = Answerer()
    answerer.hold.clear()
    batches = batches_of(answerer, overdue=0.05)
    slow = asyncio.create_task(batches.answer("slow"))
    await answerer.started.wait()
    answerer.started.clear()
    later = asyncio.create_task(batches.answer("later"))
    await asyncio.sleep(0.01)
    assert answerer.batches == [["slow"]], "not yet overdue: the request waits"
    await asyncio.wait_for(answerer.started.wait(), 5)
    assert answerer.batches == [["slow"], ["later"]]
    # At most ``at_once`` (2) batches at a time: a third waits for one of them.
    third = asyncio.create_task(batches.answer("third"))
    await asyncio.sleep(0.2)
    assert answerer.batches == [["slow"], ["later"]]
    answerer.hold.set()
    assert await asyncio.gather(slow, later, third) == [
        "answer to slow",
        "answer to later",
        "answer to third",
    ]
    assert answerer.batches == [["slow"], ["later"], ["third"]]
