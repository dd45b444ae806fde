"""Helpers for the dashboard's tests: users of each role, actions put in states by the queue."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Permission, User

import connector.fetch.diagnostics  # noqa: F401  (registers NoOp and Sleep)
from connector import queue
from connector.models import Action

PASSWORD = "a-long-enough-password"


def make_user(username: str, *permissions: str) -> User:
    user = User.objects.create_user(username, password=PASSWORD)
    for codename in permissions:
        user.user_permissions.add(
            Permission.objects.get(codename=codename, content_type__app_label="connector")
        )
    return user


def submit(**kwargs: Any) -> Action:
    kwargs.setdefault("fetch_action", "NoOp")
    kwargs.setdefault("params", {})
    return queue.submit_action(**kwargs)


def start(action: Action, worker: str = "w") -> Action:
    """Claim the oldest queued action of the queue (make sure it is ``action``)."""
    claimed = queue.claim_actions(queue="fetch", worker=worker, limit=1)
    assert [a.pk for a in claimed] == [action.pk]
    action.refresh_from_db()
    return action


def finish(action: Action, worker: str = "w", **kwargs: Any) -> None:
    kwargs.setdefault("counts", {})
    kwargs.setdefault("result", {})
    kwargs.setdefault("progress", 100)
    assert queue.end_action(pk=action.pk, worker=worker, ending=queue.Ending(**kwargs))
