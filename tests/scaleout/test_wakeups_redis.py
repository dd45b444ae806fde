"""Sends to the Redis channel layer from plain threads (a worker's slots, a request's)."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import pytest
from channels.layers import get_channel_layer
from scaleout_cluster import Redis

from connector import wakeups

pytestmark = pytest.mark.processes


def connections_received(redis: Redis) -> int:
    import redis as redis_client

    client = redis_client.Redis(host="127.0.0.1", port=redis.port)
    try:
        return int(client.info("stats")["total_connections_received"])
    finally:
        client.close()


def test_wake_ups_sent_from_a_thread_arrive_over_kept_connections(
    services: None, tmp_path: Path, settings
):
    redis = Redis(tmp_path, dict(os.environ))
    redis.start()
    try:
        settings.CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "channels_redis.core.RedisChannelLayer",
                "CONFIG": {"hosts": [{"address": redis.url, "socket_timeout": 15}]},
            }
        }
        before = connections_received(redis)
        sender = threading.Thread(target=lambda: [wakeups.wake_queue("fetch") for _ in range(50)])
        sender.start()
        sender.join(30)

        async def receive_all() -> list[dict]:
            layer = get_channel_layer()
            return [await asyncio.wait_for(layer.receive("fetch"), 10) for _ in range(50)]

        received = asyncio.run(receive_all())
        assert received == [{"type": wakeups.WAKE, "queue": "fetch"}] * 50
        # Not a connection per message: the sender's loop keeps its own, the
        # receiver has one, and this test's counting ones.
        assert connections_received(redis) - before <= 6
    finally:
        redis.stop()
