"""The worker server while its channel layer fails (Redis down): it keeps listening.

Issue 14, 7: the fetch consumer crashed ("Exception inside application") while
Redis was down and was replaced a second later, losing the Stops and wake-ups
sent meanwhile; the failing receive was logged with a traceback every second.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.test import override_settings
from worker_helpers import sleep_action, status_of, wait_for, wait_for_status

from connector import queue
from connector.models import Status
from connector.worker.consumer import FetchConsumer
from connector.worker.server import FETCH_CHANNEL, FetchWorkerServer


class FlakyLayer:
    """A channel layer whose receive fails while ``down``, as channels_redis does."""

    def __init__(self) -> None:
        self.down = False
        self.queues: dict[str, asyncio.Queue[dict[str, Any]]] = defaultdict(asyncio.Queue)
        self.failures = 0

    async def new_channel(self) -> str:
        return "specific.test!own"

    async def receive(self, channel: str) -> dict[str, Any]:
        while True:
            if self.down:
                self.failures += 1
                raise ConnectionError("Error 111 connecting to 127.0.0.1:6379")
            try:
                return await asyncio.wait_for(self.queues[channel].get(), 0.05)
            except TimeoutError:
                continue  # as a BZPOPMIN with a timeout: look at the connection again


class EngineStub:
    id = "stub"
    poll_seconds = 2.0

    def __init__(self) -> None:
        self.lost: list[bool] = []
        self.woken = 0

    def messages_lost(self, lost: bool) -> None:
        self.lost.append(lost)

    def wake(self) -> None:
        self.woken += 1


def test_the_listener_survives_an_outage_with_one_warning_and_one_line_on_recovery(
    caplog, monkeypatch
):
    engine = EngineStub()
    received: list[dict[str, Any]] = []

    async def application(scope: Any, receive: Any, send: Any) -> None:
        while True:
            received.append(await receive())

    async def scenario() -> FlakyLayer:
        layer = FlakyLayer()
        server = FetchWorkerServer(
            application=application, channels=[FETCH_CHANNEL], channel_layer=layer, engine=engine
        )
        layer.down = True
        listener = asyncio.ensure_future(server.listener(FETCH_CHANNEL))
        await asyncio.sleep(2.5)  # several failed receives, with pauses growing to 2 s
        assert engine.lost == [True]
        layer.down = False
        await asyncio.sleep(3.5)  # a pause, then a receive that does not fail for 1 s
        assert engine.lost == [True, False]
        await layer.queues[FETCH_CHANNEL].put({"type": "fetch.wake", "queue": "fetch"})
        await asyncio.sleep(0.1)
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
        for details in server.application_instances.values():
            details["future"].cancel()
        return layer

    with caplog.at_level(logging.INFO, logger="connector.worker.server"):
        layer = async_to_sync(scenario)()
    assert layer.failures >= 3
    assert received == [{"type": "fetch.wake", "queue": "fetch"}]
    records = [r for r in caplog.records if r.name == "connector.worker.server"]
    warnings = [r for r in records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in records]
    assert "The channel layer failed (ConnectionError" in warnings[0].getMessage()
    assert not any(r.exc_info for r in records)  # no traceback per retry
    infos = [r.getMessage() for r in records if r.levelno == logging.INFO]
    assert len([m for m in infos if "works again" in m]) == 1


def test_the_fetch_consumer_opens_no_channel_of_its_own(monkeypatch):
    """The base AsyncConsumer waits on a channel of the layer nobody sends to; with
    Redis that wait kept `runworker` alive after SIGTERM (issue 14, 7)."""
    opened: list[str] = []

    class Layer:
        async def new_channel(self) -> str:
            opened.append("new")
            return "specific.x!y"

        async def receive(self, channel: str) -> dict[str, Any]:
            opened.append(channel)
            await asyncio.sleep(3600)
            raise AssertionError

    monkeypatch.setattr("channels.consumer.get_channel_layer", lambda alias=None: Layer())

    async def run() -> None:
        inputs: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        consumer = asyncio.ensure_future(
            FetchConsumer.as_asgi()({"type": "channel"}, inputs.get, None)
        )
        await inputs.put({"type": "fetch.unknown"})
        await asyncio.sleep(0.05)
        assert not consumer.done()
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)

    async_to_sync(run)()
    assert opened == []


@pytest.mark.django_db(transaction=True)
@override_settings(CONNECTOR_HEARTBEAT_SECONDS=30, CONNECTOR_POLL_SECONDS=0.2)
def test_while_messages_are_lost_a_stop_takes_at_most_a_poll(start_engine):
    engine = start_engine()
    action = sleep_action(20, steps=2000)
    engine.wake()
    wait_for(lambda: action.pk in engine.running_pks())
    engine.messages_lost(True)
    time.sleep(0.3)  # the heartbeat thread now looks at every poll
    # The Stop is recorded, but its message is lost (as with Redis down): only
    # the database says so.
    queue.request_stop(pk=action.pk)
    asked = time.monotonic()
    assert wait_for_status(action.pk, Status.STOPPED, timeout=3) == Status.STOPPED
    # A poll (0.2 s) and the Sleep's next checkpoint, not the 30 s heartbeat.
    assert time.monotonic() - asked < 1.0


@pytest.mark.django_db(transaction=True)
@override_settings(CONNECTOR_HEARTBEAT_SECONDS=30, CONNECTOR_POLL_SECONDS=30)
def test_when_messages_flow_again_the_stops_sent_meanwhile_are_looked_for_at_once(
    start_engine,
):
    engine = start_engine()
    action = sleep_action(20, steps=2000)
    engine.wake()
    wait_for(lambda: action.pk in engine.running_pks())
    engine.messages_lost(True)
    time.sleep(0.3)  # the look for Stops that the outage's start asks for is over
    queue.request_stop(pk=action.pk)
    time.sleep(0.3)
    assert status_of(action.pk) == Status.PROCESSING  # the poll is 30 s
    engine.messages_lost(False)
    assert wait_for_status(action.pk, Status.STOPPED, timeout=2) == Status.STOPPED
