"""A worker while Redis is down: it keeps its listener, and a Stop takes at most a poll.

Issue 14, 7: the fetch consumer crashed while Redis was down and was replaced
about a second later; a Stop sent around the restart took 3.35 s against
about 0.06 s. Now the worker's listener retries (one warning per outage, one
line when Redis is back) and the worker looks for Stops at every poll while
messages are lost.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from scaleout_cluster import Cluster, wait_for

pytestmark = pytest.mark.processes

POLL = 0.5


@pytest.fixture(scope="module")
def small(services: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = Cluster(Path(tmp_path_factory.mktemp("outage")), poll=POLL, heartbeat=2.5, lease=8)
    with cluster.serving(servers=1, workers=1):
        yield cluster


def test_a_stop_during_a_redis_outage_takes_at_most_a_poll_and_the_worker_keeps_listening(
    small: Cluster,
):
    server, worker = small.servers[0], small.workers[0]
    token = server.submit("Sleep", Seconds="60", Steps="6000")
    wait_for(lambda: small.statuses([token])[token] == "Processing", 30, "the Sleep to run")
    small.redis.stop()
    try:
        time.sleep(1.0)  # the worker's receive fails, and it says so once
        asked = time.monotonic()
        answer = server.queue_action("Stop", Token=token)
        assert answer["response"] == "SUCCESS", answer
        wait_for(lambda: small.statuses([token])[token] == "Stopped", 10, "the Stop", small.logs)
        took = time.monotonic() - asked
        # A poll and the Sleep's next checkpoint (10 ms), not the 2.5 s heartbeat
        # plus a consumer restart; slack for a busy machine.
        assert took < POLL + 0.5, took
        time.sleep(2.0)  # more failed retries: still one warning
    finally:
        small.redis.start()
    output = worker.child.output()
    wait_for(
        lambda: "The channel layer works again" in worker.child.output(),
        15,
        "the worker to listen again",
        worker.child.output,
    )
    output = worker.child.output()
    assert output.count("The channel layer failed") == 1, output[-4000:]
    assert "Exception inside application" not in output
    # And the work goes on.
    token = server.submit("NoOp")
    wait_for(lambda: small.statuses([token])[token] == "Finished", 10, "the NoOp", small.logs)
