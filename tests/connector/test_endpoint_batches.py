"""On SQLite the endpoint answers the requests that come together in one thread and one
transaction (connector.aci.batches, ``EndpointHandler.respond_together``)."""

from __future__ import annotations

import asyncio
import io
import json
import threading
from typing import Any

import pytest
from asgi_client import get
from asgiref.sync import sync_to_async
from django.db import OperationalError, connection
from django.db.backends.base.base import BaseDatabaseWrapper
from django.http import HttpResponse

from connector.aci.handler import EndpointHandler, close_answers
from connector.models import Action, AuditEntry

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "sqlite", reason="batches are SQLite's"),
]


class Held:
    """``respond_together`` recorded, the first batch held until ``release``; each
    request that ``respond`` answers (its query), and each commit."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.batches: list[list[bytes]] = []
        self.answered: list[bytes] = []
        self.commits = 0
        self.release = threading.Event()
        respond_together, respond = EndpointHandler.respond_together, EndpointHandler.respond
        commit = BaseDatabaseWrapper.commit

        def held(handler: EndpointHandler, requests: list[Any]) -> Any:
            self.batches.append([scope["query_string"] for scope, _ in requests])
            if len(self.batches) == 1:
                self.release.wait(30)
            return respond_together(handler, requests)

        def recorded(handler: EndpointHandler, scope: Any, body_file: Any, **kwargs: Any) -> Any:
            self.answered.append(scope["query_string"])
            return respond(handler, scope, body_file, **kwargs)

        def counted(wrapper: Any) -> None:
            commit(wrapper)
            self.commits += 1

        monkeypatch.setattr(EndpointHandler, "respond_together", held)
        monkeypatch.setattr(EndpointHandler, "respond", recorded)
        monkeypatch.setattr(BaseDatabaseWrapper, "commit", counted)


async def answered_together(handler: EndpointHandler, held: Held, queries: list[bytes]) -> list:
    """Answers to ``queries``, sent while a first request's batch is held: one batch."""
    assert handler.batches is not None
    handler.batches.overdue = 60  # held for as long as it takes, not overdue
    first = asyncio.create_task(get("/", b"action=GetVersion", app=handler, timeout=30))
    while not held.batches:
        await asyncio.sleep(0.01)
    together = [asyncio.create_task(get("/", query, app=handler, timeout=30)) for query in queries]
    # Each reaches the batches' queue in a few turns of the loop, no thread involved.
    for _ in range(100):
        if len(handler.batches._lines[asyncio.get_running_loop()].waiting) == len(queries):
            break
        await asyncio.sleep(0.01)
    held.release.set()
    await first
    return [json.loads(body)["autnresponse"] for _, body, _ in await asyncio.gather(*together)]


def fail_next_commit(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """The next commit fails (a disk error), later ones commit as before; the list
    says whether it failed."""
    commit = BaseDatabaseWrapper.commit
    failed: list[bool] = []

    def failing_once(wrapper: Any) -> None:
        if not failed:
            failed.append(True)
            raise OperationalError("disk I/O error")
        commit(wrapper)

    monkeypatch.setattr(BaseDatabaseWrapper, "commit", failing_once)
    return failed


@sync_to_async
def stored() -> tuple[list[str], int]:
    """The tokens of the actions stored, and how many submissions the audit log has."""
    tokens = list(Action.objects.values_list("token", flat=True))
    return tokens, AuditEntry.objects.filter(verb="submit").count()


def fetch(task: str) -> bytes:
    query = f"action=Fetch&FetchAction=Synchronize&TaskSections={task}&ResponseFormat=simplejson"
    return query.encode()


VERSION = b"action=GetVersion&ResponseFormat=simplejson"


async def test_requests_that_come_together_share_one_commit(monkeypatch, docs_task):
    held = Held(monkeypatch)
    handler = EndpointHandler()
    queries = [VERSION, *[fetch(docs_task.name)] * 4]
    try:
        answers = await answered_together(handler, held, queries)
    finally:
        handler.close_connections()
    assert held.batches == [[b"action=GetVersion"], queries]
    assert [answer["response"] for answer in answers] == ["SUCCESS"] * 5
    tokens = [answer["responsedata"]["token"] for answer in answers[1:]]
    assert len(set(tokens)) == 4
    assert sorted((await stored())[0]) == sorted(tokens)
    assert held.commits == 1, "the four Fetches were committed together"


async def test_a_batch_whose_commit_fails_is_answered_again_one_by_one(monkeypatch, docs_task):
    held = Held(monkeypatch)
    handler = EndpointHandler()
    failed = fail_next_commit(monkeypatch)  # then commit (and count) as before
    queries = [VERSION, *[fetch(docs_task.name)] * 3]
    try:
        answers = await answered_together(handler, held, queries)
    finally:
        handler.close_connections()
    assert failed == [True]
    assert [answer["response"] for answer in answers] == ["SUCCESS"] * 4
    tokens = [answer["responsedata"]["token"] for answer in answers[1:]]
    # Nothing of the failed commit is left, and each Fetch was stored once, on its own.
    assert len(set(tokens)) == 3
    assert (sorted((await stored())[0]), (await stored())[1]) == (sorted(tokens), 3)
    assert held.commits == 3
    # The GetVersion before the first write kept its answer; each Fetch was answered twice.
    assert held.answered.count(VERSION) == 1
    assert held.answered.count(fetch(docs_task.name)) == 6


async def test_a_request_waiting_for_the_write_lock_does_not_hold_the_ones_after_it(docs_task):
    from connector.sqlite.base import write_lock

    handler = EndpointHandler()
    lock = write_lock(str(connection.settings_dict["NAME"]))
    assert lock.acquire(timeout=5)
    try:
        waiting = asyncio.create_task(get("/", fetch(docs_task.name), app=handler, timeout=30))
        await asyncio.sleep(0.3)
        assert not waiting.done(), "the Fetch waits for the write lock"
        # Its batch is overdue: the next request is answered in a batch beside it.
        status, body, _ = await get("/", VERSION, app=handler, timeout=10)
        assert (status, json.loads(body)["autnresponse"]["response"]) == (200, "SUCCESS")
        assert not waiting.done()
    finally:
        lock.release()
    try:
        status, body, _ = await waiting
        assert json.loads(body)["autnresponse"]["response"] == "SUCCESS"
    finally:
        handler.close_connections()


def test_a_posted_request_is_read_again_when_its_batch_is_answered_again(monkeypatch, docs_task):
    """The second answer reads the request's body from its start (a POST's form)."""
    body = fetch(docs_task.name)
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    failed = fail_next_commit(monkeypatch)
    handler = EndpointHandler()
    try:
        [answer] = handler.respond_together([(scope, io.BytesIO(body))])
    finally:
        handler.close_connections()
    assert failed == [True]
    assert answer.content.startswith(b"{"), answer.content[:300]
    token = json.loads(answer.content)["autnresponse"]["responsedata"]["token"]
    assert list(Action.objects.values_list("token", flat=True)) == [token]


def test_the_answers_of_a_batch_nobody_waits_for_are_each_closed():
    answers = [HttpResponse(b"a"), HttpResponse(b"b")]
    close_answers(answers)
    close_answers(lone := HttpResponse(b"c"))
    assert [answer.closed for answer in [*answers, lone]] == [True, True, True]
