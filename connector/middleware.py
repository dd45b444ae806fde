"""Middleware of the connector."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse


class SyncMiddlewareChain:
    """Keeps the whole middleware chain in one thread under ASGI.

    Django runs each async-capable ``MiddlewareMixin`` middleware under ASGI by
    switching to a thread for every hook, about a dozen switches per request
    with the stock middleware, which cost more than the ACI actions themselves.
    A sync-only middleware at the innermost place makes Django run every
    middleware outside it synchronously, in the one thread the request's view
    runs in anyway. Keep it last in MIDDLEWARE.
    """

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)
