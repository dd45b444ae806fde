"""The fetch channel's consumer: it wakes the engine or stops an action, and returns."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from asgiref.testing import ApplicationCommunicator
from django.test import override_settings
from worker_helpers import FINAL, noop_action, sleep_action, status_of, wait_for, wait_for_status

from connector import queue
from connector.models import Status
from connector.worker.consumer import FetchConsumer

SCOPE = {"type": "channel", "channel": "fetch"}


def send_to_consumer(*messages: dict[str, Any]) -> float:
    """Feed messages to one FetchConsumer instance; return the seconds it took.

    Also checks that the consumer is still running afterwards (a failing
    handler would end it, and with it every later wake-up).
    """

    async def run() -> float:
        communicator = ApplicationCommunicator(FetchConsumer.as_asgi(), SCOPE)
        started = time.perf_counter()
        for message in messages:
            await communicator.send_input(message)
        # Let the consumer take them all.
        while not communicator.input_queue.empty():
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.01)
        took = time.perf_counter() - started
        assert not communicator.future.done(), communicator.future
        communicator.future.cancel()
        await asyncio.gather(communicator.future, return_exceptions=True)
        return took

    return async_to_sync(run)()


@pytest.mark.django_db(transaction=True)
@override_settings(CONNECTOR_POLL_SECONDS=60)
def test_wake_message_makes_the_engine_claim_at_once(start_engine):
    start_engine()
    action = noop_action()
    time.sleep(0.1)
    assert status_of(action.pk) == Status.QUEUED
    send_to_consumer({"type": "fetch.wake", "queue": "fetch"})
    assert wait_for_status(action.pk, *FINAL, timeout=2) == Status.FINISHED


@pytest.mark.django_db(transaction=True)
def test_stop_message_stops_the_running_action(start_engine):
    engine = start_engine()
    action = sleep_action(20, steps=2000)
    engine.wake()
    wait_for_status(action.pk, Status.PROCESSING)
    queue.request_stop(pk=action.pk)
    send_to_consumer({"type": "fetch.stop", "pk": action.pk})
    assert wait_for_status(action.pk, *FINAL, timeout=2) == Status.STOPPED


@pytest.mark.django_db(transaction=True)
def test_consumer_returns_at_once_while_actions_run(start_engine):
    engine = start_engine()
    action = sleep_action(20, steps=2000)
    engine.wake()
    wait_for_status(action.pk, Status.PROCESSING)
    took = send_to_consumer(*[{"type": "fetch.wake", "queue": "fetch"}] * 50)
    assert took < 1
    assert status_of(action.pk) == Status.PROCESSING
    engine.stop_local(action.pk)
    wait_for_status(action.pk, *FINAL)


@pytest.mark.django_db(transaction=True)
def test_unknown_and_malformed_messages_are_ignored(start_engine):
    engine = start_engine()
    action = sleep_action(20, steps=2000)
    engine.wake()
    wait_for_status(action.pk, Status.PROCESSING)
    send_to_consumer(
        {"type": "fetch.unknown"},
        {"type": "_private"},
        {"type": "fetch.stop", "pk": "not a number"},
        {"type": "fetch.stop", "pk": action.pk},
    )
    # The consumer survived the bad messages and handled the last one.
    assert wait_for_status(action.pk, *FINAL, timeout=2) == Status.STOPPED


def test_consumer_without_an_engine_ignores_messages():
    send_to_consumer({"type": "fetch.wake", "queue": "fetch"}, {"type": "fetch.stop", "pk": 1})


@pytest.mark.django_db(transaction=True)
def test_stop_sent_by_the_queue_reaches_the_engine_through_its_channel():
    """The whole path in one process: request_stop -> channel layer -> server -> engine."""
    from channels.layers import get_channel_layer

    from connector.worker.server import FetchWorkerServer

    done: list[float] = []

    async def serve(action_pk: int) -> None:
        server = FetchWorkerServer(
            application=FetchConsumer.as_asgi(), channels=["fetch"], channel_layer=layer
        )
        run = asyncio.ensure_future(server.arun())
        await asyncio.to_thread(wait_for, server.engine.ready.is_set)
        # The submit's wake-up arrives over the in-memory layer in this loop.
        await asyncio.to_thread(wait_for_status_from_thread, action_pk, Status.PROCESSING)
        started = time.perf_counter()
        await asyncio.to_thread(request_stop_from_thread, action_pk)
        await asyncio.to_thread(wait_for_status_from_thread, action_pk, *FINAL)
        done.append(time.perf_counter() - started)
        await server.begin_shutdown(0)
        await run

    layer = get_channel_layer()
    with override_settings(CONNECTOR_POLL_SECONDS=60, CONNECTOR_HEARTBEAT_SECONDS=60):
        action = sleep_action(20, steps=2000)
        async_to_sync(serve)(action.pk)
    assert status_of(action.pk) == Status.STOPPED
    # Neither the poll nor the heartbeat (60 s) told the engine: the message did.
    assert done[0] < 2


@pytest.mark.django_db(transaction=True)
def test_a_submission_wakes_the_engine_of_the_worker_server_without_a_message(monkeypatch):
    """With the in-memory layer the worker server is the only listener: a wake-up
    goes to its engine directly, and nothing is sent on the fetch channel."""
    from channels.layers import get_channel_layer

    from connector import wakeups
    from connector.worker.server import FetchWorkerServer

    took: list[float] = []
    local: list[object] = []

    async def serve() -> None:
        server = FetchWorkerServer(
            application=FetchConsumer.as_asgi(), channels=["fetch"], channel_layer=layer
        )
        run = asyncio.ensure_future(server.arun())
        await asyncio.to_thread(wait_for, server.engine.claiming.is_set)
        local.append(wakeups._local_engine is server.engine)
        started = time.perf_counter()
        action = await asyncio.to_thread(noop_action_from_thread)
        await asyncio.to_thread(wait_for_status_from_thread, action.pk, *FINAL)
        took.append(time.perf_counter() - started)
        await server.begin_shutdown(0)
        await run

    layer = get_channel_layer()
    sent: list[str] = []
    layer_send = layer.send

    async def recording_send(channel: str, message: dict[str, Any]) -> None:
        sent.append(channel)
        await layer_send(channel, message)

    monkeypatch.setattr(layer, "send", recording_send)
    with override_settings(CONNECTOR_POLL_SECONDS=60, CONNECTOR_HEARTBEAT_SECONDS=60):
        async_to_sync(serve)()
    assert local == [True], "the worker server registered its engine"
    assert sent == [], "no message went through the channel layer"
    # Not the poll (60 s): the wake-up.
    assert took[0] < 2
    assert wakeups._local_engine is None


def noop_action_from_thread():
    from django.db import connection

    try:
        return noop_action()
    finally:
        connection.close()


def wait_for_status_from_thread(pk: int, *statuses: str) -> str:
    from django.db import connection

    try:
        return wait_for_status(pk, *statuses)
    finally:
        connection.close()


def request_stop_from_thread(pk: int) -> None:
    from django.db import connection

    try:
        queue.request_stop(pk=pk)
    finally:
        connection.close()
