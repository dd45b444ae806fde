"""Synchronize's folder jobs: in reader processes, in slices, and what they never do."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest

from connector import queue
from connector.fetch import synchronize
from connector.fetch.base import execute, get_fetch_action
from connector.ingest import readers, scan
from connector.ingest.idx import IdxDocument, parse_idx
from connector.models import Action, DatastoreDocument, FetchTask, Status
from connector.params import Params
from connector.repositories.filesystem import encode_identifier

ROOT = Path(__file__).resolve().parents[3]


def sync(task: str = "DOCS", **params: str) -> Action:
    params = {"TaskSections": task, **params}
    tasks = get_fetch_action("Synchronize").validate(Params(params))
    action = queue.submit_action(fetch_action="Synchronize", params=params, tasks=tasks)
    [claimed] = queue.claim_actions(queue="fetch", worker="w1", limit=1)
    execute(claimed, worker="w1", stop_event=threading.Event())
    done = Action.objects.get(pk=action.pk)
    assert done.status == Status.FINISHED, done.error
    return done


def documents(folder: Path) -> list[IdxDocument]:
    return [
        doc for path in sorted(folder.glob("*.idx")) for doc in parse_idx(path.read_text("utf-8"))
    ]


def deleted(folder: Path) -> list[str]:
    return [line for path in sorted(folder.glob("*.del")) for line in path.read_text().split()]


def comparable(docs: list[IdxDocument]) -> list[tuple[str, str, list[tuple[str, str]], str | None]]:
    return [(d.reference, d.title, d.fields, d.content) for d in docs]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    for n in range(60):
        folder = root / f"folder{n % 4}" / ("deep" if n % 3 == 0 else "")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"doc{n:02d}.txt").write_text(f"Document {n}.\n")
        os.utime(folder / f"doc{n:02d}.txt", ns=(1_700_000_000_000_000_000,) * 2)
    (root / "binary.bin").write_bytes(b"\0\1\2")
    (root / "big.txt").write_text("x" * (scan.SMALL_DOCUMENT + 10))
    return root


@pytest.fixture
def in_processes(monkeypatch: pytest.MonkeyPatch, settings) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """Every job of a run goes to two reader processes, from the first document on."""
    settings.CONNECTOR_SYNCHRONIZE_READERS = 2
    monkeypatch.setattr(synchronize, "READERS_AFTER", 0)
    yield
    readers.shutdown()


def make_task(name: str, tree: Path, ingest: Path) -> FetchTask:
    return FetchTask.objects.create(
        name=name, directory_paths=[str(tree)], ingest_directory=str(ingest)
    )


def test_a_run_in_reader_processes_sends_what_a_run_in_the_worker_sends(
    db: None,
    tree: Path,
    tmp_path: Path,
    settings,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    def write(relative: str, text: str | None) -> None:
        # At a fixed time, so both runs see the same MODIFIED whenever they ran.
        path = tree / relative
        if text is None:
            path.unlink()
        else:
            path.write_text(text)
            os.utime(path, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))

    settings.CONNECTOR_SYNCHRONIZE_READERS = 0
    here = make_task("DOCS", tree, tmp_path / "here")
    first_here = sync()
    write("folder1/doc01.txt", "Changed.\n")
    write("folder2/doc02.txt", None)
    second_here = sync()
    # The same tree and changes again, for a task whose jobs run in reader processes.
    write("folder1/doc01.txt", "Document 1.\n")
    write("folder2/doc02.txt", "Document 2.\n")
    here.delete()
    make_task("DOCS", tree, tmp_path / "there")
    settings.CONNECTOR_SYNCHRONIZE_READERS = 2
    monkeypatch.setattr(synchronize, "READERS_AFTER", 0)
    try:
        first_there = sync()
        assert readers.process_ids(), "the jobs did not go to reader processes"
        write("folder1/doc01.txt", "Changed.\n")
        write("folder2/doc02.txt", None)
        second_there = sync()
    finally:
        readers.shutdown()
    assert first_there.counts == first_here.counts
    assert second_there.counts == second_here.counts
    assert second_there.counts["DOCS"]["updated"] == 1
    assert second_there.counts["DOCS"]["deleted"] == 1
    assert comparable(documents(tmp_path / "there")) == comparable(documents(tmp_path / "here"))
    assert deleted(tmp_path / "there") == deleted(tmp_path / "here")
    assert len(documents(tmp_path / "here")) == 63


def test_a_reader_process_killed_costs_time_not_documents(
    db: None, tree: Path, tmp_path: Path, in_processes: None
) -> None:
    make_task("DOCS", tree, tmp_path / "ingest")
    sync()
    for pid in readers.process_ids():
        os.kill(pid, signal.SIGKILL)
    for n in range(0, 60, 7):
        path = next(tree.rglob(f"doc{n:02d}.txt"))
        path.write_text(f"Document {n}, changed.\n")
    action = sync()
    assert action.counts["DOCS"]["updated"] == 9
    assert action.counts["DOCS"]["errors"] == 0
    contents = {d.reference: d.content for d in documents(tmp_path / "ingest")}
    assert contents[encode_identifier("DOCS", 0, "folder0/deep/doc00.txt")] == (
        "Document 0, changed."
    )
    # Not started again at once: a pool that breaks may break again.
    assert readers.process_ids() == []


def test_a_reader_process_has_sigint_blocked_from_its_start_and_the_caller_not(
    tree: Path, in_processes: None
) -> None:
    # A terminal's Ctrl-C reaches the whole process group, reader processes
    # included, maybe while one is still starting (issue 14, 2): blocked from
    # its first instruction, inherited from the submitting thread's mask.
    scope = scan.Scope("DOCS", 0, str(tree), True, None, None)
    reader = readers.Reader(in_processes=True, checkpoint=lambda: None)
    job = scan.FolderJob(scope=scope, path="folder1", known={})
    assert reader.result(job, reader.submit(job)).seen == 10
    for pid in readers.process_ids():
        status = Path(f"/proc/{pid}/status").read_text()
        blocked = int(
            next(line for line in status.splitlines() if line.startswith("SigBlk:")).split()[1], 16
        )
        assert blocked & (1 << (signal.SIGINT - 1))
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, set())


def test_a_job_lost_with_its_process_is_run_in_the_worker(tree: Path) -> None:
    scope = scan.Scope("DOCS", 0, str(tree), True, None, None)
    job = scan.FolderJob(scope=scope, path="folder1", known={})
    lost: Future[scan.FolderResult] = Future()
    lost.set_exception(BrokenProcessPool("killed"))
    result = readers.Reader(in_processes=True, checkpoint=lambda: None).result(job, lost)
    assert result.seen == 10 and len(result.records) == 10 and result.error is None


def test_a_job_reads_about_a_mib_and_hands_back_the_rest(
    db: None, tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Twelve bytes a job: every job stops after a document or two.
    monkeypatch.setattr(scan, "JOB_BYTES", 12)
    make_task("DOCS", tree, tmp_path / "ingest")
    action = sync()
    assert action.counts["DOCS"]["added"] == 62 and action.counts["DOCS"]["seen"] == 62
    references = [d.reference for d in documents(tmp_path / "ingest")]
    assert len(references) == len(set(references)) == 62
    assert sync().counts["DOCS"]["unchanged"] == 62


def test_a_folder_larger_than_a_job_is_done_in_slices_in_reader_processes(
    db: None, tree: Path, tmp_path: Path, in_processes: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scan, "JOB_DOCUMENTS", 4)
    make_task("DOCS", tree, tmp_path / "ingest")
    assert sync().counts["DOCS"]["added"] == 62
    for n in (4, 8):
        next(tree.rglob(f"doc{n:02d}.txt")).unlink()
    action = sync()
    assert action.counts["DOCS"]["deleted"] == 2 and action.counts["DOCS"]["unchanged"] == 60
    assert DatastoreDocument.objects.count() == 60


def test_a_folder_gone_with_its_subfolders_is_deleted_whole(
    db: None, tree: Path, tmp_path: Path
) -> None:
    make_task("DOCS", tree, tmp_path / "ingest")
    sync()
    gone = {d.name for d in (tree / "folder3").rglob("*.txt")}
    for path in sorted((tree / "folder3").rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    (tree / "folder3").rmdir()
    action = sync()
    assert action.counts["DOCS"]["deleted"] == len(gone) == 15
    assert len(deleted(tmp_path / "ingest")) == 15


def test_names_that_are_not_ascii_or_not_utf8_are_found_again_and_kept_apart(
    db: None, tmp_path: Path
) -> None:
    root = tmp_path / "names"
    root.mkdir()
    # Two names that are not UTF-8 show as the same path: r\ufffd.txt.
    for raw in (b"r\xff.txt", b"r\xfe.txt", "caf\u00e9.txt".encode(), b"plain.txt"):
        (root / os.fsdecode(raw)).write_bytes(raw)
    make_task("DOCS", root, tmp_path / "ingest")
    assert sync().counts["DOCS"]["added"] == 4
    assert sync().counts["DOCS"]["unchanged"] == 4
    (root / os.fsdecode(b"r\xfe.txt")).write_text("changed")
    (root / "caf\u00e9.txt").unlink()
    action = sync()
    assert action.counts["DOCS"] == {
        "seen": 3, "added": 0, "updated": 1, "deleted": 1, "unchanged": 2, "errors": 0,
        "extractfailed": 0,
    }  # fmt: skip
    [changed] = [d for d in documents(tmp_path / "ingest") if d.content == "changed"]
    assert changed.reference == encode_identifier("DOCS", 0, os.fsdecode(b"r\xfe.txt"))
    assert deleted(tmp_path / "ingest") == [encode_identifier("DOCS", 0, "caf\u00e9.txt")]


def known_rows(result: scan.FolderResult) -> dict[str, scan.Known]:
    """The datastore rows a run would have made of a job's records."""
    return {
        identifier: (pk, size, modified_ns, digest, 1, None)
        for pk, (_, identifier, _, size, modified_ns, digest, _) in enumerate(result.records, 1)
    }


def outcome(result: scan.FolderResult) -> tuple[object, ...]:
    """All of a result but its subfolders and skipped names (the listing's part)."""
    return (result.error, result.seen, result.unchanged, result.idx, result.records,
            result.touched, result.gone, result.failed, result.too_many, result.rest)  # fmt: skip


def test_a_folder_listed_in_one_job_and_compared_in_another_gives_what_one_job_gives(
    tree: Path,
) -> None:
    scope = scan.Scope("DOCS", 0, str(tree), True, None, None)
    folder = tree / "folder1"
    known = known_rows(scan.run_job(scan.FolderJob(scope=scope, path="folder1", known={})))
    (folder / "doc01.txt").write_text("Changed, and longer.\n")  # updated
    os.utime(folder / "doc05.txt", ns=(1_800_000_000_000_000_000,) * 2)  # touched only
    (folder / "doc17.txt").unlink()  # gone
    (folder / "new.txt").write_text("New.\n")  # added
    forced = encode_identifier("DOCS", 0, "folder1/doc13.txt")
    job = scan.FolderJob(scope=scope, path="folder1", known=known, forced=frozenset({forced}))

    listed = scan.run_job(scan.FolderJob(scope=scope, path="folder1", known=None, list_only=True))
    names = sorted(p.name for p in folder.iterdir() if p.is_file())
    assert listed.listing == [
        (name, encode_identifier("DOCS", 0, f"folder1/{name}"),
         (folder / name).lstat().st_size, (folder / name).lstat().st_mtime_ns)
        for name in names
    ]  # fmt: skip
    assert listed.folders == ["deep"] and listed.idx == [] and listed.records == []

    alone = scan.run_job(job)
    compared = scan.run_job(dataclasses.replace(job, listing=listed.listing))
    assert outcome(compared) == outcome(alone)
    assert [record[0] for record in compared.records] == ["updated", "updated", "added"]
    assert len(compared.touched) == 1 and len(compared.gone) == 1


def test_a_document_the_listing_could_not_stat_is_stated_again_when_compared(
    tree: Path,
) -> None:
    scope = scan.Scope("DOCS", 0, str(tree), True, None, None)
    known = known_rows(scan.run_job(scan.FolderJob(scope=scope, path="folder2", known={})))
    listed = scan.run_job(scan.FolderJob(scope=scope, path="folder2", known=None, list_only=True))
    assert listed.listing is not None
    # As if both had gone between listing and stat; one has come back unchanged.
    listing = [
        (name, identifier, -1, -1) if name in ("doc02.txt", "doc06.txt") else entry
        for entry in listed.listing
        for name, identifier, _, _ in [entry]
    ]
    (tree / "folder2" / "doc02.txt").unlink()
    job = scan.FolderJob(scope=scope, path="folder2", known=known, listing=listing)
    result = scan.run_job(job)
    assert result.failed == [("folder2/doc02.txt", "it no longer exists")]
    assert result.unchanged == len(listing) - 1 and result.records == []


def test_folders_with_rows_are_only_listed_in_readers_and_compared_in_the_worker(
    db: None, tree: Path, tmp_path: Path, in_processes: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_task("DOCS", tree, tmp_path / "ingest")
    sync()
    handed: list[scan.FolderJob] = []
    submit = readers.Reader.submit

    def spy(reader: readers.Reader, job: scan.FolderJob) -> Future[scan.FolderResult]:
        if reader.in_processes:  # a run's first job is done in the worker
            handed.append(job)
        return submit(reader, job)

    monkeypatch.setattr(readers.Reader, "submit", spy)
    (tree / "folder1" / "doc01.txt").write_text("Changed.\n")
    action = sync()
    assert action.counts["DOCS"]["updated"] == 1 and action.counts["DOCS"]["unchanged"] == 61
    # Every folder has rows: none of them went to a reader with its rows.
    assert len(handed) == 8
    assert all(job.list_only and job.known is None for job in handed)

    # More changed than the worker reads itself: that folder goes to a reader whole.
    monkeypatch.setattr(synchronize, "READ_HERE", 2)
    handed.clear()
    for name in ("doc02.txt", "doc10.txt", "doc14.txt"):
        (tree / "folder2" / name).write_text("Changed again.\n")
    action = sync()
    assert action.counts["DOCS"]["updated"] == 3
    [whole] = [job for job in handed if not job.list_only]
    assert whole.path == "folder2" and whole.known and len(whole.known) == 10
    contents = {d.reference: d.content for d in documents(tmp_path / "ingest")}
    assert contents[encode_identifier("DOCS", 0, "folder2/doc10.txt")] == "Changed again."


def test_the_scan_module_imports_nothing_of_django() -> None:
    # Reader processes start by importing it: no settings, no app registry.
    probe = (
        "import sys, connector.ingest.scan;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'django'))"
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_a_reader_process_imports_nothing_of_django(tree: Path, in_processes: None) -> None:
    # What a reader process runs is imported there (by name), its start-up function
    # too: Django would cost every reader process tens of ms of CPU at its start.
    pool = readers._get_pool()
    assert pool is not None
    probe = "sorted(m for m in __import__('sys').modules if m.split('.')[0] == 'django')"
    assert pool.submit(eval, probe).result() == []
    scope = scan.Scope("DOCS", 0, str(tree), True, None, None)
    assert pool.submit(scan.run_job, scan.FolderJob(scope, "folder1", {})).result().seen == 10
    assert pool.submit(eval, probe).result() == []
    # And each ignores Ctrl-C, which reaches the whole process group.
    for pid in readers.process_ids():
        status = Path(f"/proc/{pid}/status").read_text()
        ignored = int(
            next(line for line in status.splitlines() if line.startswith("SigIgn:")).split()[1], 16
        )
        assert ignored & (1 << (signal.SIGINT - 1))


def test_a_job_of_text_files_loads_nothing_of_extraction(tmp_path: Path) -> None:
    # A reader process loads the parsing and archive modules for its first document
    # to extract, not before: a first run of text files starts lighter that way.
    (tmp_path / "a.txt").write_text("Plain text.\n")
    (tmp_path / "b.txt").write_text("Subject: not a message\n")
    probe = (
        "import sys;"
        "from connector.ingest import scan;"
        "from connector.ingest.kinds import ExtractSettings;"
        f"scope = scan.Scope('DOCS', 0, {str(tmp_path)!r}, True, None, None, ExtractSettings());"
        "result = scan.run_job(scan.FolderJob(scope, '', {}));"
        "print(len(result.idx), sorted(m for m in sys.modules if 'connector.ingest.' in m))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    loaded = "['connector.ingest.idx', 'connector.ingest.kinds', 'connector.ingest.scan']"
    assert out.stdout.strip() == f"2 {loaded}"
    # An HTML document is extracted: the modules come with it.
    (tmp_path / "c.html").write_text("<html><body>Hello</body></html>")
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert "connector.ingest.archives" in out.stdout and "connector.ingest.extract" in out.stdout
