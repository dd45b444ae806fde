"""The scale-out cluster for these tests, or a skip that says why there is none.

Without PostgreSQL (``CONNECTOR_SCALEOUT_POSTGRES_URL``, default the machine's
127.0.0.1:5432) or ``redis-server`` the tests are skipped with the reason;
with ``CONNECTOR_REQUIRE_SERVICES=1`` (CI sets it) they fail instead, so CI
cannot pass without having run them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from scaleout_cluster import Cluster, services_missing

REQUIRE_SERVICES = "CONNECTOR_REQUIRE_SERVICES"


def services_required() -> bool:
    return os.environ.get(REQUIRE_SERVICES, "").strip().lower() in {"1", "true", "yes", "on"}


def skip_or_fail(reason: str) -> None:
    if services_required():
        pytest.fail(f"{reason} ({REQUIRE_SERVICES} is set, so this is a failure)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def services() -> None:
    if reason := services_missing():
        skip_or_fail(reason)


@pytest.fixture(scope="session")
def running_cluster(services: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Two web-only daphne servers and three workers, shared by the tests of this folder."""
    cluster = Cluster(Path(tmp_path_factory.mktemp("scaleout")))
    with cluster.serving(servers=2, workers=3):
        yield cluster


@pytest.fixture
def cluster(running_cluster: Cluster) -> Iterator[Cluster]:
    """The shared cluster, as the previous test should have left it: three live
    workers, Redis up, the queue resumed and empty."""
    c = running_cluster
    if c.redis.child is None or not c.redis.child.alive():
        c.redis.start()
    for worker in [w for w in c.workers if not w.child.alive()]:
        c.workers.remove(worker)
    while len(c.workers) < 3:
        c.add_worker()
    for server in c.servers:
        assert server.child.alive(), server.child.output()
    c.servers[0].queue_action("Resume")
    c.wait_until_idle()
    yield c
