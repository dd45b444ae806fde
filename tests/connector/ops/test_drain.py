"""FinishRequestsOnShutdown: a request the server cancels at shutdown still answers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from django.test import override_settings

from connector.asgi import application
from connector.ops.drain import FinishRequestsOnShutdown


def slow_app(seconds: float, ended: list[str]):
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            await asyncio.sleep(seconds)
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"done"})
            ended.append("answered")
        except asyncio.CancelledError:
            ended.append("cancelled")
            raise

    return app


async def run_and_cancel_after(app: Any, delay: float) -> asyncio.Task[None]:
    async def send(message: dict[str, Any]) -> None:
        pass

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()
        return {}

    task = asyncio.ensure_future(app({"type": "http", "path": "/x"}, receive, send))
    await asyncio.sleep(delay)
    task.cancel()  # what daphne does to every instance at shutdown
    with pytest.raises(asyncio.CancelledError):
        await task
    return task


@override_settings(CONNECTOR_HTTP_DRAIN_SECONDS=5)
async def test_a_request_cancelled_by_the_server_finishes_and_answers_first():
    ended: list[str] = []
    inner = slow_app(0.3, ended)
    answered: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        async def keep(message: dict[str, Any]) -> None:
            answered.append(message)
            await send(message)

        await inner(scope, receive, keep)

    await run_and_cancel_after(FinishRequestsOnShutdown(app), 0.05)
    assert ended == ["answered"]
    assert [m["type"] for m in answered] == ["http.response.start", "http.response.body"]


@override_settings(CONNECTOR_HTTP_DRAIN_SECONDS=0.2)
async def test_a_request_longer_than_the_drain_time_is_cancelled(caplog):
    ended: list[str] = []
    await run_and_cancel_after(FinishRequestsOnShutdown(slow_app(30, ended)), 0.05)
    assert ended == ["cancelled"]
    assert "did not answer within 0.2 s" in caplog.text


@override_settings(CONNECTOR_HTTP_DRAIN_SECONDS=0)
async def test_zero_drain_cancels_at_once():
    ended: list[str] = []
    await run_and_cancel_after(FinishRequestsOnShutdown(slow_app(30, ended)), 0.05)
    assert ended == ["cancelled"]


async def test_a_request_not_cancelled_is_untouched():
    ended: list[str] = []
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await FinishRequestsOnShutdown(slow_app(0, ended))({"type": "http"}, None, send)
    assert ended == ["answered"]
    assert len(sent) == 2


def test_the_connector_application_drains_http_requests():
    assert isinstance(application.application_mapping["http"], FinishRequestsOnShutdown)
