"""The IDX format, batch files that are complete or absent, and posting batches."""

from __future__ import annotations

import os
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.utils import timezone

from connector.fetch.documents import NEVER
from connector.ingest import datastore
from connector.ingest.idx import (
    IdxDocument,
    field_name,
    format_delete_list,
    format_document,
    parse_idx,
)
from connector.ingest.post import IngestPostFailed, post_batch
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


def _extent(low: int, high: int) -> datastore.Extent:
    return datastore.Extent(rows=high - low + 1, low=low, high=high)


def test_seen_rows_remember_each_row_once_within_the_extent() -> None:
    seen = datastore.SeenRows(_extent(1000, 1020))
    for pk in (1000, 1007, 1008, 1020, 1007):
        seen.add(pk)
    assert seen.count == 4
    assert [pk for pk in range(990, 1030) if pk in seen] == [1000, 1007, 1008, 1020]
    # Rows made after the extent was taken are not the run's to count.
    seen.add(1021)
    seen.add(999)
    assert seen.count == 4 and 1021 not in seen


def test_seen_rows_of_an_empty_datastore() -> None:
    seen = datastore.SeenRows(datastore.Extent(rows=0, low=0, high=0))
    seen.add(1)
    assert seen.count == 0 and 1 not in seen


def test_seen_rows_take_a_bit_per_row() -> None:
    tracemalloc.start()
    try:
        seen = datastore.SeenRows(_extent(1, 1_000_000))
        for pk in range(1, 1_000_001, 7):
            seen.add(pk)
        allocated, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen.count == 142_858
    assert allocated < 130_000


@pytest.fixture
def docs(db: None, tmp_path: Path) -> FetchTask:
    return FetchTask.objects.create(name="DOCS", directory_paths=[str(tmp_path)])


def test_recorded_rows_are_looked_up_exactly_as_written(docs: FetchTask) -> None:
    modified = datetime(2026, 11, 26, 14, 1, 2, 345678, tzinfo=UTC)
    on_the_second = datetime(2026, 11, 26, 14, 1, 3, tzinfo=UTC)
    datastore.record(
        docs,
        [
            datastore.Recorded("A", "a.txt", 3, modified, "aa"),
            datastore.Recorded("B", "b.txt", 0, on_the_second, ""),
        ],
        timezone.now(),
    )
    found = datastore.lookup(docs, ["A", "B", "C"])
    assert sorted(found) == ["A", "B"]
    assert (found["A"].size, found["A"].modified, found["A"].content_hash) == (3, modified, "aa")
    assert found["B"].modified == on_the_second and found["A"].ingested
    # The ORM reads the same row.
    row = DatastoreDocument.objects.get(identifier="A")
    assert (row.path, row.modified, row.metadata, row.held) == ("a.txt", modified, {}, False)


def test_recording_again_keeps_metadata_and_hold(docs: FetchTask) -> None:
    DatastoreDocument.objects.create(
        task=docs, identifier="A", path="a.txt", size=-1, modified=NEVER,
        metadata={"Dept": "Sales"}, held=True, last_ingested_at=NEVER,
    )  # fmt: skip
    assert not datastore.lookup(docs, ["A"])["A"].ingested
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    datastore.record(docs, [datastore.Recorded("A", "a.txt", 5, moment, "h")], moment)
    row = DatastoreDocument.objects.get(identifier="A")
    assert (row.size, row.modified, row.last_ingested_at) == (5, moment, moment)
    assert row.metadata == {"Dept": "Sales"} and row.held
    assert datastore.metadata([row.pk]) == {row.pk: {"Dept": "Sales"}}


def test_unseen_rows_are_found_page_by_page(
    docs: FetchTask, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(datastore, "PAGE", 3)
    moment = timezone.now()
    datastore.record(
        docs, [datastore.Recorded(f"D{n}", f"{n}.txt", n, moment, "") for n in range(10)], moment
    )
    extent = datastore.extent(docs)
    assert extent.rows == 10
    seen = datastore.SeenRows(extent)
    found = datastore.lookup(docs, [f"D{n}" for n in range(10) if n % 3])
    for row in found.values():
        seen.add(row.pk)
    assert [row.identifier for row in datastore.unseen(docs, seen)] == ["D0", "D3", "D6", "D9"]
