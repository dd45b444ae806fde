"""The connector's settings plus the bare view of ``bench.load_site`` (load benchmark only)."""

from __future__ import annotations

from connector.settings import *  # noqa: F403

ROOT_URLCONF = "bench.load_site"
