"""/healthz answers while the process serves; /readyz says whether its services answer."""

from __future__ import annotations

from unittest import mock

import pytest
from django.db import OperationalError, connection
from django.test import override_settings

from connector.models import Action

# A port nothing listens on: connections are refused at once.
UNREACHABLE_REDIS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"]},
    }
}


def test_healthz_answers_ok_without_a_session_or_the_database(client):
    with mock.patch.object(connection, "cursor", side_effect=OperationalError("down")):
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]
    assert "sessionid" not in response.cookies


@pytest.mark.django_db
def test_readyz_is_ok_when_the_database_and_the_channel_layer_answer(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "channel_layer": "ok"},
    }
    assert "sessionid" not in response.cookies


@pytest.mark.django_db
def test_readyz_is_503_naming_the_database_when_it_fails(client):
    with mock.patch.object(
        connection, "cursor", side_effect=OperationalError("connection refused")
    ):
        response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"] == {"database": "failed: OperationalError", "channel_layer": "ok"}
    # The details are for the log, not for whoever asks.
    assert "connection refused" not in response.content.decode()


@pytest.mark.django_db
@override_settings(CHANNEL_LAYERS=UNREACHABLE_REDIS)
def test_readyz_is_503_naming_the_channel_layer_when_redis_is_unreachable(client):
    response = client.get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"] == "ok"
    assert checks["channel_layer"].startswith("failed: ")
    assert "127.0.0.1" not in response.content.decode()


@pytest.mark.django_db
def test_readyz_is_503_when_the_message_does_not_come_back_in_time(client, monkeypatch):
    from channels.layers import InMemoryChannelLayer

    async def never(self, channel):
        import asyncio

        await asyncio.sleep(60)

    monkeypatch.setattr(InMemoryChannelLayer, "receive", never)
    monkeypatch.setattr("connector.ops.health.CHANNEL_LAYER_TIMEOUT_SECONDS", 0.2)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["channel_layer"] == "failed: no answer within 0.2 s"


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_probes_accept_only_get_and_change_nothing(client, path):
    response = client.post(path)
    assert response.status_code == 405
    assert Action.objects.count() == 0


@pytest.mark.skipif(
    "not __import__('redis').Redis(host='127.0.0.1', socket_connect_timeout=0.5).ping()",
    reason="needs the Redis server at 127.0.0.1:6379",
)
@pytest.mark.django_db
@override_settings(
    CHANNEL_LAYERS={
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": ["redis://127.0.0.1:6379/0"], "prefix": "asgi-readyz-test"},
        }
    }
)
def test_readyz_round_trips_through_a_real_redis(client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.json()
