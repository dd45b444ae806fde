"""Archives as documents (issue 15): members of zip and tar archives and e-mail
attachments, their references, bounds, and how Synchronize keeps them in step."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import documents_corpus as corpus
import pytest
from fetch_helpers import run, submit

from connector.fetch import synchronize
from connector.ingest import archives, readers
from connector.ingest import extract as extraction
from connector.ingest.archives import Parent, member_path, open_document
from connector.ingest.extract import Extractor
from connector.ingest.idx import IdxDocument, parse_idx
from connector.ingest.kinds import ExtractSettings, detect
from connector.models import Action, DatastoreDocument, FetchTask, Status
from connector.repositories.filesystem import encode_identifier
from connector.tasks_config import read_tasks_file

SETTINGS = ExtractSettings(timeout=20)
MEMBER_TIME = "2026-03-04T05:06:08Z"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def opened(data: bytes, settings: ExtractSettings = SETTINGS) -> tuple[
    tuple[str | None, str, list[tuple[str, str]], str | None], str | None, archives.Members
]:  # fmt: skip
    kind = detect(data, "x")
    assert kind is not None
    parent = Parent("DOCS", "REF", "a/box.zip", 1_700_000_000 * 10**9, "added")
    return open_document(data, kind, settings, parent)


def documents(members: archives.Members) -> list[IdxDocument]:
    return [parse_idx(idx.decode("utf-8"))[0] for idx in members.idx]


def shown(document: IdxDocument) -> tuple[str, str | None, dict[str, str]]:
    return document.reference, document.content, dict(document.fields)


# --- Names -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("folder/sub/notes.txt", "folder/sub/notes.txt"),
        ("../../etc/passwd", "%2E%2E/%2E%2E/etc/passwd"),
        ("/etc/passwd", "etc/passwd"),
        ("a/./b//c", "a/b/c"),
        ("windows\\path\\x.txt", "windows/path/x.txt"),
        ("pipe|hash#percent%.txt", "pipe%7Chash%23percent%25.txt"),
        ("line\nbreak\u2028.txt", "line%0Abreak%E2%80%A8.txt"),
        ("bad\udcffbyte", "bad%FFbyte"),  # an undecodable byte, as tarfile gives it
        ("..", "%2E%2E"),
        ("/", "%2E"),
        ("café.txt", "café.txt"),
    ],
)
def test_member_names_never_escape_and_cannot_fake_a_level(name: str, path: str) -> None:
    assert member_path(name) == path


# --- Opening archives (the extraction child) ---------------------------------------------


def test_zip_with_nested_folders_each_member_a_document_with_its_own_reference() -> None:
    (text, _, fields, mode), failed, members = opened(corpus.zip_nested())
    assert failed is None and members.refused is None
    listing = [
        "folder/sub/notes.txt", "folder/report.docx", "inner.zip",
        "%2E%2E/%2E%2E/etc/passwd", "abs%7Colute%25.txt",
    ]  # fmt: skip
    assert (text, mode) == ("\n".join(listing), "extracted")
    assert fields == [("CONTENTTYPE", "application/zip"), ("MEMBERCOUNT", "5")]
    docs = documents(members)
    assert [d.reference for d in docs] == [
        "REF|folder/sub/notes.txt",
        "REF|folder/report.docx",
        "REF|inner.zip",
        "REF|inner.zip|deep/inner.txt",  # a member of a member: right after it
        "REF|%2E%2E/%2E%2E/etc/passwd",
        "REF|abs%7Colute%25.txt",
    ]
    _, content, notes = shown(docs[0])
    assert content == "nested notes"
    assert notes == {
        "DREREFERENCE": "REF|folder/sub/notes.txt", "TASK": "DOCS",
        "PATH": "a/box.zip|folder/sub/notes.txt", "NAME": "notes.txt", "SIZE": "12",
        "MODIFIED": MEMBER_TIME, "SHA256": notes["SHA256"], "CONTENTMODE": "text",
        "PARENTREFERENCE": "REF",
    }  # fmt: skip
    assert docs[0].title == "notes.txt"
    _, content, report = shown(docs[1])
    assert content == "Agenda\n\nFirst paragraph.\n\nName Qty\nApples 3"
    assert (report["CONTENTMODE"], report["CONTENTTYPE"], report["PARENTREFERENCE"]) == (
        "extracted", DOCX, "REF",
    )  # fmt: skip
    _, content, inner = shown(docs[2])
    assert (content, inner["CONTENTTYPE"], inner["MEMBERCOUNT"]) == (
        "deep/inner.txt", "application/zip", "1",
    )  # fmt: skip
    _, content, deep = shown(docs[3])
    assert (content, deep["PARENTREFERENCE"], deep["PATH"]) == (
        "inner text", "REF|inner.zip", "a/box.zip|inner.zip|deep/inner.txt",
    )  # fmt: skip
    assert [shown(d)[1] for d in docs[4:]] == ["not a way out", "absolute"]
    assert [record[:2] for record in members.records] == [("added", d.reference) for d in docs]


def test_tar_gz_members_folders_and_links_are_not_documents() -> None:
    data = corpus.tar_of({"docs/a.txt": b"alpha", "docs/b.html": corpus.HTML}, compression="gz")
    (text, _, fields, _), failed, members = opened(data)
    assert (failed, text) == (None, "docs/a.txt\ndocs/b.html")
    assert fields == [("CONTENTTYPE", "application/x-tar"), ("MEMBERCOUNT", "2")]
    docs = documents(members)
    assert [shown(d)[:2] for d in docs] == [
        ("REF|docs/a.txt", "alpha"),
        ("REF|docs/b.html", "Welcome\n\nVisible text."),
    ]
    assert dict(docs[0].fields)["MODIFIED"] == MEMBER_TIME
    assert docs[1].title == "Hello page"


def test_email_attachments_are_members_and_a_repeated_name_is_numbered() -> None:
    (text, title, fields, mode), failed, members = opened(corpus.EML_ZIP)
    assert failed is None and mode == "extracted" and title == "Files"
    assert text is not None and text.endswith("Two files attached.")
    assert ("ATTACHMENTS", "menu.txt; menu.txt") in fields
    docs = documents(members)
    assert [shown(d)[:2] for d in docs] == [
        ("REF|menu.txt", "Soup of the day."),
        ("REF|menu.txt#2", "Dessert of the day."),
    ]
    # An attachment has no time of its own: its message's file's.
    assert dict(docs[0].fields)["MODIFIED"] == "2023-11-14T22:13:20Z"


def test_a_zip_bomb_is_refused_within_the_limit_never_inflated_in_memory() -> None:
    # 1 GiB of zeros in 1 MiB; the limit 4 MiB; the child may not even hold 256 MiB.
    bomb = corpus.zip_bomb_members()
    assert len(bomb) < 1100 * 1024
    settings = ExtractSettings(max_bytes=4 * 1024 * 1024, memory_limit=256 * 1024 * 1024)
    child = Extractor()
    try:
        started = time.monotonic()
        assert child.expand(bomb, "zip", settings, max_members=1000, max_bytes=4 << 20) == (
            [],
            "archive exceeds 4194304 bytes uncompressed",
        )
        assert time.monotonic() - started < 5
    finally:
        child.close()
    (text, _, fields, mode), failed, members = opened(bomb, settings)
    assert failed == "archive exceeds 4194304 bytes uncompressed"
    assert (text, mode, members.idx, members.refused) == (None, "reference", [], failed)
    assert fields == [("CONTENTTYPE", "application/zip"), ("EXTRACTFAILED", failed)]


def test_too_many_members_and_too_deep_nesting(monkeypatch: pytest.MonkeyPatch) -> None:
    many = corpus.zip_of({f"m{n}.txt": b"x" for n in range(5)})
    monkeypatch.setattr(archives, "MAX_MEMBERS", 4)
    _, failed, members = opened(many)
    assert (failed, members.idx) == ("archive has more than 4 members", [])
    monkeypatch.setattr(archives, "MAX_MEMBERS", 1000)
    level4 = corpus.zip_of({"end.txt": b"end"})
    nested = corpus.zip_of({"l2.zip": corpus.zip_of({"l3.zip": corpus.zip_of({"l4.zip": level4})})})
    _, failed, members = opened(nested)  # the top archive is level 1
    assert failed is None
    assert [d.reference for d in documents(members)] == [
        "REF|l2.zip", "REF|l2.zip|l3.zip", "REF|l2.zip|l3.zip|l4.zip",
    ]  # fmt: skip
    deepest = dict(documents(members)[-1].fields)
    assert (deepest["CONTENTMODE"], deepest["EXTRACTFAILED"]) == (
        "reference", "nested deeper than 3 archives",
    )  # fmt: skip
    assert members.failed == [("a/box.zip|l2.zip|l3.zip|l4.zip", "nested deeper than 3 archives")]


def test_a_corrupt_member_fails_alone() -> None:
    data = bytearray(corpus.zip_of({"good.txt": b"good text", "bad.txt": b"bad text " * 50}))
    at = data.find(b"bad.txt") + len(b"bad.txt") + 2  # inside its deflated bytes
    data[at : at + 4] = b"\xff\xff\xff\xff"
    _, failed, members = opened(bytes(data))
    assert failed is None
    docs = documents(members)
    assert shown(docs[0])[:2] == ("REF|good.txt", "good text")
    assert dict(docs[1].fields)["CONTENTMODE"] == "reference"
    assert dict(docs[1].fields)["EXTRACTFAILED"].startswith("cannot be read")


# --- Language ---------------------------------------------------------------------------

TEXTS = {
    "eng": "The committee met on Tuesday to review the budget for the coming year and agreed"
    " to publish its report next month.",
    "deu": "Der Ausschuss trat am Dienstag zusammen, um den Haushalt für das kommende Jahr zu"
    " prüfen, und beschloss, seinen Bericht im nächsten Monat zu veröffentlichen.",
    "fra": "Le comité s'est réuni mardi pour examiner le budget de l'année prochaine et a"
    " décidé de publier son rapport le mois prochain.",
}


def html(body: str, lang: str = "") -> bytes:
    declared = f' lang="{lang}"' if lang else ""
    return f"<!DOCTYPE html><html{declared}><body><p>{body}</p></body></html>".encode()


@pytest.fixture(scope="module")
def child() -> Iterator[Extractor]:
    extractor = Extractor()
    yield extractor
    extractor.close()


@pytest.mark.parametrize("language", sorted(TEXTS))
def test_language_detected_when_the_document_declares_none(child: Extractor, language: str) -> None:
    result = child.extract(html(TEXTS[language]), "html", SETTINGS)
    assert result.fields == [
        ("CONTENTTYPE", "text/html"), ("LANGUAGE", language), ("LANGUAGESOURCE", "detected"),
    ]  # fmt: skip


def test_no_language_for_too_short_a_text_and_a_declared_one_wins(child: Extractor) -> None:
    assert child.extract(html("Hello there, my friend."), "html", SETTINGS).fields == [
        ("CONTENTTYPE", "text/html")
    ]
    declared = html(TEXTS["eng"], lang="de-CH")  # what it says, not what it looks like
    assert child.extract(declared, "html", SETTINGS).fields == [
        ("CONTENTTYPE", "text/html"), ("LANGUAGE", "de-CH"), ("LANGUAGESOURCE", "declared"),
    ]  # fmt: skip


# --- Memory ------------------------------------------------------------------------------


def test_a_document_over_the_memory_limit_fails_and_the_next_is_extracted() -> None:
    # No size limit to speak of: only the child's address space stops the bomb.
    settings = ExtractSettings(max_bytes=1 << 40, memory_limit=384 * 1024 * 1024)
    child = Extractor()
    try:
        members, failed = child.expand(
            corpus.zip_bomb_members(2, 512), "zip", settings, max_members=1000, max_bytes=1 << 40
        )
        assert (members, failed) == ([], "exceeds the memory limit")
        assert child.extract(corpus.docx(), "docx", settings).failed is None
    finally:
        child.close()


# --- Synchronize ---------------------------------------------------------------------


@pytest.fixture
def boxes(tmp_path: Path, db: None) -> tuple[FetchTask, Path]:
    root = tmp_path / "docs"
    root.mkdir()
    (root / "box.zip").write_bytes(corpus.zip_nested())
    (root / "mail.eml").write_bytes(corpus.EML_ZIP)
    (root / "notes.txt").write_text("plain")
    ingest = tmp_path / "ingest"
    task = FetchTask.objects.create(name="DOCS", directory_paths=[str(root)],
                                    ingest_directory=str(ingest))  # fmt: skip
    return task, ingest


def sync() -> Action:
    action = run(submit("Synchronize", TaskSections="DOCS"))
    assert action.status == Status.FINISHED, action.error
    return action


def ref(name: str) -> str:
    return encode_identifier("DOCS", 0, name)


def sent(ingest: Path) -> list[IdxDocument]:
    return [d for p in sorted(ingest.glob("*.idx")) for d in parse_idx(p.read_text("utf-8"))]


def deleted(ingest: Path) -> list[str]:
    return [line for p in sorted(ingest.glob("*.del")) for line in p.read_text().splitlines()]


def rows(task: FetchTask) -> dict[str, str]:
    return dict(DatastoreDocument.objects.filter(task=task).values_list("identifier", "folder"))


BOX_MEMBERS = [
    "folder/sub/notes.txt", "folder/report.docx", "inner.zip", "inner.zip|deep/inner.txt",
    "%2E%2E/%2E%2E/etc/passwd", "abs%7Colute%25.txt",
]  # fmt: skip


def test_synchronize_sends_members_after_their_archive_and_records_them(
    boxes: tuple[FetchTask, Path],
) -> None:
    task, ingest = boxes
    action = sync()
    box, mail = ref("box.zip"), ref("mail.eml")
    assert [d.reference for d in sent(ingest)] == [
        box, *[f"{box}|{m}" for m in BOX_MEMBERS],
        mail, f"{mail}|menu.txt", f"{mail}|menu.txt#2",
        ref("notes.txt"),
    ]  # fmt: skip
    counts = action.counts["DOCS"]
    assert (counts["seen"], counts["added"], counts["extractfailed"]) == (3, 11, 0)
    by_reference = {d.reference: d for d in sent(ingest)}
    deep = dict(by_reference[f"{box}|inner.zip|deep/inner.txt"].fields)
    assert (deep["PATH"], deep["PARENTREFERENCE"]) == (
        "box.zip|inner.zip|deep/inner.txt", f"{box}|inner.zip",
    )  # fmt: skip
    assert by_reference[f"{mail}|menu.txt#2"].content == "Dessert of the day."
    folders = rows(task)
    assert folders[f"{box}|folder/report.docx"] == f"{box}|"
    assert folders[f"{box}|inner.zip|deep/inner.txt"] == f"{box}|inner.zip|"
    assert folders[box] == folders[ref("notes.txt")] != f"{box}|"
    assert len(folders) == 11  # what was sent: 3 files, 6 + 2 members


def test_an_unchanged_archive_is_not_opened_again_and_keeps_its_members(
    boxes: tuple[FetchTask, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    task, ingest = boxes
    sync()
    calls: list[str] = []
    monkeypatch.setattr(Extractor, "expand", lambda *a, **k: calls.append("expand"))
    monkeypatch.setattr(Extractor, "extract", lambda *a, **k: calls.append("extract"))
    counts = sync().counts["DOCS"]
    assert (counts["unchanged"], counts["added"], counts["updated"], counts["deleted"]) == (
        3, 0, 0, 0,
    )  # fmt: skip
    assert calls == [] and deleted(ingest) == [] and len(rows(task)) == 11


def test_a_changed_archive_deletes_the_members_it_no_longer_has(
    boxes: tuple[FetchTask, Path],
) -> None:
    task, ingest = boxes
    sync()
    root = Path(task.directory_paths[0])
    (root / "box.zip").write_bytes(
        corpus.zip_of({"folder/sub/notes.txt": b"nested notes, changed", "new.txt": b"new"})
    )
    counts = sync().counts["DOCS"]
    box = ref("box.zip")
    gone = [f"{box}|{m}" for m in BOX_MEMBERS if m != "folder/sub/notes.txt"]
    assert sorted(deleted(ingest)) == sorted(gone)
    assert (counts["updated"], counts["deleted"]) == (3, 5)  # the archive and 2 members
    assert sorted(i for i in rows(task) if i.startswith(box)) == sorted(
        [box, f"{box}|folder/sub/notes.txt", f"{box}|new.txt"]
    )
    assert sync().counts["DOCS"]["deleted"] == 0  # once only


def test_a_removed_archive_deletes_its_members_at_every_level(
    boxes: tuple[FetchTask, Path],
) -> None:
    task, ingest = boxes
    sync()
    root = Path(task.directory_paths[0])
    (root / "box.zip").unlink()
    (root / "mail.eml").write_text("now plain text, no attachments")
    counts = sync().counts["DOCS"]
    box, mail = ref("box.zip"), ref("mail.eml")
    assert sorted(deleted(ingest)) == sorted(
        [box, *[f"{box}|{m}" for m in BOX_MEMBERS], f"{mail}|menu.txt", f"{mail}|menu.txt#2"]
    )
    assert counts["deleted"] == 9
    assert sorted(rows(task)) == sorted([mail, ref("notes.txt")])


def test_archives_off_sends_the_archive_by_reference_and_drops_its_members(
    boxes: tuple[FetchTask, Path],
) -> None:
    task, ingest = boxes
    sync()
    FetchTask.objects.filter(pk=task.pk).update(extract_archives=False)
    counts = sync().counts["DOCS"]  # a settings change: every document again
    assert (counts["updated"], counts["deleted"]) == (3, 8)
    last = parse_idx(sorted(ingest.glob("*.idx"))[-1].read_text("utf-8"))
    fields = {d.reference: dict(d.fields) for d in last}
    assert fields[ref("box.zip")]["CONTENTMODE"] == "reference"
    assert fields[ref("mail.eml")]["CONTENTMODE"] == "extracted"
    assert len(last) == 3


def test_a_large_archive_read_by_the_worker_has_its_members(
    boxes: tuple[FetchTask, Path],
) -> None:
    task, ingest = boxes
    noise = random.Random(15).randbytes(512 * 1024)  # does not deflate
    big = corpus.zip_of({"big.bin": noise, "small.txt": b"small"})
    assert len(big) > synchronize.scan.SMALL_DOCUMENT
    (Path(task.directory_paths[0]) / "big.zip").write_bytes(big)
    sync()
    by_reference = {d.reference: d for d in sent(ingest)}
    big_zip = ref("big.zip")
    assert by_reference[big_zip].content == "big.bin\nsmall.txt"
    assert by_reference[f"{big_zip}|small.txt"].content == "small"
    assert dict(by_reference[f"{big_zip}|big.bin"].fields)["CONTENTMODE"] == "reference"
    assert rows(task)[f"{big_zip}|small.txt"] == f"{big_zip}|"


def test_a_zip_bomb_in_a_task_is_refused_and_the_run_goes_on(
    boxes: tuple[FetchTask, Path],
) -> None:
    task, ingest = boxes
    (Path(task.directory_paths[0]) / "bomb.zip").write_bytes(corpus.zip_bomb_members())
    action = sync()
    by_reference = {d.reference: d for d in sent(ingest)}
    bomb = dict(by_reference[ref("bomb.zip")].fields)
    assert (bomb["CONTENTMODE"], bomb["EXTRACTFAILED"]) == (
        "reference", "archive exceeds 33554432 bytes uncompressed",
    )  # fmt: skip
    assert not [r for r in by_reference if r.startswith(ref("bomb.zip") + "|")]
    assert action.counts["DOCS"]["extractfailed"] == 1
    assert by_reference[f"{ref('box.zip')}|folder/sub/notes.txt"].content == "nested notes"


def test_a_document_over_the_memory_limit_in_a_task_fails_and_the_run_goes_on(
    boxes: tuple[FetchTask, Path], settings
) -> None:  # type: ignore[no-untyped-def]
    task, ingest = boxes
    settings.CONNECTOR_EXTRACT_MEMORY_MIB = 384
    # Only the memory limit stops the bomb.
    FetchTask.objects.filter(pk=task.pk).update(extract_max_bytes=1 << 40)
    (Path(task.directory_paths[0]) / "bomb.zip").write_bytes(corpus.zip_bomb_members(2, 512))
    try:
        action = sync()
    finally:
        extraction.shutdown()  # the next test's child gets the default limit
    by_reference = {d.reference: d for d in sent(ingest)}
    assert dict(by_reference[ref("bomb.zip")].fields)["EXTRACTFAILED"] == (
        "exceeds the memory limit"
    )
    report = by_reference[f"{ref('box.zip')}|folder/report.docx"]
    assert dict(report.fields)["CONTENTMODE"] == "extracted"
    assert action.counts["DOCS"]["extractfailed"] == 1


def test_tasks_file_extract_archives(tmp_path: Path) -> None:
    ini = tmp_path / "tasks.cfg"
    (tmp_path / "docs").mkdir()
    head = "[FetchTasks]\nNumber=1\n0=DOCS\n[DOCS]\nDirectoryPathCSVs=docs\n"
    ini.write_text(head)
    assert read_tasks_file(ini)[0].extract_archives is True  # the default
    ini.write_text(head + "ExtractArchives=false\n")
    assert read_tasks_file(ini)[0].extract_archives is False


def test_members_made_in_a_reader_process_are_the_same(
    boxes: tuple[FetchTask, Path], monkeypatch: pytest.MonkeyPatch, settings
) -> None:  # type: ignore[no-untyped-def]
    task, ingest = boxes
    sync()
    here = [(d.reference, d.content, d.fields) for d in sent(ingest)]
    for batch in ingest.iterdir():
        batch.unlink()
    DatastoreDocument.objects.filter(task=task).delete()
    # Every job but the root's goes to a reader process: the documents move below it.
    readers.shutdown()
    settings.CONNECTOR_SYNCHRONIZE_READERS = 1
    monkeypatch.setattr(synchronize, "READERS_AFTER", 0)
    root = Path(task.directory_paths[0])
    (root / "sub").mkdir()
    for path in [p for p in root.iterdir() if p.is_file()]:
        path.rename(root / "sub" / path.name)
    try:
        sync()
    finally:
        readers.shutdown()
    there = [(d.reference, d.content, d.fields) for d in sent(ingest)]
    moved = {ref(f"sub/{n}"): ref(n) for n in ("box.zip", "mail.eml", "notes.txt")}

    def as_at_the_root(reference: str) -> str:
        archive, bar, member = reference.partition("|")
        return moved.get(archive, archive) + bar + member

    assert [as_at_the_root(r) for r, _, _ in there] == [r for r, _, _ in here]
    assert [c for _, c, _ in there] == [c for _, c, _ in here]
    assert len(there) == 11


def test_view_extracted_of_an_archive_is_what_synchronize_sends_for_it(
    client, boxes: tuple[FetchTask, Path]
) -> None:  # type: ignore[no-untyped-def]
    _, ingest = boxes
    box = ref("box.zip")
    response = client.get("/?" + urlencode({"action": "View", "Identifier": box,
                                            "Extracted": "true"}))  # fmt: skip
    assert response.status_code == 200
    [document] = parse_idx(response.content.decode("utf-8"))
    assert document.content == "\n".join(m for m in BOX_MEMBERS if "|" not in m)
    sync()
    assert {d.reference: d for d in sent(ingest)}[box] == document


def test_a_member_reference_is_not_an_identifier_for_view(
    client, boxes: tuple[FetchTask, Path]
) -> None:  # type: ignore[no-untyped-def]
    sync()
    member = f"{ref('box.zip')}|folder/sub/notes.txt"
    response = client.get("/?" + urlencode({"action": "View", "Identifier": member}))
    assert b"ERRORPARAMINVALID" in response.content
    assert b"URL-safe base64" in response.content
