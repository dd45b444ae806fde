"""FetchAction=Synchronize, run the way the worker runs it: submit, claim, execute."""

from __future__ import annotations

import base64
import http.server
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from xml.etree.ElementTree import Element

import pytest
from defusedxml import ElementTree

from connector import queue
from connector.fetch import synchronize
from connector.fetch.base import UnknownTask, execute, get_fetch_action
from connector.fetch.documents import NEVER
from connector.ingest import datastore as bulk
from connector.ingest import scan
from connector.ingest.idx import IdxDocument, parse_idx
from connector.models import Action, ActionLogLine, DatastoreDocument, FetchTask, Status
from connector.params import InvalidParameter, MissingParameter, Params
from connector.repositories import ItemNotFound, ItemUnreadable
from connector.repositories.filesystem import FileSystemRepository, encode_identifier

ALL = ["mail/inbox/hello.eml", "readme.txt", "reports/2026/q3.txt", "reports/2026/q4.txt",
       "reports/summary.md"]  # fmt: skip


@pytest.fixture
def ingest(tmp_path: Path) -> Path:
    return tmp_path / "ingest"


@pytest.fixture
def task(docs_task: FetchTask, ingest: Path) -> FetchTask:
    docs_task.ingest_directory = str(ingest)
    docs_task.save()
    return docs_task


def submit(params: dict[str, str]) -> Action:
    tasks = get_fetch_action("Synchronize").validate(Params(params))
    return queue.submit_action(fetch_action="Synchronize", params=params, tasks=tasks)


def run(action: Action, stop_event: threading.Event | None = None) -> Action:
    [claimed] = queue.claim_actions(queue="fetch", worker="w1", limit=1)
    assert claimed.pk == action.pk
    execute(claimed, worker="w1", stop_event=stop_event or threading.Event())
    return Action.objects.get(pk=action.pk)


def sync(**params: str) -> Action:
    return run(submit({"TaskSections": "DOCS", **params}))


def doc_id(path: str) -> str:
    return encode_identifier("DOCS", 0, path)


def batches(folder: Path, kind: str = "idx") -> list[Path]:
    return sorted(folder.glob(f"*.{kind}"))


def documents(folder: Path) -> list[IdxDocument]:
    return [doc for path in batches(folder) for doc in parse_idx(path.read_text("utf-8"))]


def deleted_references(folder: Path) -> list[str]:
    return [line for path in batches(folder, "del") for line in path.read_text().splitlines()]


def fields(document: IdxDocument) -> dict[str, str]:
    return dict(document.fields)


def datastore() -> dict[str, str]:
    return dict(DatastoreDocument.objects.values_list("identifier", "path"))


def counts(action: Action) -> dict[str, int]:
    return action.counts["DOCS"]


def no_temporary_files(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.startswith(".")]


# --- Incremental synchronization ------------------------------------------------------


def test_first_synchronize_ingests_every_document(task: FetchTask, ingest: Path) -> None:
    action = sync()
    assert action.status == Status.FINISHED, action.error
    assert counts(action) == {
        "seen": 5, "added": 5, "updated": 0, "deleted": 0, "unchanged": 0, "errors": 0,
        "extractfailed": 0,
    }  # fmt: skip
    assert action.progress == 100
    docs = {fields(d)["PATH"]: d for d in documents(ingest)}
    assert sorted(docs) == ALL
    readme = docs["readme.txt"]
    assert readme.reference == doc_id("readme.txt")
    assert readme.content == "Read me." and readme.title == "readme.txt"
    assert fields(readme)["DREREFERENCE"] == doc_id("readme.txt")
    assert fields(readme)["TASK"] == "DOCS" and fields(readme)["SIZE"] == "8"
    assert fields(readme)["CONTENTMODE"] == "text"
    assert fields(readme)["MODIFIED"].endswith("Z")
    assert sorted(datastore().values()) == ALL
    assert [p.name.startswith("DOCS-") for p in batches(ingest)] == [True]
    assert no_temporary_files(ingest)


def test_a_second_synchronize_with_nothing_changed_sends_nothing(
    task: FetchTask, ingest: Path
) -> None:
    sync()
    action = sync()
    assert counts(action) == {
        "seen": 5, "added": 0, "updated": 0, "deleted": 0, "unchanged": 5, "errors": 0,
        "extractfailed": 0,
    }  # fmt: skip
    assert len(batches(ingest)) == 1 and batches(ingest, "del") == []


def test_added_changed_and_deleted_documents_are_reported_and_sent(
    task: FetchTask, docs_tree: Path, ingest: Path
) -> None:
    sync()
    first = set(batches(ingest))
    (docs_tree / "reports/2026/q3.txt").write_text("Q3 figures, revised.")
    (docs_tree / "new.txt").write_text("New.")
    (docs_tree / "mail/inbox/hello.eml").unlink()
    action = sync()
    assert counts(action) == {
        "seen": 5, "added": 1, "updated": 1, "deleted": 1, "unchanged": 3, "errors": 0,
        "extractfailed": 0,
    }  # fmt: skip
    [second] = set(batches(ingest)) - first
    sent = {fields(d)["PATH"]: d.content for d in parse_idx(second.read_text())}
    assert sent == {"new.txt": "New.", "reports/2026/q3.txt": "Q3 figures, revised."}
    assert deleted_references(ingest) == [doc_id("mail/inbox/hello.eml")]
    assert sorted(datastore().values()) == sorted(
        [*(p for p in ALL if p != "mail/inbox/hello.eml"), "new.txt"]
    )
    # Names sort in the order the batches were written: the delete list came last.
    [delete_list] = batches(ingest, "del")
    assert sorted([*batches(ingest), delete_list])[-1] == delete_list


def test_a_touched_file_with_the_same_content_is_unchanged(
    task: FetchTask, docs_tree: Path, ingest: Path
) -> None:
    sync()
    readme = docs_tree / "readme.txt"
    os.utime(readme, (1_700_000_000, 1_700_000_000))
    action = sync()
    assert counts(action)["unchanged"] == 5 and counts(action)["updated"] == 0
    assert len(batches(ingest)) == 1
    # The new time is recorded, so the next run does not read the file again.
    row = DatastoreDocument.objects.get(identifier=doc_id("readme.txt"))
    assert row.modified.timestamp() == 1_700_000_000


def test_same_size_new_content_is_updated(task: FetchTask, docs_tree: Path) -> None:
    sync()
    readme = docs_tree / "readme.txt"
    readme.write_text("Read it.")
    os.utime(readme, (1_700_000_000, 1_700_000_000))
    assert counts(sync())["updated"] == 1


def test_identifiers_force_those_documents_to_be_sent_again(task: FetchTask, ingest: Path) -> None:
    sync()
    action = sync(Identifiers=f"{doc_id('readme.txt')},{doc_id('reports/summary.md')}")
    assert counts(action)["updated"] == 2 and counts(action)["unchanged"] == 3
    newest = batches(ingest)[-1]
    assert sorted(fields(d)["PATH"] for d in parse_idx(newest.read_text())) == [
        "readme.txt", "reports/summary.md",
    ]  # fmt: skip


def test_binary_files_are_sent_by_reference(task: FetchTask, docs_tree: Path, ingest: Path) -> None:
    (docs_tree / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0")
    (docs_tree / "latin1.txt").write_bytes("café".encode("latin-1"))
    sync()
    docs = {fields(d)["PATH"]: d for d in documents(ingest)}
    for path in ("logo.png", "latin1.txt"):
        assert docs[path].content == ""
        assert fields(docs[path])["CONTENTMODE"] == "reference"
        assert fields(docs[path])["SIZE"] == str((docs_tree / path).stat().st_size)


def test_content_that_looks_like_idx_cannot_break_the_document(
    task: FetchTask, docs_tree: Path, ingest: Path
) -> None:
    text = 'line\n#DREENDDOC\n#DREREFERENCE evil\n#DREFIELD X="y"\nend'
    (docs_tree / "tricky.txt").write_text(text)
    sync()
    docs = {d.reference: d for d in documents(ingest)}
    assert "evil" not in docs and docs[doc_id("tricky.txt")].content == text


def test_metadata_in_the_datastore_is_sent_as_fields(task: FetchTask, ingest: Path) -> None:
    sync()
    DatastoreDocument.objects.filter(identifier=doc_id("readme.txt")).update(
        metadata={"Department": 'Sales "EU"'}
    )
    sync(Identifiers=doc_id("readme.txt"))
    [document] = parse_idx(batches(ingest)[-1].read_text())
    assert fields(document)["DEPARTMENT"] == 'Sales "EU"'


def test_file_exclude_match_leaves_documents_out(task: FetchTask, ingest: Path) -> None:
    task.file_exclude_match = ["*.MD", "q4*"]
    task.save()
    action = sync()
    assert counts(action)["added"] == 3
    assert sorted(datastore().values()) == ["mail/inbox/hello.eml", "readme.txt",
                                            "reports/2026/q3.txt"]  # fmt: skip


def test_several_tasks_are_counted_apart(task: FetchTask, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.txt").write_text("a")
    FetchTask.objects.create(
        name="OTHER", directory_paths=[str(other)], ingest_directory=str(tmp_path / "in2")
    )
    action = sync(TaskSections="DOCS,OTHER")
    assert action.counts["DOCS"]["added"] == 5 and action.counts["OTHER"]["added"] == 1
    assert len(batches(tmp_path / "in2")) == 1


# --- Errors on documents ----------------------------------------------------------


def before_reading(monkeypatch: pytest.MonkeyPatch, name: str, do: Callable[[], object]) -> None:
    """Call ``do`` as a job is about to read the document ``name``, after the listing."""
    real = scan.read_small_document

    def read(folder: int, read_name: str):  # type: ignore[no-untyped-def]
        if read_name == name:
            do()
        return real(folder, read_name)

    monkeypatch.setattr(scan, "read_small_document", read)


def test_an_unreadable_file_is_an_error_and_the_others_are_ingested(
    task: FetchTask, ingest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse() -> None:
        # The tests run as root, whom no permission stops: the read itself is refused.
        raise PermissionError(13, "Permission denied")

    before_reading(monkeypatch, "readme.txt", refuse)
    action = sync()
    assert action.status == Status.FINISHED
    assert counts(action)["errors"] == 1 and counts(action)["added"] == 4
    assert doc_id("readme.txt") not in datastore()
    assert ActionLogLine.objects.filter(
        action=action, message__contains="Could not read readme.txt"
    ).filter(message__contains="Permission denied")
    monkeypatch.undo()
    # Not recorded, so the next run tries it again.
    assert counts(sync())["added"] == 1


def test_an_unreadable_large_file_is_an_error_and_the_others_are_ingested(
    task: FetchTask, docs_tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (docs_tree / "big.txt").write_bytes(b"x" * (scan.SMALL_DOCUMENT + 1))
    real = FileSystemRepository.read_chunks

    def read_chunks(self, identifier, **kwargs):  # type: ignore[no-untyped-def]
        if identifier == doc_id("big.txt"):
            raise ItemUnreadable("Cannot open document big.txt: Permission denied")
        return real(self, identifier, **kwargs)

    monkeypatch.setattr(FileSystemRepository, "read_chunks", read_chunks)
    action = sync()
    assert action.status == Status.FINISHED
    assert counts(action)["errors"] == 1 and counts(action)["added"] == 5
    assert doc_id("big.txt") not in datastore()


def test_a_file_deleted_between_listing_and_reading_is_an_error(
    task: FetchTask, docs_tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Listed already: the run is about to read it.
    before_reading(monkeypatch, "readme.txt", (docs_tree / "readme.txt").unlink)
    action = sync()
    assert action.status == Status.FINISHED
    assert counts(action)["errors"] == 1 and counts(action)["added"] == 4
    assert ActionLogLine.objects.filter(action=action, message__contains="no longer exists")


def test_a_file_swapped_for_a_fifo_after_the_listing_is_an_error_not_a_hang(
    task: FetchTask, docs_tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def swap() -> None:
        (docs_tree / "readme.txt").unlink()
        os.mkfifo(docs_tree / "readme.txt")

    before_reading(monkeypatch, "readme.txt", swap)
    action = sync()
    assert action.status == Status.FINISHED
    assert counts(action)["errors"] == 1 and counts(action)["added"] == 4
    assert ActionLogLine.objects.filter(action=action, message__contains="not a regular file")


def test_documents_of_a_folder_that_cannot_be_listed_are_not_deleted(
    task: FetchTask, docs_tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sync()
    real_scandir = os.scandir

    def scandir(path):  # type: ignore[no-untyped-def]
        # Folders are listed by descriptor.
        where = os.readlink(f"/proc/self/fd/{path}") if isinstance(path, int) else path
        if os.fspath(where) == str(docs_tree / "reports"):
            raise PermissionError(13, "Permission denied", where)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    action = sync()
    assert counts(action)["deleted"] == 0 and counts(action)["errors"] == 1
    assert len(datastore()) == 5
    # Its subfolders were not reached either, and keep their rows too.
    assert {"reports/2026/q3.txt", "reports/2026/q4.txt"} <= set(datastore_paths())


def test_a_task_whose_root_is_gone_fails_with_a_clear_error(
    task: FetchTask, docs_tree: Path
) -> None:
    action = submit({"TaskSections": "DOCS"})
    docs_tree.rename(docs_tree.with_name("gone"))
    action = run(action)
    assert action.status == Status.ERROR
    assert "does not exist" in action.error


# --- Stop and crashes ---------------------------------------------------------------


@pytest.fixture
def many_files(task: FetchTask, docs_tree: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    for n in range(45):
        (docs_tree / f"many/{n:03d}.txt").parent.mkdir(exist_ok=True)
        (docs_tree / f"many/{n:03d}.txt").write_text(f"Document {n}.")
    monkeypatch.setattr(synchronize, "BATCH_DOCUMENTS", 10)
    return [*ALL, *(f"many/{n:03d}.txt" for n in range(45))]


def test_a_stop_keeps_the_datastore_and_the_batches_in_agreement_and_the_next_run_resumes(
    many_files: list[str], ingest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stop = threading.Event()
    real_record = synchronize.TaskSynchronizer._record

    def record_then_stop(self, pending, gone):  # type: ignore[no-untyped-def]
        real_record(self, pending, gone)
        if len(datastore()) >= 20:
            stop.set()

    monkeypatch.setattr(synchronize.TaskSynchronizer, "_record", record_then_stop)
    action = run(submit({"TaskSections": "DOCS"}), stop)
    assert action.status == Status.STOPPED
    sent = [d.reference for d in documents(ingest)]
    assert len(sent) == 20 and counts(action)["added"] == 20
    assert sorted(sent) == sorted(datastore())
    assert no_temporary_files(ingest)

    action = sync()
    assert action.status == Status.FINISHED
    assert counts(action)["added"] == len(many_files) - 20
    assert counts(action)["unchanged"] == 20
    sent = [d.reference for d in documents(ingest)]
    assert sorted(sent) == sorted(doc_id(p) for p in many_files)  # each exactly once
    assert sorted(sent) == sorted(datastore())


def test_a_stop_while_reading_a_file_drops_the_unfinished_batch(
    many_files: list[str], ingest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stop = threading.Event()
    real = scan.read_small_document
    reads = 0

    def read_then_stop(folder: int, name: str):  # type: ignore[no-untyped-def]
        nonlocal reads
        reads += 1
        # Folders go depth first: readme.txt, mail/inbox, many/ (45), then reports/.
        # In reports/ four batches of ten are committed and seven documents
        # wait in the fifth.
        if reads == 49:
            stop.set()
        return real(folder, name)

    monkeypatch.setattr(scan, "read_small_document", read_then_stop)
    action = run(submit({"TaskSections": "DOCS"}), stop)
    assert action.status == Status.STOPPED
    sent = sorted(d.reference for d in documents(ingest))
    assert sent == sorted(datastore())
    assert len(sent) % 10 == 0 and 0 < len(sent) < len(many_files)
    assert counts(action)["added"] == len(sent) == 40
    assert no_temporary_files(ingest)


def test_a_failure_while_writing_a_batch_leaves_no_file_and_records_nothing(
    task: FetchTask, ingest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("connector.ingest.spool.os.fsync", broken_fsync)
    action = sync()
    assert action.status == Status.ERROR
    assert "No space left" in action.error
    assert list(ingest.iterdir()) == []
    assert datastore() == {}


# --- Ingest URL -----------------------------------------------------------------------


class Receiver(http.server.BaseHTTPRequestHandler):
    received: list[tuple[str, str, bytes]] = []
    status = 200

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.received.append(
            (self.headers["X-Ingest-Batch"], self.headers["X-Ingest-Kind"], body)
        )
        self.send_response(Receiver.status)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    Receiver.received = []
    Receiver.status = 200
    server = http.server.HTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/ingest"
    finally:
        server.shutdown()
        server.server_close()


def test_the_ingest_url_receives_every_batch(
    task: FetchTask, docs_tree: Path, ingest: Path, receiver: str
) -> None:
    task.ingest_url = receiver
    task.save()
    sync()
    (docs_tree / "readme.txt").unlink()
    sync()
    kinds = [kind for _, kind, _ in Receiver.received]
    assert kinds == ["documents", "delete"]
    name, _, body = Receiver.received[0]
    assert (ingest / name).read_bytes() == body
    assert len(parse_idx(body.decode())) == 5
    assert Receiver.received[1][2].decode() == doc_id("readme.txt") + "\n"


def test_a_batch_the_ingest_url_refuses_is_an_error_and_sent_again_next_time(
    task: FetchTask, ingest: Path, receiver: str
) -> None:
    task.ingest_url = receiver
    task.save()
    Receiver.status = 500
    action = sync()
    assert action.status == Status.FINISHED
    assert counts(action)["errors"] == 1 and counts(action)["added"] == 0
    assert datastore() == {} and batches(ingest) == []
    assert len(list(ingest.glob("*.idx.failed"))) == 1
    Receiver.status = 200
    action = sync()
    assert counts(action)["added"] == 5 and len(datastore()) == 5


class Redirector(http.server.BaseHTTPRequestHandler):
    """An ingest URL that redirects every POST to a landing page answering 200."""

    requests: list[str] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        Redirector.requests.append(f"POST {self.path}")
        self.send_response(302)
        self.send_header("Location", "/landing")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        Redirector.requests.append(f"GET {self.path}")
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_an_ingest_url_that_redirects_has_not_ingested_the_batch(
    task: FetchTask, ingest: Path
) -> None:
    """A 302 is not a delivery: the batch is kept as .failed, nothing is recorded, and
    the next run sends the documents again."""
    Redirector.requests = []
    server = http.server.HTTPServer(("127.0.0.1", 0), Redirector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        task.ingest_url = f"http://127.0.0.1:{server.server_address[1]}/ingest"
        task.save()
        action = sync()
        assert Redirector.requests == ["POST /ingest"]  # never followed to /landing
        assert counts(action)["errors"] == 1 and counts(action)["added"] == 0
        assert datastore() == {} and batches(ingest) == []
        assert len(list(ingest.glob("*.idx.failed"))) == 1
        logged = " ".join(
            ActionLogLine.objects.filter(action=action).values_list("message", flat=True)
        )
        assert "answered 302" in logged and "redirects are not followed" in logged
        action = sync()
        assert counts(action)["added"] == 0 and len(list(ingest.glob("*.idx.failed"))) == 2
    finally:
        server.shutdown()
        server.server_close()


def test_an_ingest_url_nobody_answers_is_an_error(task: FetchTask) -> None:
    task.ingest_url = "http://127.0.0.1:9/ingest"
    task.save()
    action = sync()
    assert action.status == Status.FINISHED
    assert counts(action)["errors"] == 1 and datastore() == {}


# --- Validation at submission -------------------------------------------------------


def validate(params: dict[str, str]) -> list[str]:
    return get_fetch_action("synchronize").validate(Params(params))


def test_validate_names_the_tasks(task: FetchTask) -> None:
    assert validate({"TaskSections": "docs"}) == ["DOCS"]


def test_validate_matches_task_names_in_any_case_and_script(task: FetchTask) -> None:
    FetchTask.objects.create(name="über", directory_paths=list(task.directory_paths))
    assert validate({"TaskSections": "ÜBER,docs,Über"}) == ["ÜBER", "DOCS", "ÜBER"]


def test_validate_requires_task_sections(db: None) -> None:
    with pytest.raises(MissingParameter, match="TaskSections"):
        validate({})


def test_validate_refuses_an_unknown_task(task: FetchTask) -> None:
    with pytest.raises(UnknownTask, match="configured: DOCS"):
        validate({"TaskSections": "DOCS,NOPE"})


@pytest.mark.parametrize(
    ("identifier", "reason"),
    [
        ("not-an-identifier!", "URL-safe base64"),
        (encode_identifier("MAIL", 0, "a.txt"), "belongs to fetch task MAIL"),
        (encode_identifier("DOCS", 0, "nowhere.txt"), "DOCS is at"),
        (encode_identifier("DOCS", 0, "reports"), "names a folder"),
        (
            base64.urlsafe_b64encode(b"FS1\0DOCS\x000\0../outside.txt").rstrip(b"=").decode(),
            "leaves the task's root",
        ),
    ],
)
def test_validate_refuses_identifiers_that_are_not_documents_of_the_tasks(
    task: FetchTask, identifier: str, reason: str
) -> None:
    with pytest.raises(InvalidParameter, match=reason) as refused:
        validate({"TaskSections": "DOCS", "Identifiers": f"{doc_id('readme.txt')},{identifier}"})
    assert refused.value.name == "Identifiers"


# --- Through the action endpoint ------------------------------------------------------


def test_synchronize_end_to_end_reports_its_counts_in_get_status(
    task: FetchTask, docs_tree: Path, client: Any
) -> None:
    def call(**params: str) -> Element:
        response = client.get("/?" + urlencode(params))
        assert response.status_code == 200
        return ElementTree.fromstring(response.content)

    def synchronize_now() -> Element:
        answer = call(action="Fetch", FetchAction="Synchronize", TaskSections="docs")
        token = answer.findtext("responsedata/token")
        assert token
        [claimed] = queue.claim_actions(queue="fetch", worker="w1", limit=1)
        execute(claimed, worker="w1", stop_event=threading.Event())
        status = call(action="QueueInfo", QueueName="fetch", QueueAction="GetStatus", Token=token)
        found = status.find("responsedata/actions/action")
        assert found is not None
        return found

    first = synchronize_now()
    assert first.findtext("status") == "Finished"
    assert first.findtext("fetchaction") == "SYNCHRONIZE"
    count = first.find("documentcounts/documentcount")
    assert count is not None and count.get("task") == "DOCS"
    assert (count.get("seen"), count.get("added"), count.get("errors")) == ("5", "5", "0")

    (docs_tree / "readme.txt").unlink()
    count = synchronize_now().find("documentcounts/documentcount")
    assert count is not None
    assert (count.get("deleted"), count.get("unchanged")) == ("1", "4")


def test_an_unknown_task_is_refused_by_the_endpoint(task: FetchTask, client: Any) -> None:
    response = client.get("/?action=Fetch&FetchAction=Synchronize&TaskSections=NOPE")
    root = ElementTree.fromstring(response.content)
    assert root.findtext("responsedata/error/errorcode") == "ERRORPARAMINVALID"
    assert not Action.objects.exists()


# --- Chunks: the listing is compared and the gone are found a few at a time -----------


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two documents per job, per folder's rows, per lookup and per page of rows, so
    five documents span several jobs, folders are split into slices, and every
    rule is exercised across those boundaries."""
    monkeypatch.setattr(scan, "JOB_DOCUMENTS", 2)
    monkeypatch.setattr(bulk, "FOLDER_ROWS", 2)
    monkeypatch.setattr(bulk, "LOOKUP_CHUNK", 2)
    monkeypatch.setattr(bulk, "PAGE", 2)
    monkeypatch.setattr(synchronize, "BATCH_DOCUMENTS", 3)


def test_changes_are_found_across_chunks(
    task: FetchTask, docs_tree: Path, ingest: Path, small_chunks: None
) -> None:
    assert counts(sync())["added"] == 5
    assert sorted(datastore_paths()) == ALL
    (docs_tree / "readme.txt").write_text("Read me, changed.")
    (docs_tree / "reports/2026/q4.txt").write_text("Q4 figures, revised and longer.")
    (docs_tree / "a-new.txt").write_text("New.")
    (docs_tree / "reports/summary.md").unlink()
    (docs_tree / "mail/inbox/hello.eml").unlink()
    action = sync()
    assert counts(action) == {
        "seen": 4, "added": 1, "updated": 2, "deleted": 2, "unchanged": 1, "errors": 0,
        "extractfailed": 0,
    }  # fmt: skip
    assert sorted(deleted_references(ingest)) == sorted(
        [doc_id("reports/summary.md"), doc_id("mail/inbox/hello.eml")]
    )
    assert sorted(datastore_paths()) == ["a-new.txt", "readme.txt", "reports/2026/q3.txt",
                                         "reports/2026/q4.txt"]  # fmt: skip
    # And then nothing is left to do.
    assert counts(sync())["unchanged"] == 4


def test_every_gone_document_is_deleted_whichever_page_its_row_is_on(
    task: FetchTask, docs_tree: Path, ingest: Path, small_chunks: None
) -> None:
    sync()
    for path in ALL:
        (docs_tree / path).unlink()
    action = sync()
    assert counts(action)["deleted"] == 5 and counts(action)["seen"] == 0
    assert sorted(deleted_references(ingest)) == sorted(doc_id(p) for p in ALL)
    assert datastore() == {}


def test_a_stop_across_chunks_resumes_with_every_document_sent_once(
    many_files: list[str], ingest: Path, small_chunks: None
) -> None:
    action = run(submit({"TaskSections": "DOCS"}), StopAfter(80))
    assert action.status == Status.STOPPED
    assert sorted(d.reference for d in documents(ingest)) == sorted(datastore())
    assert sync().status == Status.FINISHED
    sent = [d.reference for d in documents(ingest)]
    assert sorted(sent) == sorted(doc_id(p) for p in many_files)
    assert sorted(sent) == sorted(datastore())


def test_a_symlink_created_in_the_tree_is_never_followed(
    task: FetchTask, docs_tree: Path, ingest: Path, tmp_path: Path
) -> None:
    sync()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    (docs_tree / "secret.txt").symlink_to(outside / "secret.txt")
    (docs_tree / "outside").symlink_to(outside, target_is_directory=True)
    (docs_tree / "reports/again").symlink_to(docs_tree / "reports", target_is_directory=True)
    (docs_tree / "readme-link.txt").symlink_to(docs_tree / "readme.txt")
    action = sync()
    assert counts(action) == {
        "seen": 5, "added": 0, "updated": 0, "deleted": 0, "unchanged": 5, "errors": 0,
        "extractfailed": 0,
    }  # fmt: skip
    assert all("secret" not in path.read_text() for path in batches(ingest))
    assert sorted(datastore_paths()) == ALL


def test_a_document_replaced_by_a_symlink_is_deleted_not_followed(
    task: FetchTask, docs_tree: Path, ingest: Path, tmp_path: Path
) -> None:
    sync()
    (tmp_path / "secret.txt").write_text("secret")
    (docs_tree / "readme.txt").unlink()
    (docs_tree / "readme.txt").symlink_to(tmp_path / "secret.txt")
    action = sync()
    assert counts(action)["deleted"] == 1 and counts(action)["added"] == 0
    assert deleted_references(ingest) == [doc_id("readme.txt")]
    assert all("secret" not in path.read_text() for path in batches(ingest))


def test_rows_made_while_the_run_lists_are_not_judged_by_it(
    task: FetchTask, docs_tree: Path, ingest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A row another action makes after this run took stock of the datastore
    # (an Update of a document this run has not listed yet, say) is not a
    # document gone: the run never looked for it.
    sync()
    (docs_tree / "late.txt").write_text("Late.")
    (docs_tree / "readme.txt").unlink()  # so the run does look for rows gone
    real_folder_rows = bulk.folder_rows

    def folder_rows_then_another_action(task, folder):  # type: ignore[no-untyped-def]
        # One row in a folder the run lists, one in a folder it never lists.
        for path, parent in (("elsewhere.txt", ""), ("nowhere/else.txt", "nowhere")):
            DatastoreDocument.objects.get_or_create(
                task=task, identifier=doc_id(path),
                defaults={"path": path, "folder": doc_id(parent), "size": -1,
                          "last_ingested_at": NEVER},
            )  # fmt: skip
        return real_folder_rows(task, folder)

    monkeypatch.setattr(bulk, "folder_rows", folder_rows_then_another_action)
    action = sync()
    assert counts(action)["deleted"] == 1 and counts(action)["added"] == 1
    assert deleted_references(ingest) == [doc_id("readme.txt")]
    assert {doc_id("elsewhere.txt"), doc_id("nowhere/else.txt")} <= set(datastore())


def datastore_paths() -> list[str]:
    return list(datastore().values())


class StopAfter(threading.Event):
    """A stop event that is set once it has been looked at ``n`` times."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.left = n

    def is_set(self) -> bool:
        self.left -= 1
        return self.left < 0


# --- Leftover temporary files -------------------------------------------------------


def _aged(path: Path, seconds: float) -> Path:
    then = time.time() - seconds
    os.utime(path, (then, then))
    return path


def test_the_next_run_removes_batches_a_killed_run_left_and_nothing_else(
    task: FetchTask, ingest: Path
) -> None:
    """A SIGKILL leaves .<batch>.tmp; the task's next Synchronize removes it once stale."""
    ingest.mkdir()
    stale = ingest / ".DOCS-20260101T000000000000Z-000001.idx.k3j_9x2a.tmp"
    fresh = ingest / ".DOCS-20260101T000000000000Z-000002.del.q8w7e6r5.tmp"
    kept = [
        fresh,  # maybe a run still writing: untouched for less than STALE_BATCH_SECONDS
        ingest / ".OTHER-20260101T000000000000Z-000001.idx.k3j_9x2a.tmp",  # another task's
        ingest / ".DOCS-notes.tmp",  # not a name our batches get
        ingest / "DOCS-20260101T000000000000Z-000001.idx.failed",  # kept for inspection
    ]
    for path in (stale, *kept):
        path.write_bytes(b"#DREREFERENCE half")
        if path is not fresh:
            _aged(path, 3600)
    action = sync()
    assert action.status == Status.FINISHED
    assert not stale.exists()
    assert all(path.exists() for path in kept)
    # The run's own batch went in place: no temporary file of it is left either.
    assert {p for p in ingest.iterdir() if p.name.endswith(".tmp")} == set(kept[:3])


def test_a_leftover_insert_file_in_a_root_is_never_a_document_and_goes_once_stale(
    task: FetchTask, docs_tree: Path, ingest: Path
) -> None:
    stale = docs_tree / "reports/.q5.txt.0123456789ab.tmp"  # a killed Insert's
    fresh = docs_tree / ".readme.txt.ba9876543210.tmp"  # maybe an Insert writing now
    fresh.write_text("being written")
    stale.write_text("half an insert")
    _aged(stale, 7200)
    action = sync()
    assert action.status == Status.FINISHED
    assert counts(action)["added"] == 5  # the tree's own documents only
    assert not any(".tmp" in path for path in datastore_paths())
    assert not stale.exists() and fresh.exists()
    # Nor does the repository list or show it.
    repository = FileSystemRepository(task)
    names = [item.name for item in repository.children(repository.identifier(0, ""))]
    assert fresh.name not in names
    with pytest.raises(ItemNotFound):
        repository.stat(repository.identifier(0, fresh.name))


def test_an_unusable_ingest_folder_is_named_without_its_path(task: FetchTask, ingest: Path) -> None:
    ingest.parent.mkdir(parents=True, exist_ok=True)
    ingest.write_text("a file where the folder should be")
    action = sync()
    assert "The ingest folder of fetch task DOCS cannot be used" in action.error
    assert str(ingest) not in action.error and str(ingest.parent) not in action.error
