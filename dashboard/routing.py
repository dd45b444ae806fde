from __future__ import annotations

from django.urls import URLPattern

# The live dashboard's websocket routes come with the dashboard issue.
websocket_urlpatterns: list[URLPattern] = []
