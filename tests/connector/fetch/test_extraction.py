"""Documents as text (issue 15): detection, the extraction child, and Synchronize's IDX."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import documents_corpus as corpus
import pytest
from defusedxml import ElementTree
from fetch_helpers import run, submit

from connector import csp
from connector.fetch import synchronize
from connector.ingest import extract as extraction
from connector.ingest import readers
from connector.ingest.extract import Extractor
from connector.ingest.idx import IdxDocument, parse_idx
from connector.ingest.kinds import ExtractSettings, detect
from connector.models import Action, FetchTask, Status
from connector.repositories.filesystem import encode_identifier
from connector.tasks_config import TasksConfigError, read_tasks_file

SETTINGS = ExtractSettings(timeout=20)
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


@pytest.fixture(scope="module")
def child() -> Iterator[Extractor]:
    extractor = Extractor()
    yield extractor
    extractor.close()


# --- Detection ----------------------------------------------------------------------


def test_the_type_comes_from_the_bytes_not_the_name() -> None:
    assert detect(corpus.pdf(["x"]), "notes.txt") == "pdf"
    assert detect(corpus.docx(), "data.bin") == "docx"
    assert detect(corpus.xlsx(), "a.docx") == "xlsx"
    assert detect(corpus.pptx(), "a") == "pptx"
    assert detect(corpus.odt(), "a") == "odt"
    assert detect(corpus.RTF, "a.txt") == "rtf"
    assert detect(corpus.HTML, "page.txt") == "html"
    assert detect(corpus.EML, "message") == "eml"


def test_plain_text_is_not_extracted_and_archives_are_told_apart() -> None:
    assert detect(b"Subject: hello", "hello.eml") is None  # one header line is text
    assert detect(b"just text\nmore", "a.pdf") is None
    assert detect(b"\x00\x01binary", "a.doc") is None
    # Archives whose members become documents (ExtractArchives), whatever the name.
    assert detect(corpus.zip_folders(), "a.txt") == "zip"
    assert detect(corpus.tar_of({"a.txt": b"a"}), "a") == "tar"
    assert detect(corpus.tar_of({"a.txt": b"a"}, compression="gz"), "a") == "tar"
    assert detect(gzip.compress(b"not a tar"), "a.gz") is None


def test_a_pdf_header_counts_anywhere_in_the_first_kib() -> None:
    pdf = corpus.pdf(["x"])
    assert detect(b"junk 100% " + pdf, "a") == "pdf"  # another "%" first
    assert detect(b"%" * 1019 + b"%PDF-", "a") == "pdf"  # ends at byte 1024
    assert detect(b"%" * 1020 + b"%PDF-", "a") is None  # ends past it
    assert detect(b"50 % of it\n" * 200, "a.txt") is None


# --- Extraction, exact text and fields ------------------------------------------------


def test_pdf_text_in_reading_order_with_its_metadata(child: Extractor) -> None:
    result = child.extract(corpus.pdf(["Page one\nSecond line", "Page two"]), "pdf", SETTINGS)
    assert result.failed is None
    assert result.text == "Page one\nSecond line\n\nPage two"
    assert result.title == "Quarterly report"
    assert result.fields == [
        ("CONTENTTYPE", "application/pdf"),
        ("TITLE", "Quarterly report"),
        ("AUTHOR", "Ada Lovelace"),
        ("CREATED", "2026-01-02T03:04:05Z"),
        ("PAGECOUNT", "2"),
    ]


def test_pdf_without_a_text_layer_has_no_text_as_ocr_is_off(child: Extractor) -> None:
    result = child.extract(corpus.pdf_without_text(), "pdf", SETTINGS)
    assert (result.failed, result.text) == (None, "")
    assert ("PAGECOUNT", "1") in result.fields


def test_docx_headings_paragraphs_and_table_rows(child: Extractor) -> None:
    result = child.extract(corpus.docx(), "docx", SETTINGS)
    assert result.text == "Agenda\n\nFirst paragraph.\n\nName Qty\nApples 3"
    assert result.fields == [
        ("CONTENTTYPE", DOCX),
        ("TITLE", "Minutes"),
        ("AUTHOR", "Grace Hopper"),
        ("CREATED", "2026-01-02T03:04:05Z"),
        ("DOCUMENTMODIFIED", "2026-01-02T03:04:05Z"),
        ("PAGECOUNT", "1"),
    ]


def test_xlsx_every_sheet_as_rows(child: Extractor) -> None:
    result = child.extract(corpus.xlsx(), "xlsx", SETTINGS)
    assert result.text == "Fruit\n\nName Qty\nApples 3\n\nVeg\n\nCarrot 7"
    assert result.title == "Stock"
    fields = dict(result.fields)
    assert (fields["AUTHOR"], fields["CREATED"], fields["PAGECOUNT"]) == (
        "Linus", "2026-01-02T03:04:05Z", "2",
    )  # fmt: skip


def test_pptx_odt_and_rtf(child: Extractor) -> None:
    deck = child.extract(corpus.pptx(), "pptx", SETTINGS)
    assert (deck.text, deck.title) == ("Launch plan\n\nShip it", "Deck")
    assert ("AUTHOR", "Margaret Hamilton") in deck.fields
    assert child.extract(corpus.odt(), "odt", SETTINGS).text == "Open heading\n\nOpen paragraph."
    assert child.extract(corpus.RTF, "rtf", SETTINGS).text == "Hello bold RTF."


def test_html_is_its_visible_text_never_script_or_style(child: Extractor) -> None:
    result = child.extract(corpus.HTML, "html", SETTINGS)
    assert result.text == "Welcome\n\nVisible text."
    assert result.fields == [("CONTENTTYPE", "text/html"), ("TITLE", "Hello page")]


def test_email_decoded_with_sender_recipients_subject_and_attachments(child: Extractor) -> None:
    result = child.extract(corpus.EML, "eml", SETTINGS)
    assert result.text == (
        'Subject: Lunch café\nFrom: "Alice" <alice@example.com>\nTo: "Bob" <bob@example.com>\n'
        "Date: Tue, 01 Dec 2026 10:00:00 +0000\n\nSee you at the café at noon. Bring the = sign."
    )
    assert result.fields == [
        ("CONTENTTYPE", "message/rfc822"),
        ("TITLE", "Lunch café"),
        ("CREATED", "Tue, 01 Dec 2026 10:00:00 +0000"),
        # The message declares no language: detected from its text (enough letters).
        ("LANGUAGE", "eng"),
        ("LANGUAGESOURCE", "detected"),
        ("FROM", '"Alice" <alice@example.com>'),
        ("TO", '"Bob" <bob@example.com>'),
        ("SUBJECT", "Lunch café"),
        ("ATTACHMENTS", "menu.txt"),
    ]


def test_truncated_and_password_protected_pdfs_fail_with_a_reason(child: Extractor) -> None:
    whole = corpus.pdf(["Page one"])
    truncated = child.extract(whole[: len(whole) // 2], "pdf", SETTINGS)
    assert truncated.text is None
    assert truncated.failed is not None and truncated.failed.startswith("cannot be parsed")
    locked = child.extract(corpus.pdf(["Secret"], password="pw"), "pdf", SETTINGS)
    assert locked.failed is not None and "password-protected" in locked.failed


def test_zip_bomb_fails_fast_within_the_bounds(child: Extractor) -> None:
    started = time.monotonic()
    result = child.extract(corpus.zip_bomb(), "docx", SETTINGS)
    assert result.failed is not None and "exceeds limit" in result.failed
    assert time.monotonic() - started < 10


def test_size_and_text_limits_send_by_reference(child: Extractor) -> None:
    data = corpus.pdf(["Page one"])
    small = ExtractSettings(max_bytes=len(data) - 1)
    assert child.extract(data, "pdf", small).failed == f"document exceeds {len(data) - 1} bytes"
    short = ExtractSettings(max_text_bytes=4)
    assert child.extract(data, "pdf", short).failed == "text exceeds 4 bytes"
    assert child.extract(data, "pdf", SETTINGS).text == "Page one"


def test_a_hung_parser_is_killed_at_the_time_limit_and_the_next_document_is_extracted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The child spins in a loop that ignores SIGTERM, as a runaway native parser would.
    monkeypatch.setenv("CONNECTOR_EXTRACT_TEST_HANG", "HANG-MARKER")
    extractor = Extractor()
    try:
        started = time.monotonic()
        hung = extractor.extract(b"%PDF-1.4 HANG-MARKER", "pdf", ExtractSettings(timeout=1))
        assert hung.failed == "timed out after 1 s"
        assert time.monotonic() - started < 3
        assert extractor.pid is None  # killed
        assert extractor.extract(corpus.pdf(["After"]), "pdf", SETTINGS).text == "After"
    finally:
        extractor.close()


# --- Synchronize ------------------------------------------------------------------------


@pytest.fixture
def mixed(tmp_path: Path, db: None) -> tuple[FetchTask, Path]:
    root = tmp_path / "docs"
    root.mkdir()
    (root / "report.pdf").write_bytes(corpus.pdf(["Page one", "Page two"]))
    (root / "minutes.docx").write_bytes(corpus.docx())
    (root / "page.html").write_bytes(corpus.HTML)
    (root / "lunch.eml").write_bytes(corpus.EML)
    (root / "notes.txt").write_text("plain text stays as it is")
    whole = corpus.pdf(["Broken"])
    (root / "broken.pdf").write_bytes(whole[: len(whole) // 2])
    ingest = tmp_path / "ingest"
    task = FetchTask.objects.create(name="DOCS", directory_paths=[str(root)],
                                    ingest_directory=str(ingest))  # fmt: skip
    return task, ingest


def sent(ingest: Path) -> dict[str, IdxDocument]:
    docs = [d for p in sorted(ingest.glob("*.idx")) for d in parse_idx(p.read_text("utf-8"))]
    return {dict(d.fields)["NAME"]: d for d in docs}


def sync(stop: threading.Event | None = None) -> Action:
    return run(submit("Synchronize", TaskSections="DOCS"), stop)


def test_synchronize_sends_documents_as_text_and_a_failure_by_reference(
    mixed: tuple[FetchTask, Path],
) -> None:
    _, ingest = mixed
    action = sync()
    assert action.status == Status.FINISHED, action.error
    assert action.counts["DOCS"]["extractfailed"] == 1
    assert action.counts["DOCS"]["added"] == 7  # the 6 files and lunch.eml's attachment
    docs = sent(ingest)
    pdf = docs["report.pdf"]
    assert pdf.title == "Quarterly report"
    assert pdf.content == "Page one\n\nPage two"
    fields = dict(pdf.fields)
    assert fields["CONTENTMODE"] == "extracted"
    assert (fields["CONTENTTYPE"], fields["AUTHOR"], fields["PAGECOUNT"]) == (
        "application/pdf", "Ada Lovelace", "2",
    )  # fmt: skip
    html = docs["page.html"]
    assert (html.title, html.content) == ("Hello page", "Welcome\n\nVisible text.")
    assert "secret" not in (html.content or "")
    assert dict(docs["lunch.eml"].fields)["FROM"] == '"Alice" <alice@example.com>'
    assert dict(docs["minutes.docx"].fields)["CONTENTTYPE"] == DOCX
    text = docs["notes.txt"]
    assert (text.title, text.content) == ("notes.txt", "plain text stays as it is")
    assert dict(text.fields)["CONTENTMODE"] == "text"
    broken = docs["broken.pdf"]
    assert broken.title == "broken.pdf" and not broken.content
    broken_fields = dict(broken.fields)
    assert broken_fields["CONTENTMODE"] == "reference"
    assert broken_fields["EXTRACTFAILED"].startswith("cannot be parsed")


def test_unchanged_documents_are_not_extracted_again(
    mixed: tuple[FetchTask, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    sync()
    calls: list[str] = []
    monkeypatch.setattr(Extractor, "extract", lambda *a, **k: calls.append("x"))
    action = sync()
    assert action.counts["DOCS"]["unchanged"] == 6
    assert calls == []


def test_extraction_off_sends_as_before(mixed: tuple[FetchTask, Path]) -> None:
    task, ingest = mixed
    task.extract_text = False
    task.save()
    sync()
    fields = dict(sent(ingest)["report.pdf"].fields)
    assert fields["CONTENTMODE"] == "reference" and "EXTRACTFAILED" not in fields


def test_only_the_task_types_are_extracted(mixed: tuple[FetchTask, Path]) -> None:
    task, ingest = mixed
    task.extract_types = ["html"]
    task.save()
    sync()
    docs = sent(ingest)
    assert dict(docs["report.pdf"].fields)["CONTENTMODE"] == "reference"
    assert dict(docs["page.html"].fields)["CONTENTMODE"] == "extracted"


def test_a_hung_document_times_out_and_the_run_goes_on(
    mixed: tuple[FetchTask, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    task, ingest = mixed
    monkeypatch.setenv("CONNECTOR_EXTRACT_TEST_HANG", "Page two")  # in report.pdf's bytes
    extraction.shutdown()  # the next child sees the variable
    task.extract_timeout_seconds = 1
    task.extract_types = ["pdf"]
    task.save()
    (Path(task.directory_paths[0]) / "hang.pdf").write_bytes(b"%PDF-1.4\nPage two\n")
    try:
        action = sync()
    finally:
        extraction.shutdown()
    assert action.status == Status.FINISHED
    docs = sent(ingest)
    assert dict(docs["hang.pdf"].fields)["EXTRACTFAILED"] == "timed out after 1 s"
    assert action.counts["DOCS"]["extractfailed"] == 2  # hang.pdf and broken.pdf
    assert action.counts["DOCS"]["added"] == 7  # only PDF is extracted: no attachment


def test_large_document_is_extracted_and_a_stop_kills_its_hung_parser(
    mixed: tuple[FetchTask, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    task, ingest = mixed
    root = Path(task.directory_paths[0])
    pages = [f"Page {n} " + "words " * 150 for n in range(250)]
    big = corpus.pdf(pages, compress=False)
    assert len(big) > synchronize.scan.SMALL_DOCUMENT  # read by the worker, chunked
    (root / "big.pdf").write_bytes(big)
    action = sync()
    assert dict(sent(ingest)["big.pdf"].fields)["PAGECOUNT"] == "250"
    assert action.counts["DOCS"]["extractfailed"] == 1
    (root / "big.pdf").write_bytes(big + b"\n% HANG-MARKER\n")
    monkeypatch.setenv("CONNECTOR_EXTRACT_TEST_HANG", "HANG-MARKER")
    extraction.shutdown()
    stop = threading.Event()
    threading.Timer(1.0, stop.set).start()
    started = time.monotonic()
    try:
        action = sync(stop)
    finally:
        extraction.shutdown()
    assert action.status == Status.STOPPED
    assert time.monotonic() - started < 5  # not the 30 s time limit


# --- Settings -------------------------------------------------------------------------


def test_tasks_file_extraction_keys(tmp_path: Path) -> None:
    ini = tmp_path / "tasks.cfg"
    (tmp_path / "docs").mkdir()
    ini.write_text(
        "[FetchTasks]\nNumber=1\n0=DOCS\nExtractTimeoutSecs=5\n[DOCS]\nDirectoryPathCSVs=docs\n"
        "ExtractText=true\nExtractTypes=PDF, html\nExtractMaxBytes=1000\nExtractMaxTextBytes=99\n"
    )
    [spec] = read_tasks_file(ini)
    assert (spec.extract_text, spec.extract_types, spec.extract_max_bytes,
            spec.extract_timeout_seconds, spec.extract_max_text_bytes) == (
        True, ["html", "pdf"], 1000, 5.0, 99)  # fmt: skip
    ini.write_text("[FetchTasks]\nNumber=1\n0=DOCS\n[DOCS]\nDirectoryPathCSVs=docs\n")
    [spec] = read_tasks_file(ini)
    assert (spec.extract_text, spec.extract_types, spec.extract_timeout_seconds) == (
        True, [], 30.0)  # fmt: skip


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("ExtractTypes=pdf,exe", "unknown type 'exe'"),
        ("ExtractTimeoutSecs=0", "from 0.1 to 3600"),
        ("ExtractMaxBytes=-3", "at least 1"),
        ("ExtractText=maybe", "true or false"),
    ],
)
def test_bad_extraction_keys_are_refused(tmp_path: Path, line: str, problem: str) -> None:
    ini = tmp_path / "tasks.cfg"
    (tmp_path / "docs").mkdir()
    ini.write_text(f"[FetchTasks]\nNumber=1\n0=DOCS\n[DOCS]\nDirectoryPathCSVs=docs\n{line}\n")
    with pytest.raises(TasksConfigError, match=problem):
        read_tasks_file(ini)


def test_changing_the_extraction_settings_sends_every_document_again(
    mixed: tuple[FetchTask, Path],
) -> None:
    task, ingest = mixed
    sync()
    task.refresh_from_db()
    assert task.extract_sent_with == task.extract_fingerprint()
    assert sync().counts["DOCS"]["unchanged"] == 6  # same settings: nothing sent
    task.extract_types = ["pdf"]
    task.save()
    action = sync()
    assert (action.counts["DOCS"]["updated"], action.counts["DOCS"]["unchanged"]) == (6, 0)
    last = sorted(ingest.glob("*.idx"))[-1]
    by_name = {dict(d.fields)["NAME"]: d for d in parse_idx(last.read_text("utf-8"))}
    assert dict(by_name["page.html"].fields)["CONTENTMODE"] == "text"  # no longer extracted
    assert sync().counts["DOCS"]["unchanged"] == 6  # recorded: once only


def test_a_task_without_recorded_settings_is_not_sent_again(
    mixed: tuple[FetchTask, Path],
) -> None:
    task, _ = mixed
    sync()
    FetchTask.objects.filter(pk=task.pk).update(extract_sent_with="")  # as after the migration
    assert sync().counts["DOCS"]["unchanged"] == 6


@pytest.fixture
def in_readers(monkeypatch: pytest.MonkeyPatch, settings) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """Every job but the first (the root folder's) goes to a reader process (started
    afresh, so it sees the environment): tests put their documents in a subfolder."""
    readers.shutdown()
    settings.CONNECTOR_SYNCHRONIZE_READERS = 1
    monkeypatch.setattr(synchronize, "READERS_AFTER", 0)
    yield
    readers.shutdown()


def below(task: FetchTask) -> Path:
    """Move the task's documents into a subfolder (jobs of subfolders go to readers)."""
    root = Path(task.directory_paths[0])
    (root / "sub").mkdir()
    for path in list(root.iterdir()):
        if path.is_file():
            path.rename(root / "sub" / path.name)
    return root / "sub"


def test_reader_processes_send_the_same_extracted_documents(
    mixed: tuple[FetchTask, Path], in_readers: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    task, ingest = mixed
    below(task)
    # Not in the worker: it would fail every document it extracted.
    monkeypatch.setattr(Extractor, "extract", lambda *a, **k: pytest.fail("in the worker"))
    action = sync()
    assert action.counts["DOCS"]["extractfailed"] == 1
    docs = sent(ingest)
    assert docs["report.pdf"].content == "Page one\n\nPage two"
    assert dict(docs["page.html"].fields)["CONTENTMODE"] == "extracted"


def test_a_hung_parser_in_a_reader_times_out_and_a_stop_does_not_wait_for_it(
    mixed: tuple[FetchTask, Path], in_readers: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    task, ingest = mixed
    folder = below(task)
    monkeypatch.setenv("CONNECTOR_EXTRACT_TEST_HANG", "HANG-MARKER")
    (folder / "hang.pdf").write_bytes(b"%PDF-1.4\nHANG-MARKER\n")
    task.extract_timeout_seconds = 1
    task.save()
    action = sync()
    assert action.status == Status.FINISHED
    assert dict(sent(ingest)["hang.pdf"].fields)["EXTRACTFAILED"] == "timed out after 1 s"
    assert action.counts["DOCS"]["added"] == 8  # 7 files and lunch.eml's attachment
    # Now a limit longer than the Stop bound: the Stop must end the run first. (The
    # reader itself goes on until the limit: readers.shutdown waits for it.)
    # In a new folder: no rows, so its job goes to a reader whole (not compared here).
    (folder / "new").mkdir()
    (folder / "new" / "hang2.pdf").write_bytes(b"%PDF-1.4\nHANG-MARKER 2\n")
    task.extract_timeout_seconds = 8
    task.save()
    stop = threading.Event()
    threading.Timer(1.0, stop.set).start()
    started = time.monotonic()
    action = sync(stop)
    assert action.status == Status.STOPPED
    assert time.monotonic() - started < 5


# --- View&Extracted=true ----------------------------------------------------------------


def test_view_extracted_shows_what_synchronize_would_send_as_inert_text(
    client, mixed: tuple[FetchTask, Path]
) -> None:  # type: ignore[no-untyped-def]
    identifier = encode_identifier("DOCS", 0, "page.html")
    response = client.get("/?" + urlencode({"action": "View", "Identifier": identifier,
                                            "Extracted": "true"}))  # fmt: skip
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"] == csp.DOCUMENT_POLICY
    [document] = parse_idx(response.content.decode("utf-8"))
    assert (document.reference, document.title) == (identifier, "Hello page")
    assert document.content == "Welcome\n\nVisible text."
    assert dict(document.fields)["CONTENTMODE"] == "extracted"
    # The same document Synchronize sends.
    _, ingest = mixed
    sync()
    assert sent(ingest)["page.html"] == document
    # View itself is unchanged: the original bytes.
    plain = client.get("/?" + urlencode({"action": "View", "Identifier": identifier}))
    assert b"".join(plain.streaming_content) == corpus.HTML


def test_view_extracted_in_an_aci_answer(client, mixed: tuple[FetchTask, Path]) -> None:  # type: ignore[no-untyped-def]
    identifier = encode_identifier("DOCS", 0, "broken.pdf")
    response = client.get("/?" + urlencode({"action": "View", "Identifier": identifier,
                                            "Extracted": "true", "NoACI": "false"}))  # fmt: skip
    assert response.status_code == 200
    idx = ElementTree.fromstring(response.content).find(".//idx")
    assert idx is not None and idx.text is not None
    [document] = parse_idx(idx.text)
    assert dict(document.fields)["EXTRACTFAILED"].startswith("cannot be parsed")


def test_view_extracted_refuses_a_bad_value(client, mixed: tuple[FetchTask, Path]) -> None:  # type: ignore[no-untyped-def]
    identifier = encode_identifier("DOCS", 0, "page.html")
    response = client.get("/?" + urlencode({"action": "View", "Identifier": identifier,
                                            "Extracted": "perhaps"}))  # fmt: skip
    answer = ElementTree.fromstring(response.content)
    assert answer.findtext(".//response") == "ERROR"
    assert answer.findtext(".//errorstring") == "Invalid parameter"  # ERRORPARAMINVALID
    assert "Extracted" in (answer.findtext(".//errordescription") or "")


def test_get_status_shows_extractfailed_after_errors(client, mixed: tuple[FetchTask, Path]) -> None:  # type: ignore[no-untyped-def]
    action = sync()
    query = {"action": "QueueInfo", "QueueAction": "GetStatus", "QueueName": "fetch",
             "Token": action.token}  # fmt: skip
    response = client.get("/?" + urlencode(query))
    count = ElementTree.fromstring(response.content).find(".//documentcount")
    assert count is not None
    assert list(count.attrib.items()) == [
        ("task", "DOCS"), ("seen", "6"), ("added", "7"), ("updated", "0"), ("deleted", "0"),
        ("unchanged", "0"), ("errors", "0"), ("extractfailed", "1"),
    ]  # fmt: skip
