"""The ASGI application as daphne runs it: static files, the endpoint, the middleware."""

from __future__ import annotations

import pytest
from asgiref.testing import ApplicationCommunicator
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.utils.deprecation import MiddlewareMixin

from connector.asgi import application


async def get(path: str, query: bytes = b"") -> tuple[int, bytes, dict[bytes, bytes]]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    communicator = ApplicationCommunicator(application, scope)
    await communicator.send_input({"type": "http.request", "body": b""})
    start = await communicator.receive_output(5)
    body = b""
    while True:
        message = await communicator.receive_output(5)
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    return start["status"], body, dict(start["headers"])


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
