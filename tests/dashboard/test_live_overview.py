"""The overview's cards over the websocket: sent after changes, throttled, per role."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from dashboard_helpers import make_user, submit
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from connector.asgi import application

OVERVIEW = "/ws/dashboard/?overview=1"


@pytest.fixture(autouse=True)
def fresh_channel_layer() -> Iterator[None]:
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


def _cookie(user: User) -> tuple[bytes, bytes]:
    client = Client()
    client.force_login(user)
    return (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())


async def connected(user: User, path: str = OVERVIEW) -> WebsocketCommunicator:
    headers = [(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1")]
    headers.append(await sync_to_async(_cookie)(user))
    communicator = WebsocketCommunicator(application, path, headers=headers)
    ok, _ = await communicator.connect()
    assert ok
    return communicator


async def messages_until_quiet(communicator: WebsocketCommunicator, quiet: float) -> list[str]:
    # receive_nothing, not a timed-out receive_from: that one cancels the application.
    received = []
    while not await communicator.receive_nothing(timeout=quiet):
        received.append(await communicator.receive_from())
    return received


@pytest.mark.django_db(transaction=True)
async def test_overview_socket_gets_the_queue_card_after_a_change():
    user = await database_sync_to_async(make_user)("viewer", "view_action")
    communicator = await connected(user)
    try:
        await database_sync_to_async(submit)()
        card = await communicator.receive_from(timeout=3)
        assert '<section class="queue-card" id="queue-fetch"' in card
        assert 'hx-swap-oob="true"' in card
        assert "<dd>1</dd>" in card  # one Queued
        assert "1 action queued in the last hour" in card
        assert "Pause queue" not in card  # a viewer's card has no buttons
        assert 'id="action-' not in card  # cards instead of rows
    finally:
        await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_an_operators_card_carries_the_pause_button():
    user = await database_sync_to_async(make_user)("op", "view_action", "change_action")
    communicator = await connected(user)
    try:
        await database_sync_to_async(submit)()
        card = await communicator.receive_from(timeout=3)
        assert "Pause queue fetch" in card
        assert f'hx-post="{reverse("dashboard:pause", args=["fetch"])}"' in card
    finally:
        await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_storm_of_changes_sends_few_cards_and_the_last_one_is_current(monkeypatch):
    monkeypatch.setattr("dashboard.consumers.OVERVIEW_INTERVAL_SECONDS", 0.5)
    user = await database_sync_to_async(make_user)("viewer", "view_action")
    communicator = await connected(user)
    try:

        def storm() -> None:
            for _ in range(30):
                submit()

        await database_sync_to_async(storm)()
        cards = await messages_until_quiet(communicator, quiet=2)
        # 30 changes; the first card at once, then at most one per interval.
        assert 1 <= len(cards) < 30
        assert "<dd>30</dd>" in cards[-1]
    finally:
        await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_pause_from_another_dashboard_reaches_the_overview():
    viewer = await database_sync_to_async(make_user)("viewer", "view_action")
    operator = await database_sync_to_async(make_user)("op", "view_action", "change_action")
    communicator = await connected(viewer)
    try:

        def pause() -> int:
            client = Client()
            client.force_login(operator)
            url = reverse("dashboard:pause", args=["fetch"])
            return client.post(url, {"paused": "1"}).status_code

        assert await database_sync_to_async(pause)() == 302
        card = await communicator.receive_from(timeout=3)
        assert 'class="badge paused"' in card
    finally:
        await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_list_sockets_get_rows_not_cards():
    user = await database_sync_to_async(make_user)("viewer", "view_action")
    communicator = await connected(user, "/ws/dashboard/")
    try:
        action = await database_sync_to_async(submit)()
        message = await communicator.receive_from(timeout=3)
        assert f'id="action-{action.pk}"' in message
        assert "queue-card" not in message
    finally:
        await communicator.disconnect()


@pytest.mark.django_db
def test_pause_with_htmx_answers_with_the_card_and_keeps_the_buttons_id(client):
    client.force_login(make_user("op", "view_action", "change_action"))
    url = reverse("dashboard:pause", args=["FETCH"])  # names are case-insensitive
    response = client.post(url, {"paused": "1"}, headers={"HX-Request": "true"})
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<section class="queue-card" id="queue-fetch"')
    assert 'class="badge paused"' in html
    assert '<button type="submit" id="pause-fetch">Resume queue fetch</button>' in html
    assert "hx-swap-oob" not in html


@pytest.mark.django_db
def test_the_pause_button_works_without_javascript(client):
    client.force_login(make_user("op", "view_action", "change_action"))
    home = client.get(reverse("dashboard:home")).content.decode()
    url = reverse("dashboard:pause", args=["fetch"])
    assert f'<form method="post" action="{url}"' in home
    assert 'name="csrfmiddlewaretoken"' in home
    response = client.post(url, {"paused": "1"}, follow=True)
    assert "Queue fetch paused." in response.content.decode()


@pytest.mark.django_db
def test_cards_read_after_a_change_serve_other_sockets_but_older_ones_do_not(monkeypatch):
    import time

    from dashboard import consumers, queries

    reads = []
    real = queries.queue_overview

    def counting(**kwargs):
        reads.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(consumers.queries, "queue_overview", counting)
    consumers._shared_cards.clear()
    heard = time.monotonic()
    first = consumers.shared_overview({"fetch"}, changed_at=heard)
    # Another socket heard of the same change before that read: the read serves it.
    assert consumers.shared_overview({"fetch"}, changed_at=heard) is first
    assert len(reads) == 1
    # A socket that heard of a later change reads again.
    submit()
    again = consumers.shared_overview({"fetch"}, changed_at=time.monotonic())
    assert len(reads) == 2
    assert again[0].counts["Queued"] == 1


@pytest.mark.django_db(transaction=True)
async def test_socket_closes_after_its_user_signs_out(monkeypatch):
    monkeypatch.setattr("dashboard.consumers.PERMISSION_RECHECK_SECONDS", 0)
    user = await database_sync_to_async(make_user)("viewer", "view_action")
    client = Client()
    await database_sync_to_async(client.force_login)(user)
    cookie = (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())
    headers = [(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1"), cookie]
    communicator = WebsocketCommunicator(application, OVERVIEW, headers=headers)
    assert (await communicator.connect())[0]
    await database_sync_to_async(submit)()
    assert "queue-card" in await communicator.receive_from(timeout=3)
    await database_sync_to_async(client.post)(reverse("logout"))
    await database_sync_to_async(submit)()
    assert (await communicator.receive_output(timeout=3))["type"] == "websocket.close"


@pytest.mark.django_db(transaction=True)
async def test_pause_through_the_aci_endpoint_reaches_the_overview():
    viewer = await database_sync_to_async(make_user)("viewer", "view_action")
    communicator = await connected(viewer)
    try:

        def pause() -> int:
            return Client().get("/action=QueueInfo&QueueName=fetch&QueueAction=Pause").status_code

        assert await database_sync_to_async(pause)() == 200
        card = await communicator.receive_from(timeout=3)
        assert 'class="badge paused"' in card
    finally:
        await communicator.disconnect()
