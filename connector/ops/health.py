"""Probes for load balancers and orchestrators: /healthz and /readyz.

``/healthz`` answers 200 whenever the process serves requests: a failing one
means restart the process. ``/readyz`` answers 200 only when what a request
needs is reachable (the database, and the channel layer that carries wake-ups,
Stops and dashboard news), else 503 with what failed: take the process out of
the rotation, don't restart it. Neither needs a session or a user, so a probe
costs no session row; both are answered without caching.
"""

from __future__ import annotations

import asyncio
import logging
import secrets

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

logger = logging.getLogger(__name__)

#: How long the channel layer gets to carry one message to us and back.
CHANNEL_LAYER_TIMEOUT_SECONDS = 2.0


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    checks = {"database": database_problem(), "channel_layer": channel_layer_problem()}
    failed = {name: problem for name, problem in checks.items() if problem}
    if failed:
        # The details (host names, addresses) go to the log, not to whoever asks.
        logger.warning("Not ready: %s", "; ".join(f"{k}: {v}" for k, v in failed.items()))
        return JsonResponse(
            {
                "status": "unavailable",
                "checks": {name: _public(problem) for name, problem in checks.items()},
            },
            status=503,
        )
    return JsonResponse({"status": "ok", "checks": dict.fromkeys(checks, "ok")})


def _public(problem: str) -> str:
    """What the answer says of a check: ok, or the kind of failure without its details."""
    if not problem:
        return "ok"
    return "failed: " + problem.split(":", 1)[0]


def database_problem() -> str:
    """'' if the database answers a trivial query, else what went wrong."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as error:
        return f"{type(error).__name__}: {error}".strip()[:300]
    return ""


def channel_layer_problem(timeout: float | None = None) -> str:
    """'' if a message sent to a new channel of the layer comes back in time."""
    try:
        return str(async_to_sync(_round_trip)(timeout or CHANNEL_LAYER_TIMEOUT_SECONDS))
    except Exception as error:
        return f"{type(error).__name__}: {error}".strip()[:300]


async def _round_trip(timeout: float) -> str:
    layer = get_channel_layer()
    if layer is None:
        return "no channel layer is configured"
    nonce = secrets.token_hex(8)
    try:
        async with asyncio.timeout(timeout):
            # A channel of its own: no other process or consumer can take the message.
            channel = await layer.new_channel()
            await layer.send(channel, {"type": "readyz.ping", "nonce": nonce})
            message = await layer.receive(channel)
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    if message.get("nonce") != nonce:
        return "a different message came back"
    return ""
