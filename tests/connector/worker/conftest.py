"""Fixtures for the worker tests: diagnostic fetch actions and engines with threads."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from worker_helpers import wait_for

import connector.fetch.diagnostics  # noqa: F401 - registers NoOp and Sleep
from connector.worker.engine import WorkerEngine, current_engine, set_current_engine


@pytest.fixture
def start_engine() -> Iterator[Callable[..., WorkerEngine]]:
    """Start engines with threads; each is shut down (grace 0) when the test ends."""
    engines: list[WorkerEngine] = []

    def start(channel_name: str = "") -> WorkerEngine:
        engine = WorkerEngine()
        engine.start(channel_name=channel_name)
        engines.append(engine)
        # Started up once every slot has made its first claim.
        wait_for(engine.claiming.is_set)
        return engine

    yield start
    for engine in engines:
        engine.shutdown(grace=0)
    if current_engine() is not None:
        set_current_engine(None)
