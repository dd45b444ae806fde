"""The connector scaled out on loopback: two web-only daphne servers, three workers,
PostgreSQL and a Redis of the test's own (see ``scaleout_cluster``).

The tests share one cluster; the ``cluster`` fixture puts it back in shape
(three live workers, Redis up, queue resumed and empty) before each test.
"""

from __future__ import annotations

import contextlib
import re
import signal
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import redis
from processes import sign_in_at
from scaleout_cluster import OPERATOR, Cluster, WebServer, wait_for
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

pytestmark = [pytest.mark.processes, pytest.mark.timeout(300)]


def rows_by_token(cluster: Cluster, tokens: list[str], columns: str) -> dict[str, tuple]:
    rows = cluster.query(
        f"SELECT token, {columns} FROM connector_action WHERE token = ANY(%s)", tokens
    )
    return {row[0]: row[1:] for row in rows}


def wait_for_status(server: WebServer, token: str, *statuses: str, timeout: float = 30) -> dict:
    return wait_for(
        lambda: (s := server.status(token))["status"] in statuses and s,
        timeout,
        f"{token} to be {' or '.join(statuses)}",
    )


def session_cookie(cluster: Cluster, server: WebServer) -> str:
    jar, page = sign_in_at(server.base, OPERATOR, cluster.operator_password)
    assert page.geturl().endswith("/dashboard/")
    return next(f"{c.name}={c.value}" for c in jar if c.name == "sessionid")


def dashboard_socket(server: WebServer, cookie: str) -> ClientConnection:
    return connect(
        f"ws://127.0.0.1:{server.port}/ws/dashboard/",
        origin=server.base,  # type: ignore[arg-type]
        additional_headers={"Cookie": cookie},
        open_timeout=10,
    )


def row_statuses(socket: ClientConnection, pk: int, until: str, timeout: float = 30) -> list[str]:
    """The statuses in the socket's out-of-band rows for action ``pk``, until ``until``."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    row = re.compile(
        rf'<tr id="action-{pk}" hx-swap-oob="true">.*?class="status status-\w+">(\w+)<'
    )
    while until not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"no {until} row for action {pk} on the socket; saw {seen}"
        try:
            message = socket.recv(timeout=left)
        except TimeoutError:
            continue
        seen += row.findall(str(message).replace("\n", " "))
    return seen


def test_2000_actions_through_both_servers_each_run_exactly_once(cluster: Cluster):
    submitted = cluster.submit_many(2000, "RecordRun", clients=8)

    tokens = [token for token, _ in submitted]
    assert len(set(tokens)) == 2000
    assert Counter(server for _, server in submitted) == {"server-A": 1000, "server-B": 1000}
    cluster.wait_until_idle(timeout=180)
    # The database's side: each Finished, claimed once.
    rows = rows_by_token(cluster, tokens, "status, attempts, worker")
    assert len(rows) == 2000
    assert Counter(status for status, _, _ in rows.values()) == {"Finished": 2000}
    assert {attempts for _, attempts, _ in rows.values()} == {1}
    # The actions' side: each wrote its line once, from the worker the database names.
    ran = [(token, worker) for token, worker in cluster.runs() if token in rows]
    assert Counter(token for token, _ in ran) == Counter(tokens)
    assert all(rows[token][2] == worker for token, worker in ran)
    # And the work was spread: more than one worker process drained the queue.
    workers = {worker for _, worker in ran}
    assert workers <= {w.id for w in cluster.workers}
    assert len(workers) >= 2


def test_a_worker_killed_mid_action_loses_its_actions_to_recovery_and_the_others_go_on(
    cluster: Cluster,
):
    a, b = cluster.servers
    sleeps = [(a, b)[n % 2].submit("Sleep", Seconds="3", Steps="30") for n in range(6)]
    running = wait_for(
        lambda: (
            (r := rows_by_token(cluster, sleeps, "status, worker"))
            and all(status == "Processing" for status, _ in r.values())
            and r
        ),
        30,
        "the six Sleep actions to run",
        cluster.logs,
    )
    victim = max(cluster.workers, key=lambda w: sum(wid == w.id for _, wid in running.values()))
    lost = [token for token, (_, wid) in running.items() if wid == victim.id]
    kept = [token for token in sleeps if token not in lost]
    assert lost

    killed_at = datetime.now(UTC)
    victim.child.signal(signal.SIGKILL)
    assert victim.child.process.wait(10) == -signal.SIGKILL
    after = [token for token, _ in cluster.submit_many(20, "RecordRun", clients=4)]

    cluster.wait_until_idle(timeout=60)
    rows = rows_by_token(cluster, sleeps + after, "status, attempts, worker")
    # The killed worker's actions: recovered (queued again) and run to the end elsewhere.
    for token in lost:
        assert rows[token][0] == "Finished"
        assert rows[token][1] == 2
        assert rows[token][2] != victim.id
    (recovered_at,) = cluster.query(
        "SELECT max(l.logged_at) FROM connector_actionlogline l JOIN connector_action a"
        " ON a.id = l.action_id WHERE a.token = ANY(%s) AND l.message = %s",
        lost,
        f"Worker {victim.id} stopped responding; action queued again",
    )[0]
    assert recovered_at is not None
    # Within the lease (it was renewed at most a heartbeat before the kill), plus
    # a heartbeat for another worker to notice, plus slack for a loaded machine.
    assert killed_at < recovered_at < killed_at + timedelta(seconds=cluster.lease + 2.5)
    # The others were not disturbed: one attempt each, and new work ran meanwhile.
    for token in kept + after:
        assert rows[token][:2] == ("Finished", 1)
    assert Counter(t for t, _ in cluster.runs() if t in after) == Counter(after)


def test_redis_restarted_mid_run_loses_no_action_and_everything_reconnects(cluster: Cluster):
    a, b = cluster.servers
    submitted: list[str] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def keep_submitting(server: WebServer) -> None:
        while not stop.is_set():
            try:
                submitted.append(server.submit("RecordRun"))
            except BaseException as error:
                failures.append(error)
                return
            time.sleep(0.01)

    cookie = session_cookie(cluster, a)
    submitters = [threading.Thread(target=keep_submitting, args=(s,)) for s in (a, b)]
    with dashboard_socket(a, cookie) as before:
        for thread in submitters:
            thread.start()
        try:
            wait_for(lambda: len(submitted) >= 50, 30, "submissions before the restart")
            cluster.redis.restart(down_for=1.5)
            submitted_by_restart = len(submitted)
            wait_for(lambda: len(submitted) >= submitted_by_restart + 50, 30, "submissions after")
        finally:
            stop.set()
            for thread in submitters:
                thread.join(30)
        # The socket that was open across the restart is not left open and deaf:
        # the server closes it (the page then reconnects and re-reads), or it hears.
        token = b.submit("Sleep", Seconds="0.3", Steps="3")
        pk = rows_by_token(cluster, [token], "id")[token][0]
        with contextlib.suppress(ConnectionClosed):
            assert "Finished" in row_statuses(before, pk, "Finished", timeout=15)

    # Submitting never failed: the row is the queue of record, the wake-up only a hint.
    assert failures == []
    cluster.wait_until_idle(timeout=60)
    rows = rows_by_token(cluster, submitted, "status, attempts")
    assert len(rows) == len(submitted)
    assert set(rows.values()) == {("Finished", 1)}
    assert Counter(t for t, _ in cluster.runs() if t in rows) == Counter(submitted)
    # Each worker listens on Redis again: a blocking receive on the fetch channel
    # and one on its own channel (Stops).
    client = redis.Redis(host="127.0.0.1", port=cluster.redis.port)
    try:
        wait_for(
            lambda: (
                sum(c["cmd"] == "bzpopmin" for c in client.client_list())
                >= 2 * len(cluster.workers)
            ),
            20,
            "the workers to listen on the restarted Redis",
            cluster.logs,
        )
    finally:
        client.close()
    # Live updates resume: a socket opened on A (at the first try) hears a worker
    # run B's action.
    with dashboard_socket(a, cookie) as after:
        time.sleep(0.3)
        token = b.submit("Sleep", Seconds="0.3", Steps="3")
        pk = rows_by_token(cluster, [token], "id")[token][0]
        assert row_statuses(after, pk, "Finished")[-1] == "Finished"


def test_stop_and_cancel_sent_to_the_other_server_reach_the_action(cluster: Cluster):
    a, b = cluster.servers
    token = a.submit("Sleep", Seconds="60", Steps="6000")
    wait_for_status(a, token, "Processing")
    (worker,) = rows_by_token(cluster, [token], "worker")[token]
    assert worker in {w.id for w in cluster.workers}

    refused = b.queue_action("Cancel", Token=token)
    assert refused["responsedata"]["error"]["errorcode"] == "ERRORNOTQUEUED"
    assert b.queue_action("Stop", Token=token)["response"] == "SUCCESS"
    stopped = wait_for_status(a, token, "Stopped", "Finished", "Error", timeout=15)
    assert stopped["status"] == "Stopped"
    assert int(stopped["documentcounts"]["documentcount"][0]["@seen"]) > 0

    a.queue_action("Pause")
    try:
        queued = a.submit("Sleep", Seconds="60")
        assert b.queue_action("Cancel", Token=queued)["response"] == "SUCCESS"
    finally:
        a.queue_action("Resume")
    assert a.status(queued)["status"] == "Cancelled"
    refused = a.queue_action("Stop", Token=queued)
    assert refused["responsedata"]["error"]["errorcode"] == "ERRORNOTRUNNING"
    # Resumed, the workers claim what there is: the cancelled action is not among it.
    probe = b.submit("RecordRun")
    wait_for_status(a, probe, "Finished")
    assert rows_by_token(cluster, [queued], "status, started_at, worker")[queued] == (
        "Cancelled",
        None,
        "",
    )


def test_a_socket_on_server_a_sees_a_worker_run_an_action_submitted_through_server_b(
    cluster: Cluster,
):
    a, b = cluster.servers
    cookie = session_cookie(cluster, a)
    with dashboard_socket(a, cookie) as socket:
        # Idle longer than channels_redis's 5 s blocking receive: the socket must
        # still be open and listening afterwards (no read timeout tears it down).
        time.sleep(6)
        token = b.submit("Sleep", Seconds="1", Steps="10")
        pk = rows_by_token(cluster, [token], "id")[token][0]
        seen = row_statuses(socket, pk, "Finished")
    assert "Processing" in seen
    assert seen[-1] == "Finished"
    (worker,) = rows_by_token(cluster, [token], "worker")[token]
    assert worker in {w.id for w in cluster.workers}
    # One SECRET_KEY: the session signed in on A opens a socket on B too.
    with dashboard_socket(b, cookie) as on_b:
        token = a.submit("RecordRun")
        pk = rows_by_token(cluster, [token], "id")[token][0]
        assert row_statuses(on_b, pk, "Finished")[-1] == "Finished"
