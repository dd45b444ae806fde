"""Which pages may open the dashboard's websocket: its own origin, whole.

A browser sends the session cookie with a websocket to the connector from any
page, so the ``Origin`` header is what tells the dashboard from a hostile page.
Channels' ``AllowedHostsOriginValidator`` compares only the host name against
``ALLOWED_HOSTS``: a page on another port of the same host (another local
service, a developer's server on 127.0.0.1:3000) passed and read the live feed
with the operator's cookie. An origin is scheme, host and port, so all three
are compared here, the way Django's CSRF check compares a form's origin:

- the socket's own origin: the ``Host`` it was sent to (which must be one of
  ``ALLOWED_HOSTS``) with ``http`` or ``https`` (``wss``, or the TLS proxy's
  header named by ``SECURE_PROXY_SSL_HEADER``, as for ``request.is_secure()``);
- or one of ``CSRF_TRUSTED_ORIGINS`` (the public origin behind a TLS proxy,
  ``https://*.example.com`` for its subdomains): the origins already trusted to
  post the dashboard's forms are the ones trusted to read it.

No ``Origin``, ``Origin: null`` or anything else: refused before the handshake
(HTTP 403), with nothing read or sent.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host
from django.utils.http import is_same_domain

logger = logging.getLogger(__name__)

_DEFAULT_PORTS = {"http": 80, "https": 443}

#: (scheme, host, port): an origin compared as a whole.
Origin = tuple[str, str, int]


def parse_origin(text: str) -> Origin | None:
    """``scheme://host[:port]`` as a comparable triple; None for anything else."""
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    if parts.path or parts.query or parts.fragment or parts.username or parts.password:
        return None
    return scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[scheme]


def _headers(scope: dict[str, Any]) -> dict[str, str]:
    found: dict[str, str] = {}
    for name, value in scope.get("headers", []):
        # The first of a repeated header counts; a second Origin changes nothing.
        found.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
    return found


def _secure(scope: dict[str, Any], headers: dict[str, str]) -> bool:
    if scope.get("scheme") in {"wss", "https"}:
        return True
    proxy_header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy_header:
        name, secure_value = proxy_header
        # Django's META name (HTTP_X_FORWARDED_PROTO) as the header's own name.
        header = name.removeprefix("HTTP_").replace("_", "-").lower()
        return headers.get(header, "").split(",")[0].strip() == secure_value
    return False


def own_origin(scope: dict[str, Any]) -> Origin | None:
    """The origin the socket was opened to; None when its Host is not one of ours."""
    headers = _headers(scope)
    host = headers.get("host", "")
    domain, _ = split_domain_port(host)
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return None
    scheme = "https" if _secure(scope, headers) else "http"
    return parse_origin(f"{scheme}://{host}")


def _trusted(origin: Origin, patterns: Iterable[str]) -> bool:
    scheme, host, port = origin
    for pattern in patterns:
        if "*" in pattern:
            # Django's form: https://*.example.com (any port the pattern names, or the default).
            wildcard = parse_origin(pattern.replace("*", "wildcard", 1))
            if wildcard is None:
                continue
            w_scheme, w_host, w_port = wildcard
            domain = w_host.removeprefix("wildcard")
            if w_scheme == scheme and w_port == port and is_same_domain(host, domain):
                return True
        elif parse_origin(pattern) == origin:
            return True
    return False


def origin_allowed(scope: dict[str, Any]) -> bool:
    origin = parse_origin(_headers(scope).get("origin", ""))
    if origin is None:
        return False
    if origin == own_origin(scope):
        return True
    return _trusted(origin, getattr(settings, "CSRF_TRUSTED_ORIGINS", []))


class SameOriginValidator:
    """ASGI middleware: a websocket from a page of another origin is refused (403)."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket" and not origin_allowed(scope):
            headers = _headers(scope)
            logger.warning(
                "Websocket %s refused: origin %r is not this site's (Host %r)",
                scope.get("path", ""),
                headers.get("origin", "")[:200],
                headers.get("host", "")[:200],
            )
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)
