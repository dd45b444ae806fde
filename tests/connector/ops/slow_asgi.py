"""The connector's ASGI application, with /healthz made slow (for shutdown tests).

The view is replaced before the URLconf is first imported, so the slow view
runs where a real one does: a sync Django view in its thread, behind the
connector's whole ASGI stack, under plain daphne.
"""

from __future__ import annotations

import time

from django.http import HttpRequest, JsonResponse

from connector.asgi import application  # sets Django up
from connector.ops import health

SLOW_SECONDS = 3.0


def slow_healthz(request: HttpRequest) -> JsonResponse:
    time.sleep(SLOW_SECONDS)
    return JsonResponse({"status": "slow but ok"})


health.healthz = slow_healthz  # type: ignore[assignment]

__all__ = ["application"]
