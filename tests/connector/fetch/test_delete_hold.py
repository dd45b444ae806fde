"""FetchAction=Delete (Remove), Hold and ReleaseHold."""

from __future__ import annotations

import base64
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from xml.etree.ElementTree import Element

import pytest
from defusedxml import ElementTree
from fetch_helpers import StopAfter, doc_id, failures, fetch, run, submit

from connector import queue
from connector.fetch.base import UnknownTask, execute
from connector.ingest.idx import parse_idx
from connector.models import Action, DatastoreDocument, FetchTask, Status
from connector.params import InvalidParameter, MissingParameter
from connector.repositories.filesystem import FileSystemRepository, encode_identifier


@pytest.fixture
def task(docs_task: FetchTask, tmp_path: Path) -> FetchTask:
    docs_task.ingest_directory = str(tmp_path / "ingest")
    docs_task.save()
    return docs_task


def held() -> set[str]:
    return set(DatastoreDocument.objects.filter(held=True).values_list("identifier", flat=True))


# --- Delete ---------------------------------------------------------------------------


def test_delete_removes_documents_and_reports_each(task: FetchTask, docs_tree: Path) -> None:
    missing = doc_id("nope.txt")
    action = fetch("Delete", Identifiers=f"{doc_id('readme.txt')},{missing},{doc_id('reports')}")
    assert action.status == Status.FINISHED, action.error
    assert action.counts == {"DOCS": {"deleted": 1, "errors": 2}}
    assert action.result["success"] == [doc_id("readme.txt")]
    assert failures(action) == {missing: "not found", doc_id("reports"): "not found"}
    assert not (docs_tree / "readme.txt").exists()
    assert (docs_tree / "reports/summary.md").exists()
    assert action.progress == 100


def test_remove_is_an_alias_of_delete(task: FetchTask, docs_tree: Path) -> None:
    action = fetch("Remove", Identifiers=doc_id("readme.txt"))
    assert action.counts["DOCS"]["deleted"] == 1
    assert not (docs_tree / "readme.txt").exists()


def test_delete_then_synchronize_reports_the_document_deleted(
    task: FetchTask, tmp_path: Path
) -> None:
    fetch("Synchronize", TaskSections="DOCS")
    fetch("Delete", Identifiers=doc_id("reports/2026/q4.txt"))
    # The row stays until Synchronize has told the ingest target.
    assert DatastoreDocument.objects.filter(identifier=doc_id("reports/2026/q4.txt")).exists()
    action = fetch("Synchronize", TaskSections="DOCS")
    assert action.counts["DOCS"]["deleted"] == 1 and action.counts["DOCS"]["unchanged"] == 4
    [delete_list] = sorted((tmp_path / "ingest").glob("*.del"))
    assert delete_list.read_text().split() == [doc_id("reports/2026/q4.txt")]
    assert not DatastoreDocument.objects.filter(identifier=doc_id("reports/2026/q4.txt")).exists()


def test_a_held_document_is_not_deleted(task: FetchTask, docs_tree: Path) -> None:
    fetch("Hold", Identifiers=doc_id("readme.txt"))
    action = fetch("Delete", Identifiers=f"{doc_id('readme.txt')},{doc_id('reports/summary.md')}")
    assert failures(action) == {doc_id("readme.txt"): "held"}
    assert action.counts["DOCS"] == {"deleted": 1, "errors": 1}
    assert (docs_tree / "readme.txt").exists() and not (docs_tree / "reports/summary.md").exists()


def test_a_stop_keeps_what_was_deleted_and_counted(task: FetchTask, docs_tree: Path) -> None:
    paths = ["readme.txt", "reports/summary.md", "reports/2026/q3.txt"]
    action = submit("Delete", Identifiers=",".join(doc_id(p) for p in paths))
    action = run(action, StopAfter(2))
    assert action.status == Status.STOPPED
    assert action.counts["DOCS"]["deleted"] == 2
    assert action.result["success"] == [doc_id("readme.txt"), doc_id("reports/summary.md")]
    assert (docs_tree / "reports/2026/q3.txt").exists()


@pytest.mark.parametrize("fetch_action", ["Delete", "Hold", "ReleaseHold", "Collect"])
def test_identifiers_are_checked_at_submission(task: FetchTask, fetch_action: str) -> None:
    with pytest.raises(MissingParameter):
        submit(fetch_action, Destination="/tmp")
    with pytest.raises(InvalidParameter, match="alphabet"):
        submit(fetch_action, Identifiers="not an identifier!", Destination="/tmp")
    with pytest.raises(InvalidParameter, match="leaves the task's root"):
        submit(fetch_action, Identifiers=_crafted("../outside.txt"), Destination="/tmp")
    with pytest.raises(UnknownTask):
        submit(fetch_action, Identifiers=doc_id("a.txt", task="NOPE"), Destination="/tmp")
    FetchTask.objects.create(name="OTHER", directory_paths=[str(task.directory_paths[0])])
    with pytest.raises(InvalidParameter, match="belongs to fetch task OTHER"):
        submit(
            fetch_action,
            ConfigSection="DOCS",
            Identifiers=doc_id("a.txt", task="OTHER"),
            Destination="/tmp",
        )
    with pytest.raises(InvalidParameter, match="root folder 2"):
        submit(fetch_action, Identifiers=encode_identifier("DOCS", 1, "a.txt"), Destination="/t")


def _crafted(path: str) -> str:
    raw = b"\0".join([b"FS1", b"DOCS", b"0", path.encode()])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_several_tasks_are_counted_apart(task: FetchTask, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.txt").write_text("a")
    FetchTask.objects.create(name="OTHER", directory_paths=[str(other)])
    action = fetch("Delete", Identifiers=f"{doc_id('readme.txt')},{doc_id('a.txt', 'OTHER')}")
    assert action.counts == {
        "DOCS": {"deleted": 1, "errors": 0},
        "OTHER": {"deleted": 1, "errors": 0},
    }
    assert sorted(action.tasks.split(",")) == ["DOCS", "OTHER"]


# --- Hold and ReleaseHold ---------------------------------------------------------------


def test_hold_and_release(task: FetchTask) -> None:
    action = fetch("Hold", Identifiers=f"{doc_id('readme.txt')},{doc_id('nope.txt')}")
    assert action.counts["DOCS"] == {"holds": 1, "errors": 1}
    assert failures(action) == {doc_id("nope.txt"): "not found"}
    assert held() == {doc_id("readme.txt")}
    # Held twice is still one hold, and still a success.
    assert fetch("Hold", Identifiers=doc_id("readme.txt")).counts["DOCS"]["holds"] == 1
    action = fetch(
        "ReleaseHold", Identifiers=f"{doc_id('readme.txt')},{doc_id('reports/summary.md')}"
    )
    assert action.counts["DOCS"] == {"releasedholds": 2, "errors": 0}
    assert held() == set()
    assert fetch("ReleaseHold", Identifiers=doc_id("nope.txt")).counts["DOCS"]["errors"] == 1


def test_a_hold_before_the_first_synchronize_does_not_stop_ingestion(
    task: FetchTask, tmp_path: Path
) -> None:
    fetch("Hold", Identifiers=doc_id("readme.txt"))
    action = fetch("Synchronize", TaskSections="DOCS")
    sent = [
        d.reference for p in (tmp_path / "ingest").glob("*.idx") for d in parse_idx(p.read_text())
    ]
    assert doc_id("readme.txt") in sent and len(sent) == 5
    # Its row says "not ingested": sent and counted as added, like the others.
    assert action.counts["DOCS"]["added"] == 5 and action.counts["DOCS"]["updated"] == 0
    assert action.counts["DOCS"]["errors"] == 0
    # Synchronize keeps the hold.
    assert held() == {doc_id("readme.txt")}
    assert fetch("Synchronize", TaskSections="DOCS").counts["DOCS"]["unchanged"] == 5


def test_a_document_held_then_gone_before_its_first_synchronize_sends_no_delete(
    task: FetchTask, tmp_path: Path
) -> None:
    fetch("Hold", Identifiers=doc_id("readme.txt"))
    (Path(task.directory_paths[0]) / "readme.txt").unlink()
    action = fetch("Synchronize", TaskSections="DOCS")
    assert action.counts["DOCS"]["deleted"] == 0
    assert not list((tmp_path / "ingest").glob("*.del"))
    assert held() == set()


def test_hold_of_a_folder_fails(task: FetchTask) -> None:
    action = fetch("Hold", Identifiers=doc_id("reports"))
    assert failures(action) == {doc_id("reports"): "not found"}


def test_stop_before_any_document(task: FetchTask) -> None:
    stop = threading.Event()
    stop.set()
    action = run(submit("Hold", Identifiers=doc_id("readme.txt")), stop)
    assert action.status == Status.STOPPED and held() == set()


# --- Through the action endpoint ------------------------------------------------------


def test_get_status_lists_each_document_under_tasks(task: FetchTask, client: Any) -> None:
    def call(**params: str) -> Element:
        response = client.get("/?" + urlencode(params))
        assert response.status_code == 200
        return ElementTree.fromstring(response.content)

    fetch("Hold", Identifiers=doc_id("readme.txt"))
    ids = f"{doc_id('readme.txt')},{doc_id('reports/summary.md')}"
    token = call(action="Fetch", FetchAction="Remove", Identifiers=ids).findtext(
        "responsedata/token"
    )
    assert token
    [claimed] = queue.claim_actions(queue="fetch", worker="w1", limit=1)
    execute(claimed, worker="w1", stop_event=threading.Event())
    status = call(action="QueueInfo", QueueName="fetch", QueueAction="GetStatus", Token=token)
    found = status.find("responsedata/actions/action")
    assert found is not None and found.findtext("status") == "Finished"
    assert [e.text for e in found.iterfind("tasks/success")] == [doc_id("reports/summary.md")]
    [failed] = found.iterfind("tasks/failed")
    assert (failed.text, failed.get("reason")) == (doc_id("readme.txt"), "held")
    count = found.find("documentcounts/documentcount")
    assert count is not None
    assert (count.get("task"), count.get("deleted"), count.get("errors")) == ("DOCS", "1", "1")


def test_bad_identifiers_are_an_aci_error_and_queue_nothing(task: FetchTask, client: Any) -> None:
    response = client.get("/?action=Fetch&FetchAction=Delete&Identifiers=..%2Fetc")
    root = ElementTree.fromstring(response.content)
    assert root.findtext("responsedata/error/errorcode") == "ERRORPARAMINVALID"
    assert not Action.objects.exists()


def test_an_unexpected_os_error_fails_that_document_only(
    task: FetchTask, docs_tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = FileSystemRepository.delete_document

    def delete_document(self: FileSystemRepository, identifier: str) -> None:
        if identifier == doc_id("readme.txt"):
            raise OSError(5, "Input/output error")
        real(self, identifier)

    monkeypatch.setattr(FileSystemRepository, "delete_document", delete_document)
    action = fetch("Delete", Identifiers=f"{doc_id('readme.txt')},{doc_id('reports/summary.md')}")
    assert action.status == Status.FINISHED
    assert failures(action) == {doc_id("readme.txt"): "Input/output error"}
    assert action.counts["DOCS"] == {"deleted": 1, "errors": 1}
