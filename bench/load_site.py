"""The URLs `bench/load.py` serves: the connector's, plus one bare Django view.

The bare view goes through the same server, ASGI handler and middleware as the
action endpoint and does nothing else, so the endpoint's own cost is the
difference. Only the load benchmark uses this module (through
``bench.load_settings``); the connector never serves it.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path

from connector.urls import urlpatterns as connector_urlpatterns


def bare(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"ok", content_type="text/plain")


urlpatterns = [path("bench/bare", bare), *connector_urlpatterns]
