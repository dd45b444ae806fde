"""Who sent a request and where it reached us: one place for both rules.

The client's address is recorded with every change (and, with issue 6, will
come from trusted proxies); the server's host and port go into new tokens.
"""

from __future__ import annotations

from django.http import HttpRequest


def client_address(request: HttpRequest) -> str:
    """The address of the client that sent the request."""
    return str(request.META.get("REMOTE_ADDR", ""))


def server_address(request: HttpRequest) -> tuple[str, int]:
    """The host and port the client reached us on."""
    try:
        host = request.get_host()
    except Exception:
        # Host validation is the middleware's job; a token still needs a host.
        host = request.META.get("SERVER_NAME", "localhost")
    port_text = ""
    if not host.endswith("]") and ":" in host:
        host, port_text = host.rsplit(":", 1)
    try:
        port = int(port_text or request.get_port())
    except ValueError:
        port = 443 if request.is_secure() else 80
    return host or "localhost", port
