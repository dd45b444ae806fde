"""Writes that arrive together share one commit on SQLite (connector/group_commit.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.db import OperationalError, connection, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from connector import queue
from connector.group_commit import GroupCommit, SharedTransaction
from connector.models import Action, WorkerProcess

pytestmark = pytest.mark.django_db(transaction=True)

sqlite_only = pytest.mark.skipif(
    connection.vendor != "sqlite", reason="PostgreSQL groups its commits itself"
)


def add(name: str) -> str:
    now = timezone.now()
    WorkerProcess.objects.create(id=name, hostname="h", pid=1, started_at=now, heartbeat_at=now)
    return name


def stored() -> set[str]:
    return set(WorkerProcess.objects.values_list("id", flat=True))


@pytest.fixture
def commits(monkeypatch) -> list[str]:
    """The threads that committed, one entry per commit."""
    seen: list[str] = []
    commit = BaseDatabaseWrapper.commit

    def counting(self: Any) -> None:
        commit(self)
        seen.append(threading.current_thread().name)

    monkeypatch.setattr(BaseDatabaseWrapper, "commit", counting)
    return seen


def in_threads(group: GroupCommit, writes: dict[str, Callable[[], str]]) -> dict[str, Any]:
    """Run each write through ``group`` in a thread of its own; each one's outcome,
    and whether its row could be read the moment ``run`` returned."""
    outcomes: dict[str, Any] = {}

    def run(name: str, write: Callable[[], str]) -> None:
        try:
            outcomes[name] = group.run(write)
            outcomes[name + " readable"] = WorkerProcess.objects.filter(id=name).exists()
        except Exception as error:
            outcomes[name] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=item, name=item[0]) for item in writes.items()]
    for thread in threads:
        thread.start()
    return {"threads": threads, "outcomes": outcomes}


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_a_lone_write_is_committed_before_it_returns(commits):
    group = GroupCommit()
    assert group.run(lambda: add("alone")) == "alone"
    assert stored() == {"alone"}
    assert len(commits) == 1


def behind_a_held_write(group: GroupCommit, writes: dict[str, Callable[[], str]]) -> dict[str, Any]:
    """A write named "first" starts a commit and is held in it until ``writes``, each in a
    thread of its own, all wait for it; then it goes on. Every outcome, once all ended."""
    release = threading.Event()

    def first() -> str:
        release.wait(10)
        return add("first")

    started = in_threads(group, {"first": first})
    wait_until(lambda: group._committing)
    others = in_threads(group, writes)
    wait_until(lambda: len(group._waiting) == len(writes))
    release.set()
    for thread in started["threads"] + others["threads"]:
        thread.join(timeout=10)
    return {**started["outcomes"], **others["outcomes"]}


@sqlite_only
def test_writes_that_come_while_one_commits_share_the_next_commit(commits):
    group = GroupCommit()
    outcomes = behind_a_held_write(
        group, {name: (lambda name=name: add(name)) for name in ("a", "b", "c")}
    )
    assert {name: outcomes[name] for name in ("first", "a", "b", "c")} == {
        "first": "first", "a": "a", "b": "b", "c": "c"
    }  # fmt: skip
    # Each returned only once its write was committed and readable by anyone.
    assert all(outcomes[name + " readable"] for name in ("first", "a", "b", "c"))
    assert stored() == {"first", "a", "b", "c"}
    # One commit for the first write, one for the three that waited for it.
    assert len(commits) == 2
    assert commits[0] == "first"


@sqlite_only
def test_a_write_that_fails_in_a_shared_commit_is_undone_alone(commits):
    group = GroupCommit()

    def failing() -> str:
        add("half-done")
        raise ValueError("no room")

    outcomes = behind_a_held_write(
        group, {"a": lambda: add("a"), "bad": failing, "c": lambda: add("c")}
    )
    assert isinstance(outcomes["bad"], ValueError)
    assert (outcomes["a"], outcomes["c"]) == ("a", "c")
    assert stored() == {"first", "a", "c"}
    assert len(commits) == 2


def test_a_write_inside_the_callers_transaction_is_part_of_it(commits):
    group = GroupCommit()
    with pytest.raises(RuntimeError), transaction.atomic():
        group.run(lambda: add("inside"))
        assert stored() == {"inside"}
        raise RuntimeError("the caller changes its mind")
    assert stored() == set()
    assert commits == []


def test_a_write_from_the_commits_own_hook_is_committed_not_waited_for():
    group = GroupCommit()

    def with_a_follow_up() -> str:
        transaction.on_commit(lambda: group.run(lambda: add("follow-up")))
        return add("first")

    thread = threading.Thread(
        target=lambda: (group.run(with_a_follow_up), connection.close()), daemon=True
    )
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive(), "the hook waited for the commit that runs it"
    assert stored() == {"first", "follow-up"}


def test_a_lone_write_that_fails_leaves_nothing_and_raises():
    group = GroupCommit()

    def failing() -> str:
        add("half-done")
        raise ValueError("no room")

    with pytest.raises(ValueError, match="no room"):
        group.run(failing)
    assert stored() == set()


@pytest.fixture
def shared_runs(monkeypatch) -> list[Any]:
    """The writes that went through the endpoint's shared commits."""
    runs: list[Any] = []
    run = queue._SHARED_COMMITS.run

    def counting(write: Callable[[], Any]) -> Any:
        runs.append(write)
        return run(write)

    monkeypatch.setattr(queue._SHARED_COMMITS, "run", counting)
    return runs


def test_every_submission_goes_through_the_group_commit(shared_runs):
    action = queue.submit_action(queue="fetch", fetch_action="Identifiers", params={})
    assert len(shared_runs) == 1
    assert Action.objects.filter(pk=action.pk, token=action.token).exists()


def test_cancel_and_stop_go_through_the_group_commit(shared_runs):
    from connector.models import AuditEntry, Status

    cancelled = queue.submit_action(queue="fetch", fetch_action="Identifiers", params={})
    running = queue.submit_action(queue="fetch", fetch_action="Identifiers", params={})
    Action.objects.filter(pk=running.pk).update(status=Status.PROCESSING, worker="w1")
    queue.cancel_action(pk=cancelled.pk, cancelled_from="10.0.0.1")
    queue.request_stop(pk=running.pk, stopped_from="10.0.0.2")
    assert len(shared_runs) == 4
    assert Action.objects.get(pk=cancelled.pk).status == Status.CANCELLED
    assert Action.objects.get(pk=running.pk).stop_requested
    # Each audit entry names its action, read back by the one guarded statement.
    entries = {
        entry.verb: (entry.token, entry.queue, entry.client)
        for entry in AuditEntry.objects.filter(verb__in=["cancel", "stop"])
    }
    assert entries == {
        "cancel": (cancelled.token, "fetch", "10.0.0.1"),
        "stop": (running.token, "fetch", "10.0.0.2"),
    }


# --- SharedTransaction: the writes of the requests one thread answers in turn --------


def test_writes_in_a_shared_transaction_are_committed_once_at_its_end(commits):
    group, shared = GroupCommit(), SharedTransaction()
    with shared.current():
        assert group.run(lambda: add("a")) == "a"
        assert shared.opened and connection.in_atomic_block
        group.run(lambda: add("b"))
        assert commits == [], "nothing is committed before the end"
    assert shared.commit() is True
    assert len(commits) == 1
    assert stored() == {"a", "b"}
    assert not connection.in_atomic_block


def test_a_shared_transaction_without_a_write_opens_nothing(commits):
    shared = SharedTransaction()
    with shared.current():
        assert not WorkerProcess.objects.exists()
    assert not shared.opened and not connection.in_atomic_block
    assert shared.commit() is True
    assert commits == []


def test_a_write_that_fails_in_a_shared_transaction_is_undone_alone():
    group, shared = GroupCommit(), SharedTransaction()

    def failing() -> str:
        add("half-done")
        raise ValueError("no room")

    with shared.current():
        group.run(lambda: add("a"))
        with pytest.raises(ValueError, match="no room"):
            group.run(failing)
        group.run(lambda: add("b"))
    assert shared.commit() is True
    assert stored() == {"a", "b"}


def test_a_first_write_that_fails_leaves_the_shared_transaction_unopened(commits):
    group, shared = GroupCommit(), SharedTransaction()

    def failing() -> str:
        add("half-done")
        raise ValueError("no room")

    with shared.current():
        with pytest.raises(ValueError, match="no room"):
            group.run(failing)
        assert not shared.opened and not connection.in_atomic_block
        assert stored() == set()
        group.run(lambda: add("a"))
    assert shared.commit() is True
    assert stored() == {"a"}
    assert len(commits) == 1


def test_a_shared_transaction_whose_commit_fails_stores_nothing_and_says_so(monkeypatch):
    group, shared = GroupCommit(), SharedTransaction()
    with shared.current():
        group.run(lambda: add("a"))

    def failing_commit(self: Any) -> None:
        raise OperationalError("disk I/O error")

    with monkeypatch.context() as patched:
        patched.setattr(BaseDatabaseWrapper, "commit", failing_commit)
        assert shared.commit() is False
    assert not connection.in_atomic_block
    assert stored() == set()


def test_a_shared_transaction_left_unusable_is_rolled_back_and_says_so():
    group, shared = GroupCommit(), SharedTransaction()
    with shared.current():
        group.run(lambda: add("a"))
        # What a write that failed outside a savepoint leaves: Django would roll
        # back at the block's end without a word.
        connection.needs_rollback = True
    assert shared.commit() is False
    assert not connection.in_atomic_block
    assert stored() == set()


def test_a_write_in_the_callers_own_transaction_stays_in_it(commits):
    group, shared = GroupCommit(), SharedTransaction()
    with shared.current(), transaction.atomic():
        group.run(lambda: add("a"))
        assert not shared.opened
    assert stored() == {"a"}
    assert len(commits) == 1
    assert shared.commit() is True


def test_a_shared_transaction_rolled_back_stores_nothing():
    group, shared = GroupCommit(), SharedTransaction()
    with shared.current():
        group.run(lambda: add("a"))
    shared.roll_back()
    assert not shared.opened and not connection.in_atomic_block
    assert stored() == set()


def test_a_shared_transaction_is_current_only_in_its_thread_and_its_block():
    group, shared = GroupCommit(), SharedTransaction()
    with shared.current():
        thread = threading.Thread(
            target=lambda: (group.run(lambda: add("elsewhere")), connection.close())
        )
        thread.start()
        thread.join(timeout=10)
    group.run(lambda: add("after"))
    assert not shared.opened
    assert stored() == {"elsewhere", "after"}
