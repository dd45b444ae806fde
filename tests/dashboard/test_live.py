"""The dashboard's websocket, through the real ASGI application (origin check, sessions)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from dashboard_helpers import finish, make_user, start, submit
from django.contrib.auth.models import User
from django.test import Client

from connector.asgi import application
from connector.models import Action

PATH = "/ws/dashboard/"


@pytest.fixture(autouse=True)
def fresh_channel_layer() -> Iterator[None]:
    # The in-memory layer's queues belong to one event loop; each test has its own.
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


def _session_cookie(user: User | None) -> list[tuple[bytes, bytes]]:
    if user is None:
        return []
    client = Client()
    client.force_login(user)
    return [(b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())]


async def socket(user: User | None, origin: bytes = b"http://127.0.0.1") -> WebsocketCommunicator:
    headers = [(b"origin", origin), (b"host", b"127.0.0.1")]
    headers += await sync_to_async(_session_cookie)(user)
    return WebsocketCommunicator(application, PATH, headers=headers)


async def receive_row(communicator: WebsocketCommunicator, action: Action) -> str:
    """The next message that carries this action's row (others may come first)."""
    while True:
        message = await communicator.receive_from(timeout=3)
        if f'id="action-{action.pk}"' in message:
            return message


@pytest.mark.django_db(transaction=True)
async def test_socket_refuses_anonymous_users():
    communicator = await socket(None)
    connected, _ = await communicator.connect()
    assert not connected


@pytest.mark.django_db(transaction=True)
async def test_socket_refuses_users_without_the_view_permission():
    user = await database_sync_to_async(make_user)("nobody")
    communicator = await socket(user)
    connected, _ = await communicator.connect()
    assert not connected


@pytest.mark.django_db(transaction=True)
async def test_socket_refuses_other_origins():
    user = await database_sync_to_async(make_user)("viewer", "view_action")
    communicator = await socket(user, origin=b"http://evil.example")
    connected, _ = await communicator.connect()
    assert not connected


@pytest.mark.django_db(transaction=True)
async def test_viewer_receives_a_row_as_an_out_of_band_swap_after_each_change():
    user = await database_sync_to_async(make_user)("viewer", "view_action")
    communicator = await socket(user)
    connected, _ = await communicator.connect()
    assert connected
    try:
        action = await database_sync_to_async(submit)()
        row = await receive_row(communicator, action)
        assert f'<tr id="action-{action.pk}" hx-swap-oob="true">' in row
        assert "Queued" in row
        assert "/cancel/" not in row  # a viewer's row has no buttons

        await database_sync_to_async(start)(action)
        assert "Processing" in await receive_row(communicator, action)

        await database_sync_to_async(finish)(action, counts={"DOCS": {"seen": 4}})
        row = await receive_row(communicator, action)
        assert "Finished" in row
        assert "DOCS: seen 4" in row
    finally:
        await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_operator_rows_carry_their_buttons():
    user = await database_sync_to_async(make_user)("operator", "view_action", "change_action")
    communicator = await socket(user)
    connected, _ = await communicator.connect()
    assert connected
    try:
        action = await database_sync_to_async(submit)()
        row = await receive_row(communicator, action)
        assert f"/dashboard/actions/{action.pk}/cancel/" in row
    finally:
        await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_markup_in_a_live_row_is_escaped():
    user = await database_sync_to_async(make_user)("viewer", "view_action")
    communicator = await socket(user)
    connected, _ = await communicator.connect()
    assert connected
    try:
        action = await database_sync_to_async(submit)(tasks=["<script>x</script>"])
        row = await receive_row(communicator, action)
        assert "<SCRIPT>" not in row and "&lt;SCRIPT&gt;" in row
    finally:
        await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_socket_closes_when_the_view_permission_is_taken_away(monkeypatch):
    monkeypatch.setattr("dashboard.consumers.PERMISSION_RECHECK_SECONDS", 0)
    user = await database_sync_to_async(make_user)("viewer", "view_action")
    communicator = await socket(user)
    connected, _ = await communicator.connect()
    assert connected
    await database_sync_to_async(user.user_permissions.clear)()
    await database_sync_to_async(submit)()
    assert (await communicator.receive_output(timeout=3))["type"] == "websocket.close"
