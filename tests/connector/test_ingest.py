"""The IDX format, batch files that are complete or absent, and posting batches."""

from __future__ import annotations

import http.server
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.utils import timezone

from connector.fetch.documents import NEVER, NOT_INGESTED_SIZE
from connector.ingest import datastore
from connector.ingest.idx import (
    IdxDocument,
    field_name,
    format_delete_list,
    format_document,
    format_file_document,
    parse_idx,
)
from connector.ingest.post import IngestPostFailed, post_batch
from connector.ingest.scan import Record
from connector.ingest.spool import Spool
from connector.models import DatastoreDocument, FetchTask


def test_a_document_is_written_in_idx_and_read_back() -> None:
    document = IdxDocument(
        reference="REF1",
        title="q3.txt",
        fields=[("PATH", 'a "quoted" \\ path'), ("NOTE", "two\nlines")],
        content="Line one.\n#DREENDDOC inside\nLast line.",
    )
    text = format_document(document)
    assert text.startswith("#DREREFERENCE REF1\n#DRETITLE q3.txt\n")
    assert '#DREFIELD PATH="a \\"quoted\\" \\\\ path"\n' in text
    assert '#DREFIELD NOTE="two lines"\n' in text
    assert "\n #DREENDDOC inside\n" in text and text.endswith("Last line.\n#DREENDDOC\n")
    [back] = parse_idx(text)
    assert back.fields == [("PATH", 'a "quoted" \\ path'), ("NOTE", "two lines")]
    assert back.content == document.content


def test_a_document_by_reference_has_empty_content() -> None:
    text = format_document(IdxDocument(reference="R", fields=[("SIZE", "3")]))
    assert text == '#DREREFERENCE R\n#DREFIELD SIZE="3"\n#DRECONTENT\n#DREENDDOC\n'


def test_field_names_keep_only_safe_characters() -> None:
    assert field_name('de"pt =x') == "DE_PT__X"


def test_a_delete_list_is_one_reference_per_line() -> None:
    assert format_delete_list(["A", "B"]) == "A\nB\n"


def test_a_committed_batch_has_its_final_name_and_no_temporary_file(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "ingest", "DOCS")
    spool.prepare()
    batch = spool.open("idx")
    batch.write(b"#DREREFERENCE A\n")
    assert list((tmp_path / "ingest").glob("*.idx")) == []  # not visible while written
    path = batch.commit()
    assert path.name == f"DOCS-{spool.stamp}-000001.idx"
    assert os.listdir(tmp_path / "ingest") == [path.name]
    assert path.read_bytes() == b"#DREREFERENCE A\n"
    assert spool.open("del").final.name.endswith("-000002.del")


def test_an_aborted_batch_leaves_nothing(tmp_path: Path) -> None:
    spool = Spool(tmp_path, "DOCS")
    batch = spool.open("idx")
    batch.write(b"half")
    batch.abort()
    assert list(tmp_path.iterdir()) == []


def test_a_failing_commit_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    batch = Spool(tmp_path, "DOCS").open("idx")
    batch.write(b"data")

    def failing_replace(source: object, target: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr("connector.ingest.spool.os.replace", failing_replace)
    with pytest.raises(OSError, match="Input/output"):
        batch.commit()
    assert list(tmp_path.iterdir()) == []


class Redirecting(http.server.BaseHTTPRequestHandler):
    """Answers every POST with a redirect to /landing, whose GET answers 200."""

    status = 302
    requests: list[tuple[str, str]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        Redirecting.requests.append(("POST", self.path))
        self.send_response(Redirecting.status)
        self.send_header("Location", "/landing")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        Redirecting.requests.append(("GET", self.path))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def redirecting() -> Iterator[str]:
    Redirecting.requests = []
    server = http.server.HTTPServer(("127.0.0.1", 0), Redirecting)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/ingest"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_a_failed_delivery_and_never_followed(
    tmp_path: Path, redirecting: str, status: int
) -> None:
    Redirecting.status = status
    batch = tmp_path / "b.idx"
    batch.write_text("#DREREFERENCE R\n#DREENDDOC\n")
    with pytest.raises(IngestPostFailed, match=f"answered {status} .*redirects are not followed"):
        post_batch(redirecting, batch, "idx")
    # The batch went once, to the URL given; the landing page was never asked.
    assert Redirecting.requests == [("POST", "/ingest")]


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/x", "data:,x", "HTTP:/no-host", "gopher://h/"])
def test_posting_refuses_other_schemes_before_connecting(tmp_path: Path, url: str) -> None:
    batch = tmp_path / "b.idx"
    batch.write_text("x")
    with pytest.raises(IngestPostFailed):
        post_batch(url, batch, "idx")


def test_posting_refuses_urls_that_are_not_http(tmp_path: Path) -> None:
    batch = tmp_path / "b.idx"
    batch.write_text("x")
    with pytest.raises(IngestPostFailed, match="not an http"):
        post_batch("file:///etc/passwd", batch, "idx")


# --- IDX: values and text that need no change are written as they are --------------


@pytest.mark.parametrize(
    ("content", "written"),
    [
        ("plain\ntext", "plain\ntext"),
        ("windows\r\nlines\r\n", "windows\nlines"),
        ("old mac\rline", "old mac\nline"),
        ("unicode\u2028separator", "unicode\nseparator"),
        ("#DREFIELD X=1\nmid #DRE line", " #DREFIELD X=1\nmid #DRE line"),
        ("\n", ""),
    ],
)
def test_content_is_written_with_newlines_and_guarded_dre_lines(content: str, written: str) -> None:
    text = format_document(IdxDocument(reference="R", content=content))
    assert text == f"#DREREFERENCE R\n#DRECONTENT\n{written}\n#DREENDDOC\n"


def test_field_values_and_references_become_one_line() -> None:
    text = format_document(
        IdxDocument(reference="R\r\n1", title="a\u2029b", fields=[("P", "x\ny"), ("Q", "plain")])
    )
    assert text.splitlines()[:4] == [
        "#DREREFERENCE R 1", "#DRETITLE a b", '#DREFIELD P="x y"', '#DREFIELD Q="plain"',
    ]  # fmt: skip


# --- The datastore in bulk ----------------------------------------------------------


@pytest.fixture
def docs(db: None, tmp_path: Path) -> FetchTask:
    return FetchTask.objects.create(name="DOCS", directory_paths=[str(tmp_path)])


def _sent(
    identifier: str,
    path: str,
    size: int,
    modified_ns: int,
    content_hash: str,
    metadata: dict[str, object] | None = None,
) -> Record:
    return ("added", identifier, path, size, modified_ns, content_hash, metadata)


def test_recorded_rows_are_read_back_by_folder_exactly_as_written(docs: FetchTask) -> None:
    modified_ns = 1_764_165_662_345_678_901
    datastore.record(
        docs,
        [("F", _sent("A", "a.txt", 3, modified_ns, "aa")), ("F", _sent("B", "b.txt", 0, 0, "")),
         ("G", _sent("C", "g/c.txt", 1, 1, "cc"))],
        timezone.now(),
    )  # fmt: skip
    found = datastore.folder_rows(docs, "F")
    assert found is not None and sorted(found) == ["A", "B"]
    a = found["A"]
    assert a[1:] == (3, modified_ns, "aa", 1, None)  # size, time, hash, ingested, metadata
    assert found["B"][2] == 0
    assert datastore.folder_rows(docs, "nothing") == {}
    # The ORM reads the same row.
    row = DatastoreDocument.objects.get(identifier="A")
    assert (row.path, row.folder, row.modified_ns, row.metadata, row.held) == (
        "a.txt", "F", modified_ns, {}, False,
    )  # fmt: skip
    assert row.modified == datetime.fromtimestamp(modified_ns / 1e9, tz=UTC)


def test_a_folder_with_more_rows_than_a_job_takes_is_read_by_identifier(
    docs: FetchTask, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(datastore, "FOLDER_ROWS", 2)
    monkeypatch.setattr(datastore, "LOOKUP_CHUNK", 2)
    datastore.record(
        docs, [("F", _sent(f"D{n}", f"{n}.txt", n, n, "")) for n in range(5)], timezone.now()
    )
    assert datastore.folder_rows(docs, "F") is None
    found = datastore.rows_by_identifier(docs, ["D0", "D2", "D4", "NONE"])
    assert sorted(found) == ["D0", "D2", "D4"] and found["D4"][1] == 4


def test_recording_again_keeps_metadata_and_hold(docs: FetchTask) -> None:
    DatastoreDocument.objects.create(
        task=docs, identifier="A", folder="F", path="a.txt", size=-1,
        metadata={"Dept": "Sales"}, held=True, last_ingested_at=NEVER,
    )  # fmt: skip
    known = datastore.folder_rows(docs, "F")
    assert known is not None
    assert known["A"][2:] == (-1, "", 0, {"Dept": "Sales"})  # time, hash, ingested, metadata
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    # Sent with the metadata read, as Synchronize sends it.
    datastore.record(docs, [("F", _sent("A", "a.txt", 5, 7, "h", known["A"][5]))], moment)
    row = DatastoreDocument.objects.get(identifier="A")
    assert (row.size, row.modified_ns, row.last_ingested_at) == (5, 7, moment)
    assert row.metadata == {"Dept": "Sales"} and row.held


def test_recording_a_document_whose_metadata_changed_since_it_was_read_sends_it_again(
    docs: FetchTask,
) -> None:
    """An Update between Synchronize's read of the rows and its record is not overwritten:
    the row keeps its new metadata and stays "not ingested as it is"."""
    DatastoreDocument.objects.create(
        task=docs, identifier="A", folder="F", path="a.txt", size=5, modified_ns=7,
        metadata={"KA": "1"}, last_ingested_at=datetime(2026, 1, 1, tzinfo=UTC),
    )  # fmt: skip
    known = datastore.folder_rows(docs, "F")
    assert known is not None and known["A"][5] == {"KA": "1"}
    # An Update lands while the batch is written: new metadata, size marks it unsent.
    DatastoreDocument.objects.filter(identifier="A").update(
        metadata={"KA": "1", "KB": "2"}, size=NOT_INGESTED_SIZE
    )
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    datastore.record(docs, [("F", _sent("A", "a.txt", 6, 8, "h", known["A"][5]))], moment)
    row = DatastoreDocument.objects.get(identifier="A")
    assert row.metadata == {"KA": "1", "KB": "2"}
    assert row.size == NOT_INGESTED_SIZE  # sent again by the next run
    assert (row.modified_ns, row.content_hash, row.last_ingested_at) == (8, "h", moment)
    # A row made by an Update after the read (none was there) is not overwritten either.
    DatastoreDocument.objects.create(
        task=docs, identifier="B", folder="F", path="b.txt", size=NOT_INGESTED_SIZE,
        metadata={"KC": "3"}, last_ingested_at=NEVER,
    )  # fmt: skip
    datastore.record(docs, [("F", _sent("B", "b.txt", 4, 9, "g"))], moment)
    row = DatastoreDocument.objects.get(identifier="B")
    assert row.metadata == {"KC": "3"} and row.size == NOT_INGESTED_SIZE


def test_a_batch_longer_than_one_insert_records_every_row_as_its_own(
    docs: FetchTask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``record`` writes a few rows a statement: every row gets its own values (new rows
    and rows sent again, with and without metadata), whatever statement holds it."""
    monkeypatch.setattr(datastore, "INSERT_ROWS", 3)
    DatastoreDocument.objects.create(
        task=docs, identifier="D4", folder="F", path="old.txt", size=1, modified_ns=1,
        metadata={"KA": "1"}, held=True, last_ingested_at=NEVER,
    )  # fmt: skip
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    metadata = {4: {"KA": "1"}}  # D4 sent with the metadata its row has
    sent = [
        (f"F{n % 2}", _sent(f"D{n}", f"{n}.txt", n, 1000 + n, f"h{n}", metadata.get(n)))
        for n in range(8)
    ]
    datastore.record(docs, sent, moment)
    rows = {row.identifier: row for row in DatastoreDocument.objects.filter(task=docs)}
    assert sorted(rows) == [f"D{n}" for n in range(8)]
    for n in range(8):
        row = rows[f"D{n}"]
        assert (row.folder, row.path, row.size, row.modified_ns, row.content_hash) == (
            f"F{n % 2}", f"{n}.txt", n, 1000 + n, f"h{n}",
        )  # fmt: skip
        assert row.last_ingested_at == moment
        assert (row.metadata, row.held) == (({"KA": "1"}, True) if n == 4 else ({}, False))


def test_a_document_named_twice_in_a_batch_gets_its_last_record(
    docs: FetchTask, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Never made by Synchronize (a task's folders do not overlap), but one statement
    # must not update a row twice: PostgreSQL would refuse the whole batch.
    monkeypatch.setattr(datastore, "INSERT_ROWS", 2)
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    sent = [
        ("F", _sent("D1", "first.txt", 1, 1, "h1")),
        ("G", _sent("D1", "again.txt", 3, 3, "h3")),
        ("F", _sent("D2", "two.txt", 2, 2, "h2")),
    ]
    datastore.record(docs, sent, moment)
    rows = {
        row.identifier: (row.folder, row.path, row.size, row.content_hash)
        for row in DatastoreDocument.objects.filter(task=docs)
    }
    assert rows == {"D1": ("G", "again.txt", 3, "h3"), "D2": ("F", "two.txt", 2, "h2")}


def test_touched_rows_get_their_new_time_and_forgotten_rows_go(docs: FetchTask) -> None:
    datastore.record(docs, [("F", _sent(f"D{n}", f"{n}.txt", n, n, "")) for n in range(3)],
                     timezone.now())  # fmt: skip
    pks = dict(DatastoreDocument.objects.values_list("identifier", "pk"))
    datastore.touch([(pks["D0"], 99)])
    datastore.forget([pks["D1"]])
    assert dict(DatastoreDocument.objects.values_list("identifier", "modified_ns")) == {
        "D0": 99, "D2": 2,
    }  # fmt: skip


def test_rows_of_a_folder_are_read_page_by_page_up_to_the_extent(
    docs: FetchTask, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(datastore, "PAGE", 3)
    moment = timezone.now()
    datastore.record(docs, [("F", _sent(f"D{n}", f"{n}.txt", n, n, "")) for n in range(10)], moment)
    datastore.record(docs, [("G", _sent("E", "g/e.txt", 1, 1, ""))], moment)
    extent = datastore.extent(docs)
    assert extent.rows == 11
    datastore.record(docs, [("F", _sent("LATE", "late.txt", 1, 1, ""))], moment)
    assert [row.identifier for row in datastore.rows_in_folder(docs, "F", extent.high)] == [
        f"D{n}" for n in range(10)
    ]
    assert datastore.folders(docs, extent.high) == ["F", "G"]


@pytest.mark.parametrize("name", ["a.txt", 'we"ird\\na\nme', "x\u2028y", "#DRE.txt"])
@pytest.mark.parametrize("text", [None, "", "\n", "one line\n", "#DREENDDOC\r\nx\r\n", "a\rb"])
@pytest.mark.parametrize("metadata", [None, {"DEPT": 'S"a\nles', "N": 3}])
def test_a_file_document_is_what_format_document_writes(
    name: str, text: str | None, metadata: dict[str, object] | None
) -> None:
    fields = [
        ("DREREFERENCE", "ID"), ("TASK", "DOCS"), ("PATH", f"p/{name}"), ("NAME", name),
        ("SIZE", "5"), ("MODIFIED", "2026-01-01T00:00:00Z"), ("SHA256", "ab"),
        ("CONTENTMODE", "text" if text is not None else "reference"),
        *((key, str(value)) for key, value in (metadata or {}).items()),
    ]  # fmt: skip
    expected = format_document(IdxDocument(reference="ID", title=name, fields=fields, content=text))
    assert expected == format_file_document(
        identifier="ID", task="DOCS", path=f"p/{name}", name=name, size=5,
        modified="2026-01-01T00:00:00Z", content_hash="ab", text=text, metadata=metadata,
    )  # fmt: skip


def test_remove_leftovers_takes_only_stale_regular_files_named_as_this_tasks_batches(
    tmp_path: Path,
) -> None:
    then = 1_000_000_000
    old = tmp_path / ".DOCS-20260101T000000000000Z-000007.idx.abcd1234.tmp"
    old.write_text("half")
    os.utime(old, (then, then))
    target = tmp_path / "precious.txt"
    target.write_text("keep")
    link = tmp_path / ".DOCS-20260101T000000000000Z-000008.del.abcd1234.tmp"
    link.symlink_to(target)
    os.utime(link, (then, then), follow_symlinks=False)
    young = tmp_path / ".DOCS-20260101T000000000000Z-000009.idx.abcd1234.tmp"
    young.write_text("being written")
    assert Spool(tmp_path, "DOCS").remove_leftovers() == [old.name]
    assert link.is_symlink() and target.read_text() == "keep" and young.exists()


def test_unchanged_metadata_of_any_text_compares_equal_when_recorded(docs: FetchTask) -> None:
    """The guard compares the stored metadata with what was read: any value, read back
    and written as a parameter, must compare equal, or rows would be sent for ever."""
    metadata = {"DEPT": "Ventes é ü 漢字 \U0001f600", "NOTE": 'a "quoted" \\ value', "Z": "1"}
    DatastoreDocument.objects.create(
        task=docs, identifier="A", folder="F", path="a.txt", size=-1,
        metadata=metadata, last_ingested_at=NEVER,
    )  # fmt: skip
    known = datastore.folder_rows(docs, "F")
    assert known is not None and known["A"][5] == metadata
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    datastore.record(docs, [("F", _sent("A", "a.txt", 5, 7, "h", known["A"][5]))], moment)
    row = DatastoreDocument.objects.get(identifier="A")
    assert row.size == 5 and row.metadata == metadata
