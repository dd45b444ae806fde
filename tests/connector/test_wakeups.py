"""Sends into the server's event loop: wake-ups for workers, news for dashboards."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from channels.layers import get_channel_layer

from connector import wakeups


@pytest.fixture
def server_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """An event loop running in its own thread, registered as the server's."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    wakeups.set_home_loop(loop)
    yield loop
    wakeups.set_home_loop(None)
    loop.call_soon_threadsafe(loop.stop)
    thread.join()
    loop.close()


def run(loop: asyncio.AbstractEventLoop, coroutine):
    return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout=5)


def test_a_group_message_reaches_its_members_through_the_server_loop(server_loop):
    layer = get_channel_layer()
    channel = run(server_loop, layer.new_channel())
    run(server_loop, layer.group_add("news", channel))
    try:
        wakeups.send_group("news", {"type": "action.changed", "pks": [1]})
        message = run(server_loop, asyncio.wait_for(layer.receive(channel), 5))
        assert message == {"type": "action.changed", "pks": [1]}
    finally:
        run(server_loop, layer.group_discard("news", channel))


def test_a_group_without_members_costs_the_loop_nothing(server_loop, monkeypatch):
    scheduled = []
    monkeypatch.setattr(asyncio, "run_coroutine_threadsafe", lambda *args: scheduled.append(args))
    wakeups.send_group("nobody-listens", {"type": "action.changed", "pks": [1]})
    assert scheduled == []


def test_a_wake_up_reaches_the_worker_channel_through_the_server_loop(server_loop):
    layer = get_channel_layer()
    wakeups.wake_queue("fetch")
    message = run(server_loop, asyncio.wait_for(layer.receive("fetch"), 5))
    assert message == {"type": wakeups.WAKE, "queue": "fetch"}


class FakeEngine:
    def __init__(self, *queues: str) -> None:
        self.queues = dict.fromkeys(queues, 1)
        self.woken = 0

    def wake(self) -> None:
        self.woken += 1


@pytest.fixture
def local_engine() -> Iterator[FakeEngine]:
    engine = FakeEngine("fetch")
    wakeups.set_local_engine(engine)
    yield engine
    wakeups.set_local_engine(None)


def test_a_wake_up_goes_straight_to_the_engine_of_this_process(
    server_loop, local_engine, monkeypatch
):
    scheduled = []
    monkeypatch.setattr(asyncio, "run_coroutine_threadsafe", lambda *args: scheduled.append(args))
    wakeups.wake_queue("fetch")
    wakeups.wake_queue("fetch")
    assert local_engine.woken == 2
    assert scheduled == []


def test_a_wake_up_for_a_queue_the_local_engine_does_not_serve_goes_through_the_layer(
    server_loop, local_engine
):
    layer = get_channel_layer()
    wakeups.wake_queue("elsewhere")
    message = run(server_loop, asyncio.wait_for(layer.receive("elsewhere"), 5))
    assert message == {"type": wakeups.WAKE, "queue": "elsewhere"}
    assert local_engine.woken == 0


class RecordingLayer:
    """A stand-in for a shared (Redis) layer: records the group messages sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict]] = []

    async def group_send(self, group: str, message: dict) -> None:
        self.sent.append((group, message))


def stop_loop(sender: wakeups._Sender) -> None:
    loop, thread = sender._loop, sender._thread
    if loop is None or thread is None:
        return
    if thread.is_alive():
        # Sends handed over just before are tasks once the loop has run this.
        asyncio.run_coroutine_threadsafe(asyncio.sleep(0), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
    for task in asyncio.all_tasks(loop):
        task._log_destroy_pending = False  # type: ignore[attr-defined]  # left on purpose
        task.get_coro().close()  # not a "never awaited" warning when collected
    loop.close()


@pytest.fixture
def make_sender() -> Iterator[Callable[[], wakeups._Sender]]:
    """Senders of their own (not the process's), their loops closed at the end."""
    made: list[wakeups._Sender] = []

    def make() -> wakeups._Sender:
        made.append(wakeups._Sender())
        return made[-1]

    yield make
    for sender in made:
        stop_loop(sender)


def sent_soon(layer: RecordingLayer, count: int) -> list[tuple[str, dict]]:
    deadline = time.monotonic() + 5
    while len(layer.sent) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(2 * wakeups._Sender.MERGE_SECONDS)  # and nothing more comes
    return layer.sent


def test_like_group_messages_that_come_together_go_through_a_shared_layer_as_one(make_sender):
    sender, layer = make_sender(), RecordingLayer()
    first = {"type": "action.changed", "pks": [1]}
    sender.send_merged(layer, "news", first, "pks")
    sender.send_merged(layer, "news", {"type": "action.changed", "pks": [2, 1]}, "pks")
    sender.send_merged(layer, "news", {"type": "queue.changed", "pks": [3]}, "pks")
    sender.send_merged(layer, "other", {"type": "action.changed", "pks": [4]}, "pks")
    assert sorted(sent_soon(layer, 3), key=str) == [
        ("news", {"type": "action.changed", "pks": [1, 2]}),
        ("news", {"type": "queue.changed", "pks": [3]}),
        ("other", {"type": "action.changed", "pks": [4]}),
    ]
    assert first == {"type": "action.changed", "pks": [1]}  # the caller's message is its own
    # Once sent, the next message waits for its own send.
    sender.send_merged(layer, "news", {"type": "action.changed", "pks": [5]}, "pks")
    assert sent_soon(layer, 4)[3:] == [("news", {"type": "action.changed", "pks": [5]})]


def test_a_merged_message_is_sent_within_the_merge_interval(make_sender):
    sender, layer = make_sender(), RecordingLayer()
    started = time.monotonic()
    sender.send_merged(layer, "news", {"type": "action.changed", "pks": [1]}, "pks")
    sent_soon(layer, 1)
    assert layer.sent
    # The send itself is fast; the wait is the merge interval, not much more.
    assert time.monotonic() - started < wakeups._Sender.MERGE_SECONDS + 1.0


def test_merging_starts_afresh_when_the_senders_loop_is_gone(make_sender):
    # A forked child, or a loop that died: what waited in the old loop is not
    # waiting any more, and must not swallow the messages that come next.
    sender, layer = make_sender(), RecordingLayer()
    sender.send_merged(layer, "news", {"type": "action.changed", "pks": [1]}, "pks")
    stop_loop(sender)
    sender.send_merged(layer, "news", {"type": "action.changed", "pks": [2]}, "pks")
    assert sent_soon(layer, 1) == [("news", {"type": "action.changed", "pks": [2]})]


def test_dashboard_news_goes_merged_through_a_shared_layer(monkeypatch, make_sender):
    from dashboard import broadcast

    layer = RecordingLayer()
    monkeypatch.setattr(wakeups, "get_channel_layer", lambda: layer)
    monkeypatch.setattr(wakeups, "_sender", make_sender())
    broadcast.action_changed(pks=[7])
    broadcast.action_changed(pks=[8])
    assert sent_soon(layer, 1) == [
        (broadcast.GROUP, {"type": broadcast.MESSAGE_TYPE, "pks": [7, 8]})
    ]
