"""Helpers of the worker tests (imported by name: the test folders are not packages)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import connector.fetch.diagnostics  # noqa: F401 - registers NoOp and Sleep
from connector import queue
from connector.models import Action, Status


def wait_for(predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.01) -> Any:
    """Poll until ``predicate()`` is truthy; return its value or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"Timed out after {timeout} s waiting for {predicate}")
        time.sleep(interval)


def status_of(pk: int) -> str:
    return Action.objects.values_list("status", flat=True).get(pk=pk)


def wait_for_status(pk: int, *statuses: str, timeout: float = 5.0) -> str:
    return wait_for(lambda: (s := status_of(pk)) in statuses and s, timeout=timeout)


def sleep_action(seconds: float, steps: int = 100, **kwargs: Any) -> Action:
    return queue.submit_action(
        fetch_action="Sleep", params={"Seconds": str(seconds), "Steps": str(steps)}, **kwargs
    )


def noop_action(**kwargs: Any) -> Action:
    return queue.submit_action(fetch_action="NoOp", params={}, **kwargs)


FINAL = (Status.FINISHED, Status.ERROR, Status.CANCELLED, Status.STOPPED)
