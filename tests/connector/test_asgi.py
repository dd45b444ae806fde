"""The ASGI application as daphne runs it: static files, the endpoint, the middleware,
the websocket's origin check."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from asgi_client import get
from asgiref.sync import sync_to_async
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth.models import Permission, User
from django.core.handlers.asgi import ASGIHandler
from django.test import Client
from django.urls.resolvers import URLResolver
from django.utils.deprecation import MiddlewareMixin

from connector.asgi import application


async def test_static_files_are_served_without_debug():
    assert not settings.DEBUG
    status, body, headers = await get("/static/css/connector.css")
    assert status == 200
    assert b"prefers-color-scheme" in body
    assert headers[b"Content-Type"].startswith(b"text/css")


@pytest.mark.django_db(transaction=True)
async def test_the_action_endpoint_answers_through_the_asgi_application():
    status, body, headers = await get("/action=GetVersion")
    assert status == 200
    assert headers[b"Content-Type"] == b"text/xml; charset=utf-8"
    assert b"<response>SUCCESS</response>" in body


SECURITY_HEADERS = (
    b"X-Frame-Options",
    b"Content-Security-Policy",
    b"X-Content-Type-Options",
    b"Referrer-Policy",
    b"Cross-Origin-Opener-Policy",
)


@pytest.mark.django_db(transaction=True)
async def test_the_endpoints_own_handler_sends_the_security_headers_of_djangos_answers():
    # The endpoint's requests skip Django's handler (connector.aci.handler); the
    # middleware that sets these headers still runs for them.
    _, _, endpoint = await get("/action=GetVersion")
    _, _, django_page = await get("/healthz")
    for name in SECURITY_HEADERS:
        assert endpoint[name] == django_page[name], name


async def root_resolutions(path: str, *, times: int) -> int:
    """Ask for ``path`` ``times`` times, from no remembered matches, each answered with
    SUCCESS; how often the root URL resolver ran meanwhile."""
    from connector.aci.handler import _match_path

    _match_path.cache_clear()
    with mock.patch.object(
        URLResolver, "resolve", autospec=True, side_effect=URLResolver.resolve
    ) as resolving:
        for _ in range(times):
            status, body, _ = await get(path)
            assert status == 200 and b"<response>SUCCESS</response>" in body
    return sum(1 for call in resolving.call_args_list if call.args[0].pattern.regex.pattern == "^/")


@pytest.mark.django_db(transaction=True)
async def test_an_endpoint_request_is_resolved_once():
    # The router resolves the path to choose the handler; the handler takes that match.
    assert await root_resolutions("/action=GetVersion", times=1) == 1


@pytest.mark.django_db(transaction=True)
async def test_a_path_asked_for_again_is_not_resolved_again():
    assert await root_resolutions("/action=GetVersion", times=3) == 1


#: A site without the endpoint (for the test below, as its ROOT_URLCONF).
urlpatterns: list[object] = []


def test_a_changed_urlconf_is_resolved_afresh(settings):
    from connector.aci.handler import endpoint_match

    assert endpoint_match({"type": "http", "path": "/action=GetVersion"}) is not None
    settings.ROOT_URLCONF = __name__
    assert endpoint_match({"type": "http", "path": "/action=GetVersion"}) is None


@pytest.mark.django_db(transaction=True)
async def test_a_host_django_refuses_gets_the_aci_error_from_the_endpoints_handler_too():
    # CommonMiddleware's host check, then connector.aci.fallbacks.bad_request.
    from connector.aci.handler import endpoint_match

    assert endpoint_match({"type": "http", "path": "/action=GetVersion"}) is not None
    assert endpoint_match({"type": "http", "path": "/healthz"}) is None
    status, body, headers = await get("/action=GetVersion", host=b"evil.example")
    assert status == 200
    assert b"<errorcode>ERRORHOSTNOTALLOWED</errorcode>" in body
    assert headers[b"X-Content-Type-Options"] == b"nosniff"


@pytest.mark.django_db(transaction=True)
async def test_the_endpoints_threads_keep_their_database_connection(settings):
    from django.db import connection

    from connector.aci.handler import EndpointHandler

    settings.CONNECTOR_ACI_THREADS = 1
    handler = EndpointHandler()

    def connection_now() -> object:
        return connection.connection

    async def get_status() -> None:
        status, body, _ = await get("/action=GetStatus", app=handler)
        assert status == 200
        assert b"SUCCESS" in body

    try:
        await get_status()
        first = handler.executor.submit(connection_now).result()
        await get_status()
        assert first is not None
        assert handler.executor.submit(connection_now).result() is first
        handler.close_connections()
        assert handler.executor.submit(connection_now).result() is None
    finally:
        handler.close_connections()


@pytest.mark.django_db(transaction=True)
async def test_on_sqlite_the_loop_waits_in_place_for_the_endpoints_answers(wakes):
    """connector.aci.handback: on SQLite an answer needs no wake-up of the loop;
    elsewhere (PostgreSQL) the loop goes on while the threads answer."""
    from django.db import connection

    from connector.aci.handler import WAIT_IN_PLACE_SECONDS, EndpointHandler

    handler = EndpointHandler()
    sqlite = connection.vendor == "sqlite"
    assert handler.wait_in_place == (WAIT_IN_PLACE_SECONDS if sqlite else 0.0)
    if sqlite:
        # Time enough for the thread's first connection, however slow the machine.
        handler.wait_in_place = 30.0
    try:
        status, body, _ = await get("/action=GetStatus", app=handler)
        assert (status, b"<response>SUCCESS</response>" in body) == (200, True)
        assert (wakes == []) == sqlite
    finally:
        handler.close_connections()


@pytest.mark.django_db(transaction=True)
async def test_a_submission_waiting_for_the_write_lock_does_not_hold_the_loop(docs_task):
    """The loop waits in place for an answer (SQLite) for WAIT_IN_PLACE_SECONDS at
    the most: a Fetch that waits for the write lock leaves the loop free meanwhile."""
    import asyncio

    from django.db import connection

    from connector.aci.handler import EndpointHandler

    if connection.vendor != "sqlite":
        pytest.skip("SQLite's one write lock")
    from connector.sqlite.base import write_lock

    handler = EndpointHandler()
    lock = write_lock(str(connection.settings_dict["NAME"]))
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    query = f"action=Fetch&FetchAction=Synchronize&TaskSections={docs_task.name}".encode()
    assert lock.acquire(timeout=5)
    ticker = asyncio.create_task(tick())
    try:
        fetch = asyncio.create_task(get("/", query, app=handler, timeout=30))
        await asyncio.sleep(0.5)
        assert not fetch.done(), "the Fetch waits for the write lock"
        # Held by an unbounded wait, the loop would not have ticked at all.
        assert ticks >= 10
    finally:
        lock.release()
    try:
        status, body, _ = await fetch
        assert (status, b"<response>SUCCESS</response>" in body) == (200, True), body
    finally:
        ticker.cancel()
        handler.close_connections()


def test_every_middleware_runs_synchronously_under_asgi(monkeypatch):
    """One thread switch for the chain, not one per middleware hook."""
    made: list[MiddlewareMixin] = []
    original = MiddlewareMixin.__init__

    def record(self, get_response):
        original(self, get_response)
        made.append(self)

    monkeypatch.setattr(MiddlewareMixin, "__init__", record)
    ASGIHandler()
    names = {type(instance).__name__ for instance in made}
    assert {"SessionMiddleware", "CsrfViewMiddleware", "SecurityMiddleware"} <= names
    assert [type(i).__name__ for i in made if i.async_mode] == []


# The dashboard's websocket: only its own origin, whole (issue 13 item 11).


@pytest.fixture
def fresh_channel_layer() -> Iterator[None]:
    # The in-memory layer's queues belong to one event loop; each test has its own.
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


def _viewer_cookie() -> bytes:
    user, _ = User.objects.get_or_create(username="viewer")
    user.user_permissions.add(
        Permission.objects.get(codename="view_action", content_type__app_label="connector")
    )
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def open_socket(
    origin: bytes | None, host: bytes, *, scheme: str = "ws", extra: list[Any] | None = None
) -> bool:
    """Whether a signed-in viewer's socket with these headers is accepted."""
    headers = [(b"host", host), (b"cookie", await sync_to_async(_viewer_cookie)())]
    if origin is not None:
        headers.append((b"origin", origin))
    communicator = WebsocketCommunicator(
        application, "/ws/dashboard/", headers=headers + (extra or [])
    )
    communicator.scope["scheme"] = scheme  # as daphne sets it; read when the app starts
    connected, _ = await communicator.connect(timeout=3)
    await communicator.disconnect()
    return connected


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("fresh_channel_layer")
@pytest.mark.parametrize(
    ("origin", "host", "scheme"),
    [
        (b"http://127.0.0.1:8000", b"127.0.0.1:8000", "ws"),
        (b"http://localhost:8000", b"localhost:8000", "ws"),
        (b"HTTP://LocalHost:8000", b"localhost:8000", "ws"),
        (b"http://127.0.0.1", b"127.0.0.1:80", "ws"),
        (b"https://localhost", b"localhost", "wss"),
        (b"http://[::1]:8000", b"[::1]:8000", "ws"),
    ],
)
async def test_a_socket_from_the_dashboards_own_origin_is_accepted(origin, host, scheme):
    assert await open_socket(origin, host, scheme=scheme)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("fresh_channel_layer")
@pytest.mark.parametrize(
    ("origin", "host", "scheme"),
    [
        # Another port of the same host: the attack of issue 13 item 11.
        (b"http://127.0.0.1:3000", b"127.0.0.1:8000", "ws"),
        (b"http://127.0.0.1", b"127.0.0.1:8000", "ws"),
        # Another scheme: a plain-http page may not read an https dashboard, nor the reverse.
        (b"http://localhost", b"localhost", "wss"),
        (b"https://localhost", b"localhost", "ws"),
        # Another host, allowed or not.
        (b"http://localhost:8000", b"127.0.0.1:8000", "ws"),
        (b"http://evil.example:8000", b"127.0.0.1:8000", "ws"),
        (b"http://127.0.0.1.evil.example:8000", b"127.0.0.1:8000", "ws"),
        # A Host that is not one of ALLOWED_HOSTS (DNS rebinding) even when Origin matches it.
        (b"http://evil.example:8000", b"evil.example:8000", "ws"),
        # No usable origin at all.
        (None, b"127.0.0.1:8000", "ws"),
        (b"null", b"127.0.0.1:8000", "ws"),
        (b"", b"127.0.0.1:8000", "ws"),
        (b"http://127.0.0.1:8000/dashboard/", b"127.0.0.1:8000", "ws"),
        (b"file://", b"127.0.0.1:8000", "ws"),
        (b"http://127.0.0.1:99999", b"127.0.0.1:8000", "ws"),
    ],
)
async def test_a_socket_from_any_other_origin_is_refused(origin, host, scheme):
    assert not await open_socket(origin, host, scheme=scheme)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("fresh_channel_layer")
async def test_the_tls_proxys_header_makes_the_socket_https_when_django_trusts_it(settings):
    proto = [(b"x-forwarded-proto", b"https")]
    assert not await open_socket(b"https://localhost", b"localhost", extra=proto)
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    assert await open_socket(b"https://localhost", b"localhost", extra=proto)
    assert not await open_socket(b"http://localhost", b"localhost", extra=proto)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("fresh_channel_layer")
async def test_csrf_trusted_origins_may_open_the_socket_too(settings):
    settings.ALLOWED_HOSTS = ["connector.example.com", "127.0.0.1"]
    settings.CSRF_TRUSTED_ORIGINS = ["https://connector.example.com", "https://*.corp.example"]
    host = b"127.0.0.1:8001"  # what the proxy may pass on
    assert await open_socket(b"https://connector.example.com", host)
    assert await open_socket(b"https://connector.example.com:443", host)
    assert await open_socket(b"https://ops.corp.example", host)
    assert not await open_socket(b"http://connector.example.com", host)
    assert not await open_socket(b"https://connector.example.com:8443", host)
    assert not await open_socket(b"https://corp.example.evil", host)
    assert not await open_socket(b"http://ops.corp.example", host)
