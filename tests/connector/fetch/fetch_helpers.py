"""Running fetch actions the way the worker does: validate, submit, claim, execute."""

from __future__ import annotations

import threading

from connector import queue
from connector.fetch.base import execute, get_fetch_action
from connector.models import Action
from connector.params import Params
from connector.repositories.filesystem import encode_identifier


def submit(fetch_action: str, **params: str) -> Action:
    """Validate as the endpoint does (raises ParameterError), then queue."""
    tasks = get_fetch_action(fetch_action).validate(Params(params))
    return queue.submit_action(fetch_action=fetch_action, params=params, tasks=tasks)


def run(action: Action, stop_event: threading.Event | None = None) -> Action:
    [claimed] = queue.claim_actions(queue="fetch", worker="w1", limit=1)
    assert claimed.pk == action.pk
    execute(claimed, worker="w1", stop_event=stop_event or threading.Event())
    return Action.objects.get(pk=action.pk)


def fetch(fetch_action: str, **params: str) -> Action:
    return run(submit(fetch_action, **params))


def doc_id(path: str, task: str = "DOCS") -> str:
    return encode_identifier(task, 0, path)


def failures(action: Action) -> dict[str, str]:
    return {f["identifier"]: f["reason"] for f in action.result.get("failed", [])}


class StopAfter(threading.Event):
    """A stop event that is set once it has been looked at ``n`` times."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.left = n

    def is_set(self) -> bool:
        self.left -= 1
        return self.left < 0
