"""SIGTERM to every kind of process on PostgreSQL + Redis: exit 0 within the grace, every time.

Issue 14, 7: ``runworker fetch`` sometimes never exited after SIGTERM (1 to 5
of 8 tries): it waited for the fetch consumer's own channel-layer receive,
which Channels opens for every consumer, to end after cancellation. Under
systemd every such stop took ``TimeoutStopSec`` and ended in SIGKILL.

Each try starts the process, makes it do real work over the shared layer (a
wake-up reaches the worker's consumer, so its instance exists, as in
production), then sends SIGTERM. ``CONNECTOR_SIGTERM_TRIES`` tries per kind
(default 5, about a minute in all on two cores); the issue's bar is 100 of
100, run with ``CONNECTOR_SIGTERM_TRIES=100`` (bench/README.md, "SIGTERM").
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from scaleout_cluster import Child, Cluster, WebServer, free_port, wait_for

TRIES = int(os.environ.get("CONNECTOR_SIGTERM_TRIES", "5"))
#: Each try takes a few seconds, more when the machine is busy; one that hangs takes GRACE + 5.
pytestmark = [
    pytest.mark.processes,
    pytest.mark.timeout(120 + TRIES * 30),
]


#: The cluster's CONNECTOR_SHUTDOWN_GRACE_SECONDS.
GRACE = 5.0


@pytest.fixture(scope="module")
def web(services: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A cluster with one web-only server and no worker; each test adds its own."""
    cluster = Cluster(Path(tmp_path_factory.mktemp("sigterm")))
    with cluster.serving(servers=1, workers=0):
        yield cluster


def finished(cluster: Cluster, token: str) -> bool:
    return cluster.statuses([token]).get(token) == "Finished"


def stop(child: Child) -> tuple[int, float]:
    """SIGTERM; the exit code (-9 if SIGKILL was needed) and how long it took."""
    started = time.monotonic()
    code = child.terminate(timeout=GRACE + 5)
    return code, time.monotonic() - started


def assert_all_clean(kind: str, outcomes: list[tuple[int, float]], child: Child) -> None:
    bad = [(n, code, round(took, 2)) for n, (code, took) in enumerate(outcomes)
           if code != 0 or took > GRACE]  # fmt: skip
    assert not bad, (
        f"{kind}: {len(bad)} of {len(outcomes)} tries not clean: {bad}\n" + (child.output()[-4000:])
    )


def test_runworker_exits_0_on_sigterm_every_time(web: Cluster):
    server = web.servers[0]
    outcomes = []
    for _ in range(TRIES):
        worker = web.add_worker()
        token = server.submit("NoOp")
        wait_for(lambda t=token: finished(web, t), 30, "the NoOp to finish", worker.child.output)
        web.workers.remove(worker)
        outcomes.append(stop(worker.child))
    assert_all_clean("runworker fetch", outcomes, worker.child)


def test_serve_with_its_worker_exits_0_on_sigterm_every_time(web: Cluster):
    outcomes = []
    for n in range(TRIES):
        port = free_port()
        child = Child(
            f"serve-{n}",
            [sys.executable, "manage.py", "serve", "--port", str(port)],
            env=web.env,
            log=web.folder / f"serve-{n}.log",
        )
        url = f"http://127.0.0.1:{port}/action=Fetch&FetchAction=NoOp&ResponseFormat=simplejson"
        answer = wait_for(lambda u=url: _get(u), 60, "serve to answer", child.output, 0.2)
        token = answer["autnresponse"]["responsedata"]["token"]
        wait_for(lambda t=token: finished(web, t), 30, "the NoOp to finish", child.output)
        outcomes.append(stop(child))
    assert_all_clean("serve", outcomes, child)


def test_web_only_serve_and_daphne_exit_0_on_sigterm_every_time(web: Cluster):
    outcomes = []
    for n in range(TRIES):
        if n % 2:
            server = WebServer(web, f"daphne-{n}")
            child = server.child
        else:
            port = free_port()
            child = Child(
                f"web-{n}",
                [sys.executable, "manage.py", "serve", "--no-worker", "--port", str(port)],
                env=web.env,
                log=web.folder / f"web-{n}.log",
            )
            server = _Client(port, child)
        server.wait_until_up()
        outcomes.append(stop(child))
    assert_all_clean("web only", outcomes, child)


class _Client:
    def __init__(self, port: int, child: Child) -> None:
        self.url = f"http://127.0.0.1:{port}/action=GetVersion&ResponseFormat=simplejson"
        self.child = child

    def wait_until_up(self) -> None:
        wait_for(lambda: _get(self.url), 60, "serve --no-worker to answer", self.child.output, 0.2)


def _get(url: str) -> dict[str, object] | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return dict(json.load(response))
    except OSError:
        return None
