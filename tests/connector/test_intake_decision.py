"""The intake's pre-body decision in-process, on Twisted's test transport.

The client address follows connector.addresses: behind a trusted proxy it is
the X-Forwarded-For hop the proxy added, and a client elsewhere cannot claim
one. (The socket-level behaviour is in test_intake.py.)
"""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from connector.intake import IntakeHTTPFactory

PROXY = "10.0.0.9"
ALLOWED = "203.0.113.7"


class FakeServer:
    """What daphne's request reads of its Server; records each scope instead of running it."""

    proxy_forwarded_address_header = None
    root_path = ""
    server_name = "connector"
    request_buffer_size = 8192

    def __init__(self) -> None:
        self.connections: dict[Any, dict[str, Any]] = {}
        self.scopes: list[dict[str, Any]] = []

    def protocol_connected(self, protocol: Any) -> None:
        self.connections[protocol] = {}

    def protocol_disconnected(self, protocol: Any) -> None:
        pass

    def create_application(self, protocol: Any, scope: dict[str, Any]) -> None:
        self.scopes.append(scope)


@pytest.fixture(autouse=True)
def roles(settings):
    settings.CONNECTOR_ACI_ROLES = {"admin": {"actions": ["*"], "clients": [ALLOWED]}}
    settings.CONNECTOR_TRUSTED_PROXIES = [PROXY]


def post(peer: str, *headers: str) -> tuple[FakeServer, bytes]:
    """POST the headers of a 10-byte body (not the body) from ``peer``: (server, bytes written)."""
    server = FakeServer()
    factory = IntakeHTTPFactory(server)
    factory.reactor = Clock()
    protocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 8000))
    transport = StringTransport(peerAddress=IPv4Address("TCP", peer, 40000))
    protocol.makeConnection(transport)
    lines = ["POST /?action=GetVersion HTTP/1.1", "Host: 127.0.0.1", "Content-Length: 10", *headers]
    protocol.dataReceived(("\r\n".join(lines) + "\r\n\r\n").encode())
    return server, transport.value()


def refusal(server: FakeServer) -> bytes | None:
    if not server.scopes:
        return None
    return dict(server.scopes[0]["headers"]).get(b"connector-body-refused")


def test_behind_a_trusted_proxy_the_forwarded_client_decides():
    server, _ = post(PROXY, f"X-Forwarded-For: {ALLOWED}")
    # Waiting for the body: nothing handed on yet, nothing refused.
    assert server.scopes == []
    server, _ = post(PROXY, "X-Forwarded-For: 198.51.100.1")
    assert refusal(server) == b"not-authorized"


def test_the_proxy_itself_holds_no_role_here():
    server, _ = post(PROXY)
    assert refusal(server) == b"not-authorized"


def test_a_client_elsewhere_cannot_claim_an_address_by_header():
    server, _ = post("198.51.100.1", f"X-Forwarded-For: {ALLOWED}")
    assert refusal(server) == b"not-authorized"


def test_an_allowed_client_direct_is_read():
    server, written = post(ALLOWED)
    assert server.scopes == []
    assert written == b""
