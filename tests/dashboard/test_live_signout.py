"""Signing out closes that session's live dashboards at once (issue 13 item 12).

Before, a signed-out browser kept receiving pushed rows until the socket's next
permission check, up to ``PERMISSION_RECHECK_SECONDS`` (30 s) after sign-out.
These tests keep that check at its default, so only the sign-out itself can
close the socket in time.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from channels.db import database_sync_to_async
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from dashboard_helpers import make_user, submit
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from connector.asgi import application
from dashboard import consumers

LIST = "/ws/dashboard/"
OVERVIEW = "/ws/dashboard/?overview=1"


@pytest.fixture(autouse=True)
def fresh_channel_layer() -> Iterator[None]:
    # The in-memory layer's queues belong to one event loop; each test has its own.
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest.fixture(autouse=True)
def recheck_at_its_default() -> None:
    assert consumers.PERMISSION_RECHECK_SECONDS >= 30


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


async def open_socket(client: Client, path: str = LIST) -> WebsocketCommunicator:
    headers = [
        (b"origin", b"http://127.0.0.1"),
        (b"host", b"127.0.0.1"),
        (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()),
    ]
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def sign_out(client: Client) -> None:
    response = await database_sync_to_async(client.post)(reverse("logout"))
    assert response.status_code == 302


async def closed_at_once(communicator: WebsocketCommunicator) -> bool:
    """The next thing the socket does, without any change to report, is close."""
    return (await communicator.receive_output(timeout=3))["type"] == "websocket.close"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", [LIST, OVERVIEW])
async def test_signing_out_closes_the_sessions_socket_at_once(path):
    user = await database_sync_to_async(make_user)("viewer", "view_action")
    client = await database_sync_to_async(signed_in)(user)
    communicator = await open_socket(client, path)
    await database_sync_to_async(submit)()
    assert "hx-swap-oob" in await communicator.receive_from(timeout=3)

    await sign_out(client)
    assert await closed_at_once(communicator)


@pytest.mark.django_db(transaction=True)
async def test_a_signed_out_socket_receives_no_more_rows():
    user = await database_sync_to_async(make_user)("viewer", "view_action")
    client = await database_sync_to_async(signed_in)(user)
    communicator = await open_socket(client)

    await sign_out(client)
    # A change right after the sign-out: its row must not reach the socket.
    await database_sync_to_async(submit)()
    outputs = []
    while not await communicator.receive_nothing(timeout=0.5):
        outputs.append(await communicator.receive_output())
    assert [output["type"] for output in outputs] == ["websocket.close"]


@pytest.mark.django_db(transaction=True)
async def test_every_socket_of_the_session_closes_and_other_sessions_stay_live():
    """Two tabs of the browser that signed out close; the same user's other browser stays."""
    user = await database_sync_to_async(make_user)("viewer", "view_action")
    browser = await database_sync_to_async(signed_in)(user)
    other_browser = await database_sync_to_async(signed_in)(user)
    tabs = [await open_socket(browser), await open_socket(browser, OVERVIEW)]
    elsewhere = await open_socket(other_browser)

    await sign_out(browser)
    for tab in tabs:
        assert await closed_at_once(tab)

    action = await database_sync_to_async(submit)()
    assert f'id="action-{action.pk}"' in await elsewhere.receive_from(timeout=3)
    await elsewhere.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_signing_out_with_no_socket_open_just_signs_out():
    user = await database_sync_to_async(make_user)("viewer", "view_action")
    client = await database_sync_to_async(signed_in)(user)
    await sign_out(client)
    response = await database_sync_to_async(client.get)(reverse("dashboard:home"))
    assert response.status_code == 302


def _change_password(user: User) -> None:
    user.set_password("a-new-password-for-tests")
    user.save()


def _deactivate(user: User) -> None:
    user.is_active = False
    user.save()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("change", [_change_password, _deactivate])
async def test_a_session_a_request_would_refuse_gets_no_more_rows_after_the_recheck(
    monkeypatch, change
):
    """A changed password ends the other sessions (Django's session hash), and so does
    making the user inactive: their sockets close at the next change, as a request would
    be refused."""
    user = await database_sync_to_async(make_user)("viewer", "view_action")
    client = await database_sync_to_async(signed_in)(user)
    communicator = await open_socket(client)
    await database_sync_to_async(change)(user)
    monkeypatch.setattr("dashboard.consumers.PERMISSION_RECHECK_SECONDS", 0)
    await database_sync_to_async(submit)()
    assert await closed_at_once(communicator)


@pytest.mark.django_db
def test_the_session_is_gone_before_its_sockets_hear_of_the_sign_out(monkeypatch):
    # A page told to close asks the server at once what it may do: it must find the
    # session signed out, not reconnect as it (the browser test's rare hang).
    from django.contrib.sessions.models import Session

    from dashboard import signout

    client = signed_in(make_user("leaving"))
    key = client.cookies["sessionid"].value
    heard = []

    def send_group(group, message):
        heard.append((group, Session.objects.filter(session_key=key).exists()))

    monkeypatch.setattr(signout.wakeups, "send_group", send_group)
    assert client.post(reverse("logout")).status_code == 302
    assert heard == [(signout.session_group(key), False)]
