"""Fetch actions racing on the same datastore rows, with real threads and connections.

Each action runs in a thread of its own (its own database connection), as
concurrent workers would run them. The actions are run directly, not claimed
through the queue: the rows must stay right even if two actions of one task
ever run at once (an admin, a recovered lease), so these tests do not lean on
how the queue hands out work. Run them on PostgreSQL too
(``DATABASE_URL=postgres://...``): there the rows are locked with
``SELECT ... FOR UPDATE``; on SQLite the IMMEDIATE transactions serialize them.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from fetch_helpers import doc_id, submit

from connector.fetch import base
from connector.models import Action, DatastoreDocument, FetchTask
from connector.repositories.filesystem import FileSystemRepository

threads = pytest.mark.django_db(transaction=True)

DOCUMENTS = 60
KEYS = ("KA", "KB", "KC", "KD")


@pytest.fixture
def many(tmp_path: Path) -> FetchTask:
    root = tmp_path / "many"
    root.mkdir()
    for n in range(DOCUMENTS):
        (root / f"d{n:02d}.txt").write_text(f"document {n}")
    return FetchTask.objects.create(name="DOCS", directory_paths=[str(root)])


def identifiers() -> list[str]:
    return [doc_id(f"d{n:02d}.txt") for n in range(DOCUMENTS)]


def update_xml(key: str, value: str) -> str:
    body = "".join(
        f'<identifier value="{i}"><metadata name="{key}" value="{value}"/></identifier>'
        for i in identifiers()
    )
    return f"<identifiersXML>{body}</identifiersXML>"


def insert_xml(key: str) -> str:
    content = base64.b64encode(b"new content").decode()
    body = "".join(
        f"<insert><reference>d{n:02d}.txt</reference>"
        f'<property name="{key}" value="{key.lower()}"/>'
        f"<file><type>content</type><content>{content}</content></file></insert>"
        for n in range(DOCUMENTS)
    )
    return f"<insertXML>{body}</insertXML>"


def run_together(actions: list[Action]) -> list[Action]:
    """Run the actions at once, one thread (and database connection) each; their ends."""
    start = threading.Barrier(len(actions))
    endings: dict[int, Any] = {}
    errors: list[BaseException] = []

    def work(action: Action) -> None:
        try:
            start.wait()
            endings[action.pk] = base.run(
                action, worker=f"w{action.pk}", stop_event=threading.Event()
            )
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    workers = [threading.Thread(target=work, args=(action,)) for action in actions]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert not errors
    assert not any(worker.is_alive() for worker in workers)
    return [endings[action.pk] for action in actions]


@threads
def test_concurrent_updates_of_the_same_documents_keep_every_key(
    many: FetchTask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 13's case: 4 Updates (KA..KD) over the same 60 documents at once."""
    from connector.fetch import update

    # A pause between reading a row and writing it back, where the race was.
    original = update.merge_metadata

    def slow_merge(current: dict[str, object], changes: dict[str, str]) -> dict[str, object]:
        time.sleep(0.001)
        return original(current, changes)

    monkeypatch.setattr(update, "merge_metadata", slow_merge)
    actions = [
        submit("Update", ConfigSection="DOCS", IdentifiersXML=update_xml(key, key.lower()))
        for key in KEYS
    ]
    endings = run_together(actions)
    for ending in endings:
        assert ending.error == ""
        assert len(ending.result["success"]) == DOCUMENTS and ending.result["failed"] == []
    rows = DatastoreDocument.objects.filter(task=many)
    assert rows.count() == DOCUMENTS
    lacking = [row.identifier for row in rows if set(row.metadata) != set(KEYS)]
    assert lacking == []
    assert {row.size for row in rows} == {-1}  # each sent again by the next Synchronize


@threads
def test_concurrent_inserts_and_updates_keep_every_field(
    many: FetchTask, monkeypatch: pytest.MonkeyPatch
) -> None:
    from connector.fetch import insert, update

    for module in (insert, update):
        original = module.merge_metadata

        def slow_merge(
            current: dict[str, object],
            changes: dict[str, str],
            original: Callable[..., dict[str, object]] = original,
        ) -> dict[str, object]:
            time.sleep(0.001)
            return original(current, changes)

        monkeypatch.setattr(module, "merge_metadata", slow_merge)
    actions = [
        submit("Update", ConfigSection="DOCS", IdentifiersXML=update_xml("KA", "ka")),
        submit("Insert", ConfigSection="DOCS", InsertXML=insert_xml("KB")),
        submit("Update", ConfigSection="DOCS", IdentifiersXML=update_xml("KC", "kc")),
        submit("Insert", ConfigSection="DOCS", InsertXML=insert_xml("KD")),
    ]
    for ending in run_together(actions):
        assert ending.error == "" and ending.result["failed"] == []
    rows = DatastoreDocument.objects.filter(task=many)
    assert [row.identifier for row in rows if set(row.metadata) != set(KEYS)] == []


class Window:
    """A pause inside one action's step, with a Hold run in it from another thread.

    ``patch`` makes ``cls.name`` (or a module function) announce itself, then wait up to
    ``WAIT`` seconds for the Hold to finish before going on. If the step holds the row's
    lock, the Hold cannot finish in the window (``hold_finished_inside`` stays False)
    and runs after; if it does not, the Hold runs inside the step's check-then-act.
    """

    WAIT = 1.0

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.hold_done = threading.Event()
        self.hold_finished_inside: bool | None = None

    def patch(self, monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> None:
        original: Callable[..., Any] = getattr(owner, name)

        def paused(*args: Any, **kwargs: Any) -> Any:
            if not self.entered.is_set():
                self.entered.set()
                self.hold_finished_inside = self.hold_done.wait(timeout=self.WAIT)
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, paused)

    def run_with_hold(self, action: Action, identifier: str) -> tuple[Any, Any]:
        """Run ``action`` in a thread and, once it is in the window, a Hold of ``identifier``."""
        hold = submit("Hold", Identifiers=identifier)
        endings: dict[str, Any] = {}

        def first() -> None:
            try:
                endings["action"] = base.run(action, worker="w1", stop_event=threading.Event())
            finally:
                connection.close()

        def second() -> None:
            try:
                assert self.entered.wait(timeout=30)
                endings["hold"] = base.run(hold, worker="w2", stop_event=threading.Event())
            finally:
                self.hold_done.set()
                connection.close()

        workers = [threading.Thread(target=first), threading.Thread(target=second)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=60)
        assert not any(worker.is_alive() for worker in workers)
        return endings["action"], endings["hold"]


@threads
def test_a_hold_racing_a_delete_never_leaves_a_held_document_deleted(
    many: FetchTask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hold check and the delete are one step: a Hold arriving between them waits,
    then finds the document gone."""
    window = Window()
    # Called after the Delete checked the hold, before the file goes.
    window.patch(monkeypatch, FileSystemRepository, "delete_document")
    identifier = doc_id("d00.txt")
    deleted, held = window.run_with_hold(submit("Delete", Identifiers=identifier), identifier)
    assert window.hold_finished_inside is False
    assert deleted.result["success"] == [identifier]
    assert held.result["failed"] == [{"identifier": identifier, "reason": "not found"}]
    assert not (Path(many.directory_paths[0]) / "d00.txt").exists()
    assert not DatastoreDocument.objects.filter(identifier=identifier, held=True).exists()


@threads
def test_a_hold_racing_an_insert_is_never_overwritten(
    many: FetchTask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Insert checks the hold when its bytes are ready to go in place, under the row's
    lock: a Hold that came in while it wrote keeps the document as it was."""
    window = Window()
    # Called once Insert started on the document, before its bytes are written.
    window.patch(monkeypatch, FileSystemRepository, "write_document")
    identifier = doc_id("d00.txt")
    inserted, held = window.run_with_hold(
        submit("Insert", ConfigSection="DOCS", InsertXML=insert_xml("KA")), identifier
    )
    assert window.hold_finished_inside is True  # nothing locked while the bytes are written
    assert held.result["success"] == [identifier]
    assert {"identifier": identifier, "reason": "held"} in inserted.result["failed"]
    assert (Path(many.directory_paths[0]) / "d00.txt").read_text() == "document 0"
    row = DatastoreDocument.objects.get(identifier=identifier)
    assert row.held and row.metadata == {}


@threads
def test_a_hold_never_lands_between_an_updates_check_and_its_write(
    many: FetchTask, monkeypatch: pytest.MonkeyPatch
) -> None:
    from connector.fetch import update

    window = Window()
    # Called after Update read the row and saw it not held, before it writes it back.
    window.patch(monkeypatch, update, "merge_metadata")
    identifier = doc_id("d00.txt")
    body = f'<identifier value="{identifier}"><metadata name="KA" value="ka"/></identifier>'
    action = submit(
        "Update", ConfigSection="DOCS", IdentifiersXML=f"<identifiersXML>{body}</identifiersXML>"
    )
    updated, held = window.run_with_hold(action, identifier)
    # The Hold had to wait for the Update's write: it comes after it, never inside.
    assert window.hold_finished_inside is False
    assert updated.result["success"] == [identifier]
    assert held.result["success"] == [identifier]
    row = DatastoreDocument.objects.get(identifier=identifier)
    assert row.held and row.metadata == {"KA": "ka"}


@threads
def test_an_update_between_synchronizes_read_and_its_record_is_sent_next_run(
    many: FetchTask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Synchronize read the rows (no metadata), sent the documents, and an Update landed
    before it recorded them: the record keeps the Update's metadata and leaves the rows
    "not ingested as they are", so the next run sends them with it."""
    from connector.fetch import synchronize
    from connector.ingest.idx import parse_idx

    ingest = tmp_path / "ingest"
    many.ingest_directory = str(ingest)
    many.save()
    original = synchronize.TaskSynchronizer._record
    updated: list[Any] = []

    def record_after_an_update(self: Any, pending: Any, gone: Any) -> None:
        if not updated:
            update = submit("Update", ConfigSection="DOCS", IdentifiersXML=update_xml("KA", "ka"))
            updated.extend(run_together([update]))  # another thread, committed before we go on
        original(self, pending, gone)

    monkeypatch.setattr(synchronize.TaskSynchronizer, "_record", record_after_an_update)
    [first] = run_together([submit("Synchronize", TaskSections="DOCS")])
    assert first.error == "" and first.counts["DOCS"]["added"] == DOCUMENTS
    assert updated[0].result["failed"] == []
    rows = DatastoreDocument.objects.filter(task=many)
    assert all(row.metadata == {"KA": "ka"} and row.size == -1 for row in rows)
    monkeypatch.setattr(synchronize.TaskSynchronizer, "_record", original)
    [second] = run_together([submit("Synchronize", TaskSections="DOCS")])
    assert second.counts["DOCS"]["updated"] == DOCUMENTS
    sent = parse_idx(sorted(ingest.glob("*.idx"))[-1].read_text())
    assert len(sent) == DOCUMENTS
    assert all(("KA", "ka") in document.fields for document in sent)
