"""The connector's settings plus the bare view of ``bench.load_site`` and the bare ASGI app
of ``bench.load_asgi`` (benchmarks only)."""

from __future__ import annotations

from connector.settings import *  # noqa: F403

ROOT_URLCONF = "bench.load_site"
# The same application with a bare ASGI app in front (bench/endpoint.py's floor).
ASGI_APPLICATION = "bench.load_asgi.application"
