"""The Content-Security-Policy header (Django 5.2 has none built in).

The policy allows scripts, styles, images and connections from this site only:
no inline scripts or event handlers, no ``eval`` (htmx is configured with
``allowEval: false`` in ``templates/_base.html``), no inline styles (htmx's
indicator styles are switched off there too), no frames of it elsewhere. So
markup that slipped into a page unescaped still cannot run.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

HEADER = "Content-Security-Policy"

#: The policy unless settings.CONNECTOR_CONTENT_SECURITY_POLICY replaces it.
DEFAULT_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        # 'self' covers the dashboard's websocket to the same host (CSP level 3).
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


#: The policy of every answer carrying a document's bytes (``action=View``): a
#: sandbox (no script, no plugins, an origin of its own) that loads nothing.
#: It is not configurable: a document is never a page of this site.
DOCUMENT_POLICY = "; ".join(
    [
        "sandbox",
        "default-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)


def policy() -> str:
    return str(getattr(settings, "CONNECTOR_CONTENT_SECURITY_POLICY", "") or DEFAULT_POLICY)


class ContentSecurityPolicyMiddleware:
    """Adds the policy to every response that has none of its own.

    A response with its own (a document's ``DOCUMENT_POLICY``) keeps it: the
    site's policy allows this origin's scripts, a document's allows nothing.

    Synchronous only, like the rest of the chain (see SyncMiddlewareChain).
    """

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.policy = policy()

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if HEADER not in response:
            response[HEADER] = self.policy
        return response
