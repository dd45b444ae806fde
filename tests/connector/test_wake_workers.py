"""Resume wakes every worker, each on its own channel, not one worker of the queue."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.utils import timezone

from connector import queue, wakeups
from connector.models import WorkerProcess

pytestmark = pytest.mark.django_db


def register_worker(pk: str, *, stopping: bool = False) -> str:
    channel = async_to_sync(get_channel_layer().new_channel)()
    now = timezone.now()
    WorkerProcess.objects.create(
        pk=pk,
        hostname="host",
        pid=1,
        channel_name=channel,
        started_at=now,
        heartbeat_at=now,
        stopping=stopping,
    )
    return channel


def receive(channel: str) -> dict | None:
    async def first() -> dict | None:
        try:
            return await asyncio.wait_for(get_channel_layer().receive(channel), 0.5)
        except TimeoutError:
            return None

    return async_to_sync(first)()


def test_resume_wakes_every_running_worker_on_its_own_channel(django_capture_on_commit_callbacks):
    first, second = register_worker("w-1"), register_worker("w-2")
    leaving = register_worker("w-3", stopping=True)
    queue.set_paused(queue="fetch", paused=True)

    with django_capture_on_commit_callbacks(execute=True):
        queue.set_paused(queue="fetch", paused=False)

    wake = {"type": wakeups.WAKE, "queue": "fetch"}
    assert receive(first) == wake
    assert receive(second) == wake
    assert receive(leaving) is None
