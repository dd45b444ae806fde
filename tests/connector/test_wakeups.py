"""Sends into the server's event loop: wake-ups for workers, news for dashboards."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

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
