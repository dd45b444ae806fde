"""The IDX format, batch files that are complete or absent, and posting batches."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from connector.ingest.idx import (
    IdxDocument,
    field_name,
    format_delete_list,
    format_document,
    parse_idx,
)
from connector.ingest.post import IngestPostFailed, post_batch
from connector.ingest.spool import Spool


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
