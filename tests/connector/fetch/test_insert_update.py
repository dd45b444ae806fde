"""FetchAction=Insert and FetchAction=Update, and what the next Synchronize sends."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from fetch_helpers import StopAfter, doc_id, failures, fetch, run, submit

from connector.fetch import insert
from connector.ingest.idx import IdxDocument, parse_idx
from connector.models import DatastoreDocument, FetchTask, Status
from connector.params import InvalidParameter, MissingParameter
from connector.repositories.base import NEW_DOCUMENT_MODE


@pytest.fixture
def ingest(tmp_path: Path) -> Path:
    return tmp_path / "ingest"


@pytest.fixture
def task(docs_task: FetchTask, ingest: Path) -> FetchTask:
    docs_task.ingest_directory = str(ingest)
    docs_task.save()
    return docs_task


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def insert_xml(*documents: tuple[str, bytes], properties: str = "") -> str:
    inserts = "".join(
        f"<insert><reference>{reference}</reference>{properties}"
        f"<file><type>content</type><content>{b64(data)}</content></file></insert>"
        for reference, data in documents
    )
    return f"<insertXML>{inserts}</insertXML>"


def identifiers_xml(*entries: tuple[str, dict[str, str]]) -> str:
    body = "".join(
        f'<identifier value="{identifier}">'
        + "".join(f'<metadata name="{n}" value="{v}"/>' for n, v in metadata.items())
        + "</identifier>"
        for identifier, metadata in entries
    )
    return f"<identifiersXML>{body}</identifiersXML>"


def newest_batch(ingest: Path) -> list[IdxDocument]:
    return parse_idx(sorted(ingest.glob("*.idx"))[-1].read_text())


def sync() -> dict[str, int]:
    counts: dict[str, int] = fetch("Synchronize", TaskSections="DOCS").counts["DOCS"]
    return counts


# --- Insert ---------------------------------------------------------------------------


def test_insert_writes_documents_and_stores_properties(task: FetchTask, docs_tree: Path) -> None:
    xml = insert_xml(
        ("new/a.txt", b"A text."),
        ("b.bin", b"\0\1\2"),
        properties='<property name="Title" value="Q3 report"/>',
    )
    action = fetch("Insert", ConfigSection="docs", InsertXML=xml)
    assert action.status == Status.FINISHED, action.error
    assert action.counts == {"DOCS": {"inserted": 2, "errors": 0}}
    assert action.result["success"] == [doc_id("new/a.txt"), doc_id("b.bin")]
    assert (docs_tree / "new/a.txt").read_bytes() == b"A text."
    assert (docs_tree / "b.bin").read_bytes() == b"\0\1\2"
    row = DatastoreDocument.objects.get(identifier=doc_id("new/a.txt"))
    assert row.metadata == {"TITLE": "Q3 report"}


def test_inserted_documents_and_their_properties_go_out_with_the_next_synchronize(
    task: FetchTask, ingest: Path
) -> None:
    sync()
    xml = insert_xml(("readme.txt", b"Replaced."), ("added.txt", b"Added."),
                     properties='<property name="DEPT" value="Sales"/>')  # fmt: skip
    fetch("Insert", ConfigSection="DOCS", InsertXML=xml)
    counts = sync()
    assert counts["added"] + counts["updated"] == 2 and counts["unchanged"] == 4
    sent = {d.reference: d for d in newest_batch(ingest)}
    assert sent[doc_id("readme.txt")].content == "Replaced."
    assert dict(sent[doc_id("added.txt")].fields)["DEPT"] == "Sales"
    assert sync()["unchanged"] == 6


def test_insert_refuses_to_overwrite_a_held_document(task: FetchTask, docs_tree: Path) -> None:
    fetch("Hold", Identifiers=doc_id("readme.txt"))
    xml = insert_xml(("readme.txt", b"Overwritten."), ("other.txt", b"Other."))
    action = fetch("Insert", ConfigSection="DOCS", InsertXML=xml)
    assert failures(action) == {doc_id("readme.txt"): "held"}
    assert action.counts["DOCS"] == {"inserted": 1, "errors": 1}
    assert (docs_tree / "readme.txt").read_text() == "Read me."


def test_insert_creates_new_documents_with_the_documented_mode_and_keeps_a_replaced_ones(
    task: FetchTask, docs_tree: Path
) -> None:
    previous = os.umask(0o022)
    try:
        os.chmod(docs_tree / "readme.txt", 0o600)
        action = fetch(
            "Insert",
            ConfigSection="DOCS",
            InsertXML=insert_xml(("readme.txt", b"replaced"), ("new/made.txt", b"made")),
        )
    finally:
        os.umask(previous)
    assert action.counts["DOCS"] == {"inserted": 2, "errors": 0}
    assert (docs_tree / "readme.txt").stat().st_mode & 0o7777 == 0o600  # kept, not 0644
    assert (docs_tree / "new/made.txt").stat().st_mode & 0o7777 == NEW_DOCUMENT_MODE == 0o640
    assert (docs_tree / "readme.txt").read_bytes() == b"replaced"


def test_insert_over_a_folder_or_outside_file_match_fails_that_document(
    task: FetchTask, docs_tree: Path
) -> None:
    task.file_match = ["*.txt"]
    task.save()
    (docs_tree / "folder.txt").mkdir()
    xml = insert_xml(("folder.txt", b"x"), ("evil.exe", b"x"), ("fine.txt", b"x"))
    action = fetch("Insert", ConfigSection="DOCS", InsertXML=xml)
    reasons = failures(action)
    assert "not a regular file" in reasons[doc_id("folder.txt")]
    assert "FileMatch" in reasons[doc_id("evil.exe")]
    assert action.result["success"] == [doc_id("fine.txt")]
    assert (docs_tree / "folder.txt").is_dir() and not (docs_tree / "evil.exe").exists()


def test_a_stop_in_the_middle_of_a_document_writes_nothing_of_it(
    task: FetchTask, docs_tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(insert, "WRITE_CHUNK", 2)
    xml = insert_xml(("one.txt", b"ab"), ("two.txt", b"abcdefgh"))
    action = run(submit("Insert", ConfigSection="DOCS", InsertXML=xml), StopAfter(4))
    assert action.status == Status.STOPPED
    assert action.counts["DOCS"] == {"inserted": 1, "errors": 0}
    assert (docs_tree / "one.txt").exists() and not (docs_tree / "two.txt").exists()
    assert not list(docs_tree.glob(".*"))


HOSTILE = {
    "billion laughs": '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    '<!ENTITY lol2 "&lol;&lol;&lol;&lol;">]><insertXML>&lol2;</insertXML>',
    "xxe": '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    "<insertXML><insert><reference>&xxe;</reference></insert></insertXML>",
    "dtd": '<!DOCTYPE insertXML SYSTEM "http://example.com/x.dtd"><insertXML/>',
    "malformed": "<insertXML><insert>",
    "not xml": "reports/q3.txt",
    "wrong root": "<identifiersXML/>",
    "empty": "<insertXML/>",
    "no file": "<insertXML><insert><reference>a.txt</reference></insert></insertXML>",
    "no reference": "<insertXML><insert><file><type>content</type><content>YQ==</content>"
    "</file></insert></insertXML>",
    "other type": "<insertXML><insert><reference>a.txt</reference><file><type>url</type>"
    "<content>YQ==</content></file></insert></insertXML>",
    "bad base64": "<insertXML><insert><reference>a.txt</reference><file><type>content</type>"
    "<content>not*base64!</content></file></insert></insertXML>",
    "bad padding": "<insertXML><insert><reference>a.txt</reference><file><type>content</type>"
    "<content>YQ</content></file></insert></insertXML>",
    "dotdot": insert_xml(("../outside.txt", b"x")),
    "dotdot inside": insert_xml(("a/../../outside.txt", b"x")),
    "absolute": insert_xml(("/tmp/outside.txt", b"x")),
    "backslash": insert_xml(("..\\outside.txt", b"x")),
    "reserved property": insert_xml(
        ("a.txt", b"x"), properties='<property name="PATH" value="/"/>'
    ),
    "property without value": insert_xml(("a.txt", b"x"), properties='<property name="X"/>'),
}


@pytest.mark.parametrize("xml", HOSTILE.values(), ids=HOSTILE.keys())
def test_bad_or_hostile_insert_xml_is_refused_at_submission(
    task: FetchTask, tmp_path: Path, xml: str
) -> None:
    with pytest.raises(InvalidParameter) as refused:
        submit("Insert", ConfigSection="DOCS", InsertXML=xml)
    assert refused.value.name == "InsertXML"
    assert not (tmp_path / "outside.txt").exists()


def test_entities_are_refused_as_such(task: FetchTask) -> None:
    with pytest.raises(InvalidParameter, match="refused"):
        submit("Insert", ConfigSection="DOCS", InsertXML=HOSTILE["billion laughs"])


def test_a_document_larger_than_the_limit_is_refused_before_decoding(
    task: FetchTask, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(insert, "MAX_DOCUMENT_BYTES", 10)
    with pytest.raises(InvalidParameter, match="at most 10 bytes"):
        submit("Insert", ConfigSection="DOCS", InsertXML=insert_xml(("a.txt", b"x" * 12)))
    submit("Insert", ConfigSection="DOCS", InsertXML=insert_xml(("a.txt", b"x" * 9)))


def test_insert_needs_one_task_and_the_xml(task: FetchTask) -> None:
    with pytest.raises(MissingParameter, match="ConfigSection"):
        submit("Insert", InsertXML=insert_xml(("a.txt", b"x")))
    with pytest.raises(MissingParameter, match="InsertXML"):
        submit("Insert", ConfigSection="DOCS")
    with pytest.raises(InvalidParameter, match="configured fetch task"):
        submit("Insert", ConfigSection="NOPE", InsertXML=insert_xml(("a.txt", b"x")))


def test_base64_with_line_breaks_is_fine(task: FetchTask, docs_tree: Path) -> None:
    encoded = b64(b"0123456789" * 10)
    wrapped = "\n".join(encoded[i : i + 20] for i in range(0, len(encoded), 20))
    xml = (
        "<insertXML><insert><reference>wrapped.txt</reference><file><type>content</type>"
        f"<content>\n{wrapped}\n</content></file></insert></insertXML>"
    )
    fetch("Insert", ConfigSection="DOCS", InsertXML=xml)
    assert (docs_tree / "wrapped.txt").read_bytes() == b"0123456789" * 10


# --- Update ---------------------------------------------------------------------------


def test_update_merges_metadata_and_the_next_synchronize_sends_it(
    task: FetchTask, ingest: Path
) -> None:
    sync()
    xml = identifiers_xml((doc_id("readme.txt"), {"Department": "Sales", "Owner": "Ann"}))
    action = fetch("Update", ConfigSection="DOCS", IdentifiersXML=xml)
    assert action.status == Status.FINISHED, action.error
    assert action.counts == {"DOCS": {"updated": 1, "errors": 0}}
    assert action.result["success"] == [doc_id("readme.txt")]
    counts = sync()
    assert counts["updated"] == 1 and counts["unchanged"] == 4
    [sent] = newest_batch(ingest)
    assert dict(sent.fields)["DEPARTMENT"] == "Sales" and dict(sent.fields)["OWNER"] == "Ann"
    # Merged: a later update changes one field and removes another (empty value).
    xml = identifiers_xml((doc_id("readme.txt"), {"Department": "Legal", "Owner": ""}))
    fetch("Update", ConfigSection="DOCS", IdentifiersXML=xml)
    assert DatastoreDocument.objects.get(identifier=doc_id("readme.txt")).metadata == {
        "DEPARTMENT": "Legal"
    }
    sync()
    [sent] = newest_batch(ingest)
    assert dict(sent.fields)["DEPARTMENT"] == "Legal" and "OWNER" not in dict(sent.fields)
    assert sync()["unchanged"] == 5


def test_update_before_the_first_synchronize(task: FetchTask, ingest: Path) -> None:
    xml = identifiers_xml((doc_id("readme.txt"), {"Department": "Sales"}))
    fetch("Update", ConfigSection="DOCS", IdentifiersXML=xml)
    counts = sync()
    assert counts["added"] + counts["updated"] == 5
    sent = {d.reference: d for d in newest_batch(ingest)}
    assert dict(sent[doc_id("readme.txt")].fields)["DEPARTMENT"] == "Sales"


def test_update_of_held_and_missing_documents_fails_those(task: FetchTask) -> None:
    fetch("Hold", Identifiers=doc_id("readme.txt"))
    xml = identifiers_xml(
        (doc_id("readme.txt"), {"A": "1"}),
        (doc_id("nope.txt"), {"A": "1"}),
        (doc_id("reports/summary.md"), {"A": "1"}),
    )
    action = fetch("Update", ConfigSection="DOCS", IdentifiersXML=xml)
    assert failures(action) == {doc_id("readme.txt"): "held", doc_id("nope.txt"): "not found"}
    assert action.counts["DOCS"] == {"updated": 1, "errors": 2}
    assert DatastoreDocument.objects.get(identifier=doc_id("readme.txt")).metadata == {}


@pytest.mark.parametrize(
    "xml, match",
    [
        ('<!DOCTYPE x [<!ENTITY e "e">]><identifiersXML/>', "refused"),
        ("<identifiersXML><identifier", "malformed"),
        ("<identifiersXML/>", "at least one"),
        ('<identifiersXML><identifier value="!!"/></identifiersXML>', "identifier"),
        (identifiers_xml((doc_id("a.txt", "OTHER"), {})), "belongs to fetch task OTHER"),
        (identifiers_xml((doc_id("a.txt"), {"1bad": "x"})), "metadata name"),
        (identifiers_xml((doc_id("a.txt"), {"DREREFERENCE": "x"})), "metadata name"),
    ],
)
def test_bad_identifiers_xml_is_refused_at_submission(
    task: FetchTask, xml: str, match: str
) -> None:
    with pytest.raises(InvalidParameter, match=match) as refused:
        submit("Update", ConfigSection="DOCS", IdentifiersXML=xml)
    assert refused.value.name == "IdentifiersXML"
